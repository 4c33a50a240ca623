"""Benchmark plmgraph against Hugging Face transformers, side by side in one process.

    python tools/bench.py                 # GPT-2-like and BERT-like, train + inference, meta builds
    python tools/bench.py --repeats 30 --json bench.json --plot docs/img/bench.png
    python tools/bench.py --seq 128 512     # a sequence-length sweep

For each model the same random weights are loaded into both implementations (the HF model
is saved with `save_pretrained` and imported with `pg.from_hf`), then the two are timed
*interleaved* (HF, plmgraph, HF, plmgraph, ... with the order flipped every round so
neither always runs on a warm cache), and the median of each is reported with the ratio
plmgraph / HF (below 1.0 means plmgraph is faster).  The spread column is the 25th-75th
percentile of the per-round ratios (each round's plmgraph time over the HF time measured
next to it), which shows how much a shared or noisy machine moved the result.  Training is forward + cross-entropy +
backward + AdamW step; inference is a forward pass under `torch.inference_mode()`.
Memory: the activation bytes autograd saves for backward in a training forward pass
(`saved_for_backward`), for both implementations.
Sizes are chosen for a 2-core CPU.  Transformers is needed (a test-only dependency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import plmgraph as pg

VOCAB = 8192


def _hf_models() -> dict[str, Callable[[], Any]]:
    import transformers as tf

    def gpt2() -> Any:
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_positions=512, n_embd=256, n_layer=4, n_head=4,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return tf.GPT2LMHeadModel(cfg)

    def bert() -> Any:
        cfg = tf.BertConfig(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=1024, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        return tf.BertForMaskedLM(cfg)

    return {"gpt2-like": gpt2, "bert-like": bert}


def _timeit(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(a: Callable[[], Any], b: Callable[[], Any], repeats: int,
                warmup: int = 3) -> tuple[list[float], list[float]]:
    """Seconds of `a` and `b` per round, run alternately (order flipped each round)."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for r in range(repeats):
        if r % 2:
            tb.append(_timeit(b))
            ta.append(_timeit(a))
        else:
            ta.append(_timeit(a))
            tb.append(_timeit(b))
    return ta, tb


def _row(model: str, task: str, t_hf: list[float], t_pg: list[float]) -> dict[str, Any]:
    """Medians, their ratio, and the 25th-75th percentile of the per-round (paired) ratios."""
    hf_ms, pg_ms = 1e3 * statistics.median(t_hf), 1e3 * statistics.median(t_pg)
    q = statistics.quantiles([p / h for h, p in zip(t_hf, t_pg, strict=True)], n=4)
    return dict(model=model, task=task, hf_ms=hf_ms, plmgraph_ms=pg_ms, ratio=pg_ms / hf_ms,
                ratio_p25=q[0], ratio_p75=q[2])


def saved_for_backward(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of activation memory autograd keeps for the backward pass of `forward()`.

    Counted with `torch.autograd.graph.saved_tensors_hooks`, each storage once (parameters
    excluded), so it is exact and repeatable, unlike a process-wide peak on a shared machine.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(seen.values())


def bench_pair(name: str, make_hf: Callable[[], Any], batch: int, seq: int, repeats: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    hf = make_hf().eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = pg.from_hf(tmp).eval()
    ours.check_inputs = False  # the HF model does no range check either
    ids = torch.randint(0, VOCAB, (batch, seq))
    labels = torch.randint(0, VOCAB, (batch, seq))
    rows = []

    @torch.inference_mode()
    def infer_hf() -> None:
        hf(input_ids=ids)

    @torch.inference_mode()
    def infer_pg() -> None:
        ours(ids)

    rows.append(_row(name, f"inference b{batch}×{seq}", *interleaved(infer_hf, infer_pg, repeats)))

    hf.train()
    ours.train()
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    opt_pg = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def step(model: Any, opt: Any, logits_of: Callable[[], torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        logits = logits_of()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        opt.step()

    times = interleaved(
        lambda: step(hf, opt_hf, lambda: hf(input_ids=ids).logits),
        lambda: step(ours, opt_pg, lambda: ours(ids).logits),
        max(5, repeats // 2),
    )
    rows.append(_row(name, f"train step b{batch}×{seq}", *times))
    mem_hf = saved_for_backward(lambda: hf(input_ids=ids).logits)
    mem_pg = saved_for_backward(lambda: ours(ids).logits)
    rows[-1].update(hf_saved_mib=mem_hf / 2**20, plmgraph_saved_mib=mem_pg / 2**20)
    return rows


def bench_meta_builds(names: list[str], repeats: int = 3) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        spec = pg.load_spec(name)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model = pg.build(spec, device="meta")
            times.append(time.perf_counter() - t0)
        n = sum(p.numel() for p in model.parameters())
        rows.append(dict(model=name, task="build on meta", params=n, plmgraph_ms=1e3 * statistics.median(times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds per measurement (median)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, nargs="+", default=[128], help="sequence length(s); several make a sweep")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--plot", type=Path, help="write a bar chart of the ratios (PNG/SVG)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for seq in args.seq:
        for name, make in _hf_models().items():
            rows += bench_pair(name, make, args.batch, seq, args.repeats)
    rows += bench_meta_builds(["gpt3", "llama2-70b", "mixtral-8x7b"])

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"plmgraph vs HF transformers (torch {torch.__version__}, {args.threads} threads, median of "
              f"{args.repeats})", title_justify="left")
    for col in ("model", "task", "HF ms", "plmgraph ms", "ratio", "spread",
                "activations MiB (HF / pg)"):
        t.add_column(col, justify="left" if col in ("model", "task") else "right", no_wrap=True)
    for r in rows:
        paired = "ratio" in r
        t.add_row(r["model"], r["task"], f"{r['hf_ms']:.1f}" if paired else "", f"{r['plmgraph_ms']:.1f}",
                  f"{r['ratio']:.2f}" if paired else "",
                  f"{r['ratio_p25']:.2f}-{r['ratio_p75']:.2f}" if paired else "",
                  f"{r['hf_saved_mib']:.0f} / {r['plmgraph_saved_mib']:.0f}" if "hf_saved_mib" in r else "")
    Console(width=max(120, Console().width)).print(t)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rs = [r for r in rows if "ratio" in r]
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.55 * len(rs)))
        err = [[r["ratio"] - r["ratio_p25"] for r in rs], [r["ratio_p75"] - r["ratio"] for r in rs]]
        ax.barh([f"{r['model']}\n{r['task']}" for r in rs], [r["ratio"] for r in rs], color="#4c72b0",
                xerr=[[max(e, 0.0) for e in side] for side in err], capsize=3)
        ax.axvline(1.0, color="k", lw=1, ls="--")
        ax.set_xlabel("time plmgraph / time HF (lower is faster)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
