"""DDP scaling on CPU processes (gloo): training tokens/s with 2 processes against 1.

    python tools/bench_ddp.py                       # GPT-2-like, 4 layers, hidden 128; ddp; 3 rounds
    python tools/bench_ddp.py --strategy fsdp --rounds 5 --json ddp-bench.json

Weak scaling, as data parallelism is used: every process computes the same micro-batch
(``--per-process`` sequences of ``--seq-len``), so 2 processes train a global batch twice as large.
Each process gets one intra-op thread (``OMP_NUM_THREADS=1``), so 2 processes use 2 cores and 1
process one.  Each job is the real command line, ``torchrun --standalone --nproc-per-node P -m
plmgraph train ... --strategy ddp``; its tokens/s is the median of ``metrics.jsonl``'s per-step
``tokens_per_s`` (tokens of every rank over the step's wall time) after ``--skip`` warm-up steps.
The 1- and 2-process jobs alternate, ``--rounds`` times; medians over rounds.

    scaling efficiency = tokens/s (2 processes) / (2 x tokens/s (1 process))

1.0 is perfect; the gradient all-reduce after every backward is what it costs.  Nothing here runs in
the tests; the README quotes the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = "layers=4,hidden=128,heads=4,vocab=2048,max_positions=256,ffn=512"


def job(procs: int, out: Path, args: argparse.Namespace) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
           "-m", "plmgraph", "train", args.spec, "-O", args.sizes, "--data", args.data, "--steps", str(args.steps),
           "--batch-size", str(args.per_process * procs), "--seq-len", str(args.seq_len), "--strategy",
           args.strategy, "--checkpoint-every", str(10 * args.steps), "--held-out", "0", "-o", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)}\n{r.stderr[-3000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    tps = [x["tokens_per_s"] for x in rows if "tokens_per_s" in x][args.skip:]
    return statistics.median(tps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="gpt2")
    p.add_argument("--sizes", default=SIZES)
    p.add_argument("--data", default="pydoc")
    p.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp"])
    p.add_argument("--per-process", type=int, default=8, help="sequences per process per step")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--skip", type=int, default=5, help="warm-up steps left out")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    one, two = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            one.append(job(1, Path(tmp) / f"one-{r}", args))
            two.append(job(2, Path(tmp) / f"two-{r}", args))
            print(f"round {r + 1}: 1 process {one[-1]:,.0f} tok/s, 2 processes {two[-1]:,.0f} tok/s", flush=True)
    t1, t2 = statistics.median(one), statistics.median(two)
    result = {"strategy": args.strategy, "spec": args.spec, "sizes": args.sizes, "per_process_batch": args.per_process,
              "seq_len": args.seq_len, "tokens_per_s_1": t1, "tokens_per_s_2": t2, "speedup": t2 / t1,
              "efficiency": t2 / (2 * t1), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"{args.strategy}: 1 process {t1:,.0f} tok/s, 2 processes {t2:,.0f} tok/s: speed-up {t2 / t1:.2f}x, "
          f"scaling efficiency {t2 / (2 * t1):.2f} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
