"""LoRA fine-tuning against full fine-tuning (plmgraph) and against Hugging Face PEFT (same config, same weights).

    python tools/bench_tuning.py                       # GPT-2-like, 4 layers of 256, batch 8 x 128, on the CPU
    python tools/bench_tuning.py --layers 12 --hidden 768 --heads 12 --device cuda --json tuning.json

One process, four configurations trained *interleaved* (one step of each per round, the order rotated every
round so none always runs on a warm cache): plmgraph full fine-tuning, plmgraph LoRA, PEFT LoRA on the
Hugging Face model that `export-hf` writes for the same spec (its adapter loaded from plmgraph's, so the
weights are the same), and HF full fine-tuning. A step is forward + cross-entropy + backward + AdamW.

Reported per configuration:

* ``step``: the median seconds per step, and the per-round ratios' median (plmgraph LoRA / full, plmgraph
  LoRA / PEFT LoRA); on a shared machine the ratio of neighbours moves less than either time;
* ``memory``: what training holds beyond the frozen weights, counted exactly: the activations autograd saves
  for backward in one step (``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters
  excluded), plus gradients and AdamW's two moments of the trainable parameters (fp32);
* ``peak`` (CUDA only): ``torch.cuda.max_memory_allocated`` during a step, less the memory allocated before.

LoRA targets ``attn.qkv`` and ``attn.out`` (PEFT: ``attn.c_attn``, ``attn.c_proj``), rank 8, alpha 16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import plmgraph as pg
from plmgraph.tuning.options import apply_options


def saved_for_backward(forward: Callable[[], torch.Tensor]) -> tuple[int, torch.Tensor]:
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    return sum(seen.values()), loss


def trainable_bytes(model: torch.nn.Module) -> int:
    """Gradients + AdamW moments of the trainable parameters (fp32: 3 x 4 bytes each)."""
    return sum(3 * 4 * p.numel() for p in model.parameters() if p.requires_grad)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import peft
    import transformers

    from plmgraph.tuning.core import write_hf

    dev = torch.device(a.device)
    spec = pg.load_spec("gpt2", [f"sizes={{vocab: {a.vocab}, hidden: {a.hidden}, layers: {a.layers}, heads: "
                                 f"{a.heads}, ffn: {4 * a.hidden}, max_positions: {a.seq}}}",
                                 "embeddings.dropout=0.0", "block.dropout=0.0", "block.attention.dropout=0.0"])
    lora_spec = apply_options(spec, f"lora:rank={a.rank},alpha={2 * a.rank},targets=attn.qkv+attn.out")
    torch.manual_seed(0)
    full = pg.build(spec, seed=0)
    lora = pg.build(lora_spec, seed=0)
    lora.load_state_dict({**lora.state_dict(), **full.state_dict()})
    with tempfile.TemporaryDirectory() as tmp:
        write_hf(lora, tmp)  # base + adapter/ (PEFT layout)
        hf_full = transformers.AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="sdpa")
        hf_base = transformers.AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="sdpa")
        hf_lora = peft.PeftModel.from_pretrained(hf_base, f"{tmp}/adapter", is_trainable=True)
    models: dict[str, Any] = {"plmgraph full": full, "plmgraph LoRA": lora, "PEFT LoRA": hf_lora, "HF full": hf_full}
    x = torch.randint(0, a.vocab, (a.batch, a.seq), generator=torch.Generator().manual_seed(0)).to(dev)
    opts = {}
    for name, m in models.items():
        m.to(dev).train()
        opts[name] = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, foreach=True)

    def loss_of(name: str) -> torch.Tensor:
        logits = models[name](input_ids=x).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))

    def step(name: str) -> tuple[float, int, int]:
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        saved, loss = saved_for_backward(lambda: loss_of(name))
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)
        peak = 0
        if dev.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - before
        return time.perf_counter() - t0, saved, peak

    names = list(models)
    for n in names:  # warm-up (the first AdamW step allocates the moments)
        step(n)
    times: dict[str, list[float]] = {n: [] for n in names}
    saved: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t, s, p = step(n)
            times[n].append(t)
            saved[n], peaks[n] = s, max(p, peaks.get(n, 0))
    rows = []
    for n in names:
        m = models[n]
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        rows.append({"config": n, "step_s": statistics.median(times[n]), "trainable": trainable,
                     "saved_bytes": saved[n], "memory_bytes": saved[n] + trainable_bytes(m),
                     "cuda_peak_bytes": peaks[n] or None})

    def ratio(a_: str, b_: str) -> float:
        return statistics.median(x_ / y_ for x_, y_ in zip(times[a_], times[b_], strict=True))

    by = {r["config"]: r for r in rows}
    summary = {
        "lora_vs_full_step": ratio("plmgraph LoRA", "plmgraph full"),
        "lora_vs_peft_step": ratio("plmgraph LoRA", "PEFT LoRA"),
        "lora_vs_full_memory": by["plmgraph LoRA"]["memory_bytes"] / by["plmgraph full"]["memory_bytes"],
        "lora_vs_peft_memory": by["plmgraph LoRA"]["memory_bytes"] / by["PEFT LoRA"]["memory_bytes"],
        "lora_vs_peft_saved": by["plmgraph LoRA"]["saved_bytes"] / by["PEFT LoRA"]["saved_bytes"],
    }
    if dev.type == "cuda":
        peak = {n: by[n]["cuda_peak_bytes"] for n in by}
        summary["lora_vs_full_cuda_peak"] = peak["plmgraph LoRA"] / peak["plmgraph full"]
        summary["lora_vs_peft_cuda_peak"] = peak["plmgraph LoRA"] / peak["PEFT LoRA"]
    print(f"gpt2-like: {a.layers} layers x {a.hidden}, batch {a.batch} x {a.seq}, LoRA rank {a.rank} on "
          f"attn.qkv + attn.out, {a.device}, {a.rounds} interleaved rounds")
    print("| config | trainable | step (median) | saved activations | + grads & AdamW | CUDA peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        peak = f"{r['cuda_peak_bytes'] / 2**20:,.1f} MiB" if r["cuda_peak_bytes"] else "-"
        print(f"| {r['config']} | {r['trainable']:,} | {1000 * r['step_s']:.1f} ms | "
              f"{r['saved_bytes'] / 2**20:,.1f} MiB | {r['memory_bytes'] / 2**20:,.1f} MiB | {peak} |")
    for k, v in summary.items():
        print(f"{k}: {v:.3f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(a), "rows": rows, "summary": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
