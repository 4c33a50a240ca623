"""Ladder Side Tuning's memory against LoRA (and adapters, full fine-tuning) on the same model.

    python tools/bench_ladder.py                        # GPT-2-like, 8 layers of 512, batch 4 x 256 tokens
    python tools/bench_ladder.py --layers 12 --hidden 768 --json ladder.json
    python tools/bench_ladder.py --device cuda          # peak CUDA memory instead of process RSS

Each configuration trains in a fresh subprocess (so one's allocations do not hide another's) for
`--steps` AdamW steps on random tokens, and reports:

* ``saved``: the bytes autograd keeps for backward in one training forward pass (each storage once,
  through ``torch.autograd.graph.saved_tensors_hooks``): the activation memory a method costs.
  Deterministic, so the ratios are the headline numbers.
* ``peak``: the peak memory of the training steps (the first included) above what the built model held
  before them (CPU: the process's peak RSS, ``VmHWM`` reset before the first step, less the RSS then; CUDA:
  ``torch.cuda.max_memory_allocated`` less the memory allocated before): activations, gradients and
  optimizer state together.  On CPU it moves with the allocator and the machine's load; ``saved`` does not.
* ``step``: the median seconds per step (forward, backward, AdamW), for orientation only.

Ladder side tuning runs the backbone under ``no_grad``, so its ``saved`` holds only the side network's
activations and the inputs of its downsamplers; LoRA and adapters back-propagate through every layer
of the frozen model and keep its activations.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

CONFIGS = {
    "full": "{kind: full}",
    "lora": "{kind: lora, rank: 8}",  # on attn.q and attn.v (the default targets)
    "adapters": "{kind: adapters, bottleneck: 64}",
    "ladder": "{kind: ladder, reduction: 8}",
}


def spec_text(a: argparse.Namespace, tuning: str) -> list[str]:
    return [f"sizes={{vocab: {a.vocab}, hidden: {a.hidden}, layers: {a.layers}, heads: {a.heads}, "
            f"ffn: {4 * a.hidden}, max_positions: {a.seq}}}", "embeddings.dropout=0.0", "block.dropout=0.0",
            "block.attention.dropout=0.0", f"tuning={tuning}"]  # no dropout: SDPA's fused kernels, as in tools/bench.py


def run_one(a: argparse.Namespace, name: str) -> dict[str, Any]:
    """Train one configuration in this process; the numbers of the module docstring."""
    import torch

    import plmgraph as pg

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    model = pg.build(pg.load_spec("gpt2", spec_text(a, CONFIGS[name])), device=dev, seed=0).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _reset_peak_rss()
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x, labels=x).loss
    saved = sum(storages.values())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    del loss
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        model(x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda" else _peak_rss()) - before
    return {"config": name, "trainable": sum(p.numel() for p in trainable),
            "params": sum(p.numel() for p in model.parameters()), "saved": saved, "peak": max(peak, 0),
            "step": statistics.median(times)}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux >= 4.0); the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak is the process's lifetime peak
    return _status("VmRSS:")


def _peak_rss() -> int:
    try:
        return _status("VmHWM:")
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child process: run this configuration, print JSON
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(a, a.one)))
        return 0
    rows = []
    for name in a.configs:
        args = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--one", name]
        out = subprocess.run(args, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = next((r for r in rows if r["config"] == "lora"), rows[0])
    print(f"GPT-2-like: {a.layers} layers x {a.hidden}, batch {a.batch} x {a.seq} tokens, {a.device}, "
          f"{a.steps} AdamW steps; ratios against {ref['config']}")
    print(f"{'config':9} {'trainable':>11} {'saved for backward':>19} {'ratio':>6} {'peak':>12} {'ratio':>6} "
          f"{'step s':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['config']:9} {r['trainable']:>11,} {_mib(r['saved']):>19} {r['saved'] / ref['saved']:>6.2f} "
              f"{_mib(r['peak']):>12} {r['peak'] / max(ref['peak'], 1):>6.2f} {r['step']:>7.2f} "
              f"{r['step'] / ref['step']:>6.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(a).items() if k not in ("one", "json")}, "rows": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
