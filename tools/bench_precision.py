"""Perplexity of the deploy-folder precisions (fp32, fp16, int8, int4) of a briefly trained model, through ONNX Runtime.

    python tools/bench_precision.py                      # LLaMA-like, hidden 128, 300 steps on pydoc; fused + plain
    python tools/bench_precision.py --json docs/precision-ppl.json --work /tmp/prec

A small LLaMA-like decoder (2 layers, hidden 128, 4 heads, ffn 256, vocabulary 1024, 128 positions;
``--spec``/``--sizes`` to change) and its byte-level BPE tokenizer are trained on Python's documentation
(``pydoc_data.topics`` minus the last 10 topics in sorted order, which stay held out; AdamW, ``--steps``
steps of batch 16 x 128 tokens).  Each precision is written by `export_folder` (the same code as
``plmgraph export RUN -o deploy/ --kv-cache --precision P``), fused and plain, verified (which fails if a
bound does not hold), and its perplexity on the held-out text measured in ONNX Runtime (CPU) with the
sliding window of `plmgraph.train.evaluate.perplexity`; PyTorch fp32 is the reference.  Speed is
``tools/bench_onnx.py --precision``'s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from plmgraph.exporters import onnx_quant
from plmgraph.exporters.onnx_folder import export_folder

import plmgraph as pg
from plmgraph.errors import PlmgraphError

SIZES = "layers=2,hidden=128,heads=4,ffn=256,vocab=1024,max_positions=128"
HELD_OUT = 10  # topics, the last in sorted order


def train_briefly(spec_name: str, sizes: str, steps: int, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer) trained on pydoc_data.topics without its last `HELD_OUT` topics."""
    from pydoc_data.topics import topics

    from plmgraph.train.tokenizer import train_tokenizer

    spec = pg.load_spec(spec_name, sizes.split(","))
    texts = [topics[k].strip() for k in sorted(topics)[:-HELD_OUT]]
    tok = train_tokenizer(texts, spec, vocab_size=spec.sizes.vocab)
    ids = torch.tensor([t for text in texts for t in tok.encode(text)])
    model = pg.build(spec, seed=seed)
    seq = spec.sizes.max_positions
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        at = torch.randint(0, len(ids) - seq - 1, (16,), generator=g)
        x = torch.stack([ids[a:a + seq] for a in at])
        for group in opt.param_groups:
            group["lr"] = 3e-3 * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="llama2-7b")
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path("/tmp/plmgraph-bench-precision"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--int4", nargs="+", default=["32:asym", "32:sym", "128:asym"],
                    help="int4 variants BLOCK:asym|sym (those the width allows)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t = time.perf_counter()
    model, tok = train_briefly(args.spec, args.sizes, args.steps)
    print(f"trained {args.steps} steps in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    ids, text = onnx_quant.held_out_ids(model, tok)
    from plmgraph.train.evaluate import perplexity

    window = onnx_quant.ppl_window(model)
    ref = perplexity(model, ids, window=window)["perplexity"]
    variants: list[tuple[str, Any]] = [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8")]
    for v in args.int4:
        block, sym = v.split(":")
        variants.append((f"int4 b{block} {sym}", onnx_quant.precision("int4", int(block), sym == "sym")))
    rows = []
    import onnxruntime as ort

    for fuse in (True, False):
        for name, prec in variants:
            out = args.work / f"{'fused' if fuse else 'plain'}-{name.replace(' ', '-')}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            try:
                r = export_folder(model, out, tokenizer=tok, fuse=fuse, precision=prec, eval_ids=ids,
                                  verify=name != "fp32")
            except PlmgraphError as e:
                rows.append({"graph": "fused" if fuse else "plain", "precision": name, "error": str(e)})
                print(f"{name}: {e}", file=sys.stderr)
                continue
            size = sum(p.stat().st_size for p in out.glob("model.onnx*"))
            sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
            ppl = onnx_quant.ort_perplexity(sess, ids, window)["perplexity"]
            v = r.verification
            row = {"graph": "fused" if fuse else "plain", "precision": name, "mib": round(size / 2**20, 3),
                   "ppl_ort": round(ppl, 4), "ppl_torch_fp32": round(ref, 4), "ratio": round(ppl / ref, 4)}
            if v is not None:
                row.update(logits_max_abs=v.per_output()["logits"]["max_abs_diff"],
                           logits_max_rel=v.per_output()["logits"]["max_rel_diff"], max_rel_any=v.max_rel_diff)
            rows.append(row)
    print(f"\n{args.spec} ({args.sizes}), {args.steps} steps; perplexity on {len(ids)} held-out tokens ({text}), "
          f"window {window}; PyTorch fp32 {ref:.3f}")
    print(f"{'graph':<6} {'precision':<16} {'MiB':>7} {'ppl ORT':>9} {'ratio':>7} {'logits abs':>11} "
          f"{'logits rel':>11}")
    for r in rows:
        if "error" in r:
            print(f"{r['graph']:<6} {r['precision']:<16} refused: {r['error'][:100]}")
            continue
        print(f"{r['graph']:<6} {r['precision']:<16} {r['mib']:>7.3f} {r['ppl_ort']:>9.3f} {r['ratio']:>7.4f} "
              f"{r.get('logits_max_abs', 0):>11.3g} {r.get('logits_max_rel', 0):>11.3g}")
    if args.json:
        args.json.write_text(json.dumps({"spec": args.spec, "sizes": args.sizes, "steps": args.steps,
                                         "tokens": len(ids), "text": text, "window": window,
                                         "ppl_torch_fp32": ref, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
