"""Training and generation throughput of plmgraph against Hugging Face, side by side in one process.

    python tools/bench_train.py                      # GPT-2-like, 4 layers x 256, batch 8 x 128
    python tools/bench_train.py --layers 6 --hidden 384 --rounds 12 --json bench_train.json

Training: a GPT-2 built by Hugging Face (`GPT2LMHeadModel`, random weights) is saved and
imported with `pg.from_hf`, so both hold the same weights; each round runs one training step
of each (forward with labels -> HF's / plmgraph's loss, backward, clipping, AdamW), on the same
batch of Python's documentation tokenized with the GPT-2-style tokenizer the trainer trains,
interleaved (the order flips every round).  Reported: tokens/s of each (median), the ratio of
plmgraph's step time to HF's, and model-FLOPs utilisation, MFU = 6 * params * tokens / time
(plus the attention term 12 * layers * hidden * seq per token) over the machine's measured
fp32 matmul peak (the best of several square matmuls).

Generation: greedy `pg.generate` (KV cache) against `transformers`' `generate` with the same
weights, prompt and length (`min_new_tokens` = `max_new_tokens`, so neither stops early):
new tokens/s of each and the time ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n matmul on this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import transformers as tf

    import plmgraph as pg
    from plmgraph.train.data import load_corpus
    from plmgraph.train.objectives import collator_for
    from plmgraph.train.tokenizer import train_tokenizer

    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=args.vocab, n_embd=args.hidden, n_layer=args.layers, n_head=args.heads,
                        n_positions=max(args.seq, 256), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    hf = tf.GPT2LMHeadModel(cfg)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = pg.from_hf(d)
    corpus = load_corpus("pydoc")
    clm = pg.load_spec("gpt2", [f"layers={args.layers},hidden={args.hidden},heads={args.heads},vocab={args.vocab},"
                                f"max_positions={cfg.n_positions}"])  # the zoo spec: its objective (clm)
    tok = train_tokenizer(corpus.texts, clm, vocab_size=args.vocab)
    col = collator_for(clm, tok)
    exs = col.examples(corpus, args.seq)
    batch = col(exs[:args.batch], list(range(args.batch)))
    tokens = int(batch["attention_mask"].sum())

    def stepper(model, hf_style: bool):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
        model.train()

        def step() -> float:
            t0 = time.perf_counter()
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0
        return step

    steps = {"hf": stepper(hf, True), "plmgraph": stepper(ours, False)}
    for s in steps.values():  # warm-up
        s()
    times: dict[str, list[float]] = {"hf": [], "plmgraph": []}
    for r in range(args.rounds):
        for name in (("hf", "plmgraph") if r % 2 == 0 else ("plmgraph", "hf")):
            times[name].append(steps[name]())
    peak = matmul_peak()
    params = ours.num_params()
    flops_per_token = 6 * params + 12 * args.layers * args.hidden * args.seq
    train = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        train[name] = {"step_s": med, "tokens_per_s": tokens / med, "mfu": flops_per_token * tokens / med / peak}
    ratio = statistics.median(p / h for p, h in zip(times["plmgraph"], times["hf"], strict=True))

    # generation
    prompt = batch["input_ids"][:1, :16]
    hf.eval()
    ours.eval()
    gen: dict[str, list[float]] = {"hf": [], "plmgraph": []}
    n = args.new_tokens

    def run_hf() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                        do_sample=False, pad_token_id=0)
        return time.perf_counter() - t0

    def run_pg() -> float:
        t0 = time.perf_counter()
        pg.generate(ours, None, prompt, max_new_tokens=n, eos_token_id=-1)
        return time.perf_counter() - t0

    run_hf()
    run_pg()
    for r in range(max(3, args.rounds // 2)):
        for name, fn in ((("hf", run_hf), ("plmgraph", run_pg)) if r % 2 == 0 else (("plmgraph", run_pg),
                                                                                       ("hf", run_hf))):
            gen[name].append(fn())
    gen_ratio = statistics.median(p / h for p, h in zip(gen["plmgraph"], gen["hf"], strict=True))
    result = {
        "config": vars(args) | {"json": None, "params": params, "tokens_per_step": tokens,
                                "torch_threads": torch.get_num_threads()},
        "matmul_peak_gflops": peak / 1e9,
        "train": train, "train_time_ratio": ratio,
        "generate": {k: {"s": statistics.median(v), "tokens_per_s": n / statistics.median(v)} for k, v in gen.items()},
        "generate_time_ratio": gen_ratio,
    }
    print(f"GPT-2 {args.layers}x{args.hidden}, {params:,} parameters, batch {args.batch} x {args.seq}; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    for name, t in train.items():
        print(f"  train {name:9s} {t['tokens_per_s']:9,.0f} tok/s  MFU {100 * t['mfu']:5.1f} %")
    print(f"  train time plmgraph / HF: {ratio:.2f}")
    for name, g in result["generate"].items():
        print(f"  generate {name:9s} {g['tokens_per_s']:7.1f} new tok/s")
    print(f"  generate time plmgraph / HF: {gen_ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
