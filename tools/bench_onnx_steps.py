"""Graphs of one model side by side per decode step (what one change buys, on a busy machine).

    python tools/bench_onnx_steps.py --graphs before=old/model.onnx after=new/model.onnx \
        optimum-O2=work/gpt2/optimum-O2/model_optimized.onnx --ref optimum-O2 [--genai work/llama/genai]

The graphs come from `tools/bench_onnx.py --work DIR` (same weights, same 128-token prompt, 64
greedy steps, 2 threads, ORT spinning on (its default), contenders interleaved).  Load on a shared machine comes in
bursts that swing whole-run medians, so decode is reported per step: each run's 20th percentile of
its step times, median over rounds (whole-run medians beside it); prefill: the 20th percentile
over rounds.  A graph that shares its cache buffer also runs on it ("NAME, shared", I/O binding).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_onnx as b  # noqa: E402
from plmgraph.exporters.onnx_fuse import shares_buffer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--graphs", nargs="+", required=True, help="NAME=PATH, the first is the tokens reference")
ap.add_argument("--ref", required=True, help="the contender the ratios are against")
ap.add_argument("--genai", default=None, help="a GenAI model folder (its builder's) to add")
ap.add_argument("--repeats", type=int, default=9)
ap.add_argument("--json", type=Path, default=None)
args = ap.parse_args()
steps = 64
graphs = {g.split("=", 1)[0]: Path(g.split("=", 1)[1]) for g in args.graphs}
prompt = np.random.default_rng(0).integers(0, 8192, (1, 128)).astype(np.int64)


def timed_loop(step_fn):
    ts = []

    def wrap(*a):
        t = time.perf_counter()
        r = step_fn(*a)
        ts.append(time.perf_counter() - t)
        return r

    return wrap, ts


def raw(sess):
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    past = [n for n in names if n.startswith("past_key_values.")]
    idx = [outs.index(p.replace("past_key_values.", "present.")) for p in past]
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    feed = {"input_ids": prompt, "attention_mask": np.ones((1, 128), np.int64)}
    if "position_ids" in names:
        feed["position_ids"] = np.arange(128)[None]
    for n in past:
        feed[n] = np.zeros((1, shapes[n][1], 0, shapes[n][3]), np.float32)
    t = time.perf_counter()
    got = sess.run(None, feed)
    pre = time.perf_counter() - t
    total = 128
    ts = []
    toks = []
    for _ in range(steps):
        nxt = got[0][:, -1].argmax(-1)
        toks.append(int(nxt[0]))
        total += 1
        feed = {"input_ids": nxt[:, None].astype(np.int64), "attention_mask": np.ones((1, total), np.int64)}
        if "position_ids" in names:
            feed["position_ids"] = np.full((1, 1), total - 1)
        feed.update({n: got[i] for n, i in zip(past, idx, strict=True)})
        t = time.perf_counter()
        got = sess.run(None, feed)
        ts.append(time.perf_counter() - t)
    return pre, ts, toks


def shared(sess):
    import onnxruntime as ort

    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    bufs = {
        n: ort.OrtValue.ortvalue_from_numpy(np.zeros((1, shapes[n][1], 128 + steps, shapes[n][3]), np.float32))
        for n in names
        if n.startswith("past")
    }
    bd = sess.io_binding()
    for n, v in bufs.items():
        bd.bind_ortvalue_input(n, v)

    def run(ids, total):
        for o in outs:
            if o.startswith("present."):
                bd.bind_ortvalue_output(o, bufs["past_key_values." + o[8:]])
            else:
                bd.bind_output(o, "cpu")
        bd.bind_cpu_input("input_ids", ids)
        bd.bind_cpu_input("attention_mask", np.ones((1, total), np.int64))
        if "position_ids" in names:
            bd.bind_cpu_input("position_ids", np.arange(total - ids.shape[1], total, dtype=np.int64)[None])
        sess.run_with_iobinding(bd)
        return bd.get_outputs()[outs.index("logits")].numpy()

    t = time.perf_counter()
    lg = run(prompt, 128)
    pre = time.perf_counter() - t
    total = 128
    ts = []
    toks = []
    for _ in range(steps):
        nxt = lg[:, -1].argmax(-1)
        toks.append(int(nxt[0]))
        total += 1
        t = time.perf_counter()
        lg = run(nxt[:, None].astype(np.int64), total)
        ts.append(time.perf_counter() - t)
    return pre, ts, toks


runs = {}
for n, p in graphs.items():
    s = b.session(p, 2)
    runs[n] = lambda s=s: raw(s)
    if shares_buffer(p):
        runs[f"{n}, shared"] = lambda s=s: shared(s)
if args.genai:
    import onnxruntime_genai as og

    gm = og.Model(args.genai)

    def genai():
        p = og.GeneratorParams(gm)
        p.set_search_options(max_length=128 + steps, do_sample=False)
        g = og.Generator(gm, p)
        t = time.perf_counter()
        g.append_tokens(prompt.astype(np.int32))
        pre = time.perf_counter() - t
        ts = []
        for _ in range(steps):
            t = time.perf_counter()
            g.generate_next_token()
            ts.append(time.perf_counter() - t)
        return pre, ts, [int(x) for x in g.get_sequence(0)[128:]]

    runs["genai"] = genai
times = b.interleaved(runs, args.repeats, 0.2)
want = times[next(iter(graphs))][0][2][: steps - 1]
rows = {}
for n, got in times.items():
    step = statistics.median(float(np.percentile(g[1], 20)) for g in got)
    rows[n] = {
        "prefill_ms_p20": round(1e3 * float(np.percentile([g[0] for g in got], 20)), 2),
        "decode_tok_s_p20": round(1 / step, 1),
        "decode_tok_s_median_run": round(steps / statistics.median(sum(g[1]) for g in got), 1),
        "same": got[0][2][: steps - 1] == want,
    }
ref = rows[args.ref]
for n, r in rows.items():
    dec, pre = r["decode_tok_s_p20"] / ref["decode_tok_s_p20"], ref["prefill_ms_p20"] / r["prefill_ms_p20"]
    print(f"{n:22s} prefill {r['prefill_ms_p20']:7.2f} ms  decode {r['decode_tok_s_p20']:7.1f} tok/s "
          f"(run median {r['decode_tok_s_median_run']:7.1f})  {dec:.2f}x decode, {pre:.2f}x prefill  same={r['same']}")
if args.json:
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
