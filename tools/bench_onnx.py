"""Benchmark an exported ONNX model in ONNX Runtime (CPU) against PyTorch eager, same weights.

    python tools/bench_onnx.py                       # GPT-2-like, 4 layers, hidden 256; batch 1 and 8, seq 128
    python tools/bench_onnx.py --repeats 50 --json onnx-bench.json

The model is exported with `pg.export_onnx` (optimized and verified), then for each shape the
two runtimes are timed *interleaved* (torch, ORT, torch, ORT, ... the order flipped every
round), after warm-up, and the medians are reported with the ratio ORT / torch (below 1.0:
ONNX Runtime is faster).  Both use the same number of threads (``--threads``, default all
cores); PyTorch runs under `torch.inference_mode()`.  The forward pass is the full
prompt (no KV cache): logits for every position.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from plmgraph.exporters import onnx as ox
from plmgraph.exporters.runtime import import_onnxruntime

import plmgraph as pg

OVERRIDES = ["layers=4,hidden=256,heads=4,ffn=1024,vocab=8192,max_positions=256"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="gpt2")
    ap.add_argument("-O", "--override", action="append", default=None, help=f"default: {OVERRIDES[0]}")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    ort = import_onnxruntime()
    torch.set_num_threads(args.threads)
    spec = pg.load_spec(args.spec, args.override or OVERRIDES)
    model = pg.build(spec, seed=0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = pg.export_onnx(model, Path(tmp) / "model.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        sig = ox.signature(model)
        rows = []
        for batch in args.batch:
            feed = ox.example_inputs(model, sig, batch, args.seq)
            np_feed = {k: v.numpy() for k, v in feed.items()}

            def run_torch(feed=feed) -> None:
                with torch.inference_mode():
                    model(**feed)

            def run_ort(np_feed=np_feed) -> None:
                sess.run(None, np_feed)

            rows.append({"batch": batch, "seq": args.seq, **_timed(run_torch, run_ort, args.repeats)})
    info = {"spec": spec.name, "overrides": args.override or OVERRIDES, "params": model.num_params(),
            "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
            "onnxruntime": ort.__version__, "rows": rows}
    print(f"{spec.name} ({model.num_params():,} params), {args.threads} threads, median of {args.repeats}")
    print(f"{'batch':>5} {'seq':>5} {'torch ms':>10} {'ORT ms':>10} {'ORT/torch':>10}")
    for r in rows:
        print(f"{r['batch']:>5} {r['seq']:>5} {r['torch_ms']:>10.2f} {r['ort_ms']:>10.2f} {r['ratio']:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")


def _timed(run_torch, run_ort, repeats: int) -> dict[str, float]:  # noqa: ANN001
    for _ in range(3):  # warm-up: allocator, thread pools, ORT's first-run shape inference
        run_torch()
        run_ort()
    t_torch, t_ort = [], []
    for i in range(repeats):
        pair = [(run_torch, t_torch), (run_ort, t_ort)]
        for fn, times in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    torch_ms, ort_ms = statistics.median(t_torch) * 1e3, statistics.median(t_ort) * 1e3
    return {"torch_ms": round(torch_ms, 3), "ort_ms": round(ort_ms, 3), "ratio": round(ort_ms / torch_ms, 3)}


if __name__ == "__main__":
    sys.exit(main())
