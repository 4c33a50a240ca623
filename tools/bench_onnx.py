"""Side by side, in one process: plmgraph's ONNX export against the tools a deployer would pick.

    python tools/bench_onnx.py                                   # llama, gpt2 and bert; 2 threads
    python tools/bench_onnx.py --models llama --repeats 9 --json onnx-bench.json
    python tools/bench_onnx.py --optimum-python /tmp/optvenv/bin/python   # add Hugging Face Optimum
    python tools/bench_onnx.py --models llama --precision fp16 int8 int4   # add deploy-folder precisions

Same tiny random weights for every contender (plmgraph builds them, seed 0, and writes them
as a Hugging Face folder for the others).  Decoders (LLaMA-like, GPT-2-like: 4 layers, hidden
256, vocabulary 8192): batch 1, a 128-token prompt (prefill), then 64 greedy steps with the
KV cache; reported: prefill ms and decode tokens/s, and whether the greedy tokens equal
PyTorch's.  Encoder (BERT-like, same sizes, its MLM head alone): forwards of batch 1, sequence 128, ``--inner``
back to back per round (the steady state; a lone forward after a pause measures thread wake-ups).

Contenders (decoders):
  plmgraph fused       pg.export_onnx(..., fuse=True) (the deploy folder's model.onnx), raw loop
  plmgraph plain       the same with fuse=False (the plain ONNX graph, ORT's own fusions only), raw loop
  genai graph          GenAI's builder's model.onnx in the same raw loop (graph against graph)
  plmgraph.runtime     `OrtModel(folder).generate`: what `plmgraph generate deploy/` runs (one I/O
                       binding, the shared in-place cache, logits bound into a host array)
  plmgraph -> genai    ONNX Runtime GenAI's generator running plmgraph's export folder as it is
  genai                ONNX Runtime GenAI's model builder (python -m onnxruntime_genai.models.builder)
                       and its generator (LLaMA only: the builder refuses GPT-2)
  optimum, optimum-O2  Hugging Face Optimum's export (optimum-cli, run with --optimum-python, an
                       environment of its own: optimum-onnx pins transformers < 4.58) and `-O2`, raw loop
  optimum-O2 generate  Optimum's own loop: ORTModelForCausalLM.generate on the -O2 graph, in a
                       subprocess of that environment that takes its turn with the others
  torch                PyTorch eager with the KV cache (plmgraph's module; transformers' for reference)
  plmgraph fused P     with --precision: `export_folder(..., precision=P)` (fp16, int8, int4; exporters/onnx_quant.py)
                       in the same raw loop, with a table of decode and prefill against plmgraph fused (fp32)

"Raw loop" is ``InferenceSession.run`` with numpy, the cache fed back each step: it compares
graphs.  Runners compare as runners: plmgraph.runtime against GenAI's generator, and GenAI's
generator on both graphs.  Every ONNX Runtime session (GenAI's too, through its
``session_options``): ``--threads`` intra-op threads and ``--spinning`` (ORT's worker threads
spin between runs, ORT's default, ``on``; or not, ``off``: slower decode, steadier on a loaded
machine); PyTorch: ``torch.set_num_threads``.  Contenders are interleaved (one run each per
round, the order rotated every round) with a pause between them, so no one's worker threads
still spin while the next is timed; medians over ``--repeats`` rounds.  Numbers go in the README
as ratios; nothing here runs in the tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from plmgraph.exporters.runtime import import_onnxruntime

import plmgraph as pg

SIZES = "layers=4,hidden=256,heads=4,ffn=1024,vocab=8192,max_positions=256"
MODELS = {"llama": "llama2-7b", "gpt2": "gpt2", "bert": "bert-base"}
#: BERT with its MLM head alone, as Optimum's ``fill-mask`` export has it (bert-base also has NSP's)
BERT_MLM = """plmgraph: 1
extends: bert-base
name: bert-mlm
heads:
  - {kind: mlm, tie_embeddings: true, transform: {activation: gelu, norm: true}}
objectives:
  - {kind: mlm, rate: 0.15, mask: 0.8, random: 0.1, keep: 0.1}
pooler: null
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--seq", type=int, default=128, help="encoder sequence length")
    ap.add_argument("--inner", type=int, default=10, help="encoder: forwards back to back per round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between contenders")
    ap.add_argument("--spinning", choices=["on", "off"], default="on",
                    help="ORT's worker threads spin between runs (every session, GenAI's included)")
    ap.add_argument("--optimum-python", default=None, help="a python with optimum-onnx installed")
    ap.add_argument("--no-genai", action="store_true")
    ap.add_argument("--precision", nargs="+", default=[], choices=["fp16", "int8", "int4"],
                    help="decoders: add plmgraph's fused graph in these precisions (deploy folders)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep the exports here and reuse them on the next run")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ort = import_onnxruntime()
    results: dict[str, Any] = {"threads": args.threads, "repeats": args.repeats, "sizes": args.sizes,
                               "spinning": args.spinning,
                               "torch": torch.__version__, "onnxruntime": ort.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            work = (args.work or Path(tmp)) / key
            work.mkdir(parents=True, exist_ok=True)
            bench = bench_decoder if key != "bert" else bench_encoder
            results["models"][key] = bench(key, work, args)
            print_model(key, results["models"][key])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


# ------------------------------------------------------------------ building the contenders


def session(path: Path, threads: int, spinning: str = "on") -> Any:
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning == "on" else "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def genai_session_options(folder: Path, threads: int, spinning: str) -> None:
    """Threads and spinning in a GenAI folder's config, as every other contender's session has them
    (GenAI passes a string ``session_options`` entry on to ONNX Runtime as a session config entry)."""
    cfg = json.loads((folder / "genai_config.json").read_text())
    so = cfg["model"]["decoder"].setdefault("session_options", {})
    so["intra_op_num_threads"] = threads
    so["inter_op_num_threads"] = 1
    so["session.intra_op.allow_spinning"] = "1" if spinning == "on" else "0"
    (folder / "genai_config.json").write_text(json.dumps(cfg, indent=2))


def node_count(path: Path) -> dict[str, Any]:
    """Nodes after ONNX Runtime's own optimizer (what a session runs), and the op histogram."""
    ort = import_onnxruntime()
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "opt.onnx.data")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        m = onnx.load(str(Path(tmp) / "opt.onnx"), load_external_data=False)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    return {"nodes": len(m.graph.node), "ops": dict(ops.most_common())}


def build(key: str, sizes: str, work: Path) -> tuple[Any, Path]:
    from plmgraph.compile.hf import to_hf

    ref: str | Path = MODELS[key]
    if key == "bert":
        ref = work / "bert-mlm.yaml"
        ref.write_text(BERT_MLM)
    model = pg.build(pg.load_spec(ref, [sizes]), seed=0).eval()
    model.check_inputs = False
    hf = work / "hf"
    if not (hf / "tokenizer.json").exists():  # the same seed, the same weights: a kept folder is reused
        to_hf(model, hf)
        _tokenizer(hf, model.spec.sizes.vocab)
    return model, hf


def _tokenizer(folder: Path, vocab: int) -> None:
    """A word-level tokenizer of `vocab` made-up words: GenAI's builder and Optimum's export want one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, vocab)}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="</s>").save_pretrained(str(folder))


def export_plmgraph(model: Any, work: Path, kv: bool, fuse: bool) -> Path:
    path = work / f"plmgraph-{'fused' if fuse else 'plain'}" / "model.onnx"
    if path.exists():
        return path
    t = time.perf_counter()
    pg.export_onnx(model, path, kv_cache=kv, fuse=fuse)
    print(f"  exported plmgraph {'fused' if fuse else 'plain'} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def export_precision(model: Any, work: Path, precision: str) -> Path:
    """plmgraph's deploy folder in `precision` (not verified here: the tokens column says whether it agrees)."""
    from plmgraph.exporters.onnx_folder import export_folder

    out = work / f"plmgraph-fused-{precision}"
    if not (out / "model.onnx").exists():
        t = time.perf_counter()
        export_folder(model, out, precision=precision, verify=False)
        print(f"  exported plmgraph fused {precision} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out / "model.onnx"


def export_genai(hf: Path, work: Path, threads: int, spinning: str) -> Path | None:
    out = work / "genai"
    if not (out / "genai_config.json").exists():
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out), "-p", "fp32",
               "-e", "cpu", "-c", str(work / "genai-cache")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode or not (out / "genai_config.json").exists():
            print(f"  genai builder failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}", file=sys.stderr)
            return None
    genai_session_options(out, threads, spinning)
    return out


def export_folder_plmgraph(model: Any, work: Path, threads: int, spinning: str) -> Path:
    """plmgraph's deploy folder (fused graph, genai_config.json, config.json), as `plmgraph export -o` writes it."""
    from plmgraph.exporters.onnx_folder import export_folder

    out = work / "plmgraph-folder"
    if not (out / "model.onnx").exists():
        t = time.perf_counter()
        export_folder(model, out)
        print(f"  exported plmgraph's folder in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    genai_session_options(out, threads, spinning)
    return out


def export_optimum(python: str, hf: Path, work: Path, task: str) -> dict[str, Path]:
    """Optimum's export and its -O2 optimisation (in Optimum's own environment)."""
    out, o2 = work / "optimum", work / "optimum-O2"
    if out.exists() and o2.exists():
        return {"optimum": next(p for p in (out / "model.onnx", out / "decoder_model_merged.onnx") if p.exists()),
                "optimum-O2": next(o2.glob("*.onnx"))}
    r = subprocess.run([python, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(hf), "--task",
                        task, str(out)], capture_output=True, text=True)
    if r.returncode:
        print(f"  optimum export failed: {(r.stderr or r.stdout).strip().splitlines()[-3:]}", file=sys.stderr)
        return {}
    paths = {"optimum": next(p for p in (out / "model.onnx", out / "decoder_model_merged.onnx") if p.exists())}
    r = subprocess.run([python, "-m", "optimum.commands.optimum_cli", "onnxruntime", "optimize", "--onnx_model",
                        str(out), "-O2", "-o", str(o2)], capture_output=True, text=True)
    if r.returncode:
        print(f"  optimum -O2 failed: {(r.stderr or r.stdout).strip().splitlines()[-3:]}", file=sys.stderr)
    else:
        paths["optimum-O2"] = next(o2.glob("*.onnx"))
    return paths


#: Optimum's own generation (``ORTModelForCausalLM.generate``) in Optimum's environment, one timed
#: generation per line read; a JSON line back: prefill s (a one-token generate), decode s, tokens.
OPTIMUM_RUNNER = r"""
import json, sys, time
import numpy as np, onnxruntime as ort, torch
from pathlib import Path
from optimum.onnxruntime import ORTModelForCausalLM
folder, prompt, steps, threads, spinning = sys.argv[1:6]
so = ort.SessionOptions(); so.intra_op_num_threads = int(threads); so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning == "on" else "0")
m = ORTModelForCausalLM.from_pretrained(folder, file_name=Path(next(Path(folder).glob("*.onnx"))).name,
                                        session_options=so)
torch.set_num_threads(int(threads))
ids = torch.from_numpy(np.load(prompt)); mask = torch.ones_like(ids); n = int(steps)
kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0)
print("ready", flush=True)
for _ in sys.stdin:
    t0 = time.perf_counter(); m.generate(ids, max_new_tokens=1, **kw); t1 = time.perf_counter()
    out = m.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw); t2 = time.perf_counter()
    print(json.dumps([t1 - t0, (t2 - t1) - (t1 - t0), out[0, ids.shape[1]:].tolist()]), flush=True)
"""


class OptimumRunner:
    """`OPTIMUM_RUNNER` in a subprocess of Optimum's python, driven one generation at a time so that it
    takes its turn among the in-process contenders (`interleaved`)."""

    def __init__(self, python: str, folder: Path, prompt: np.ndarray, steps: int, threads: int, spinning: str,
                 work: Path) -> None:
        np.save(work / "prompt.npy", prompt)
        self.proc = subprocess.Popen([python, "-c", OPTIMUM_RUNNER, str(folder), str(work / "prompt.npy"), str(steps),
                                      str(threads), spinning], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"Optimum's runner did not start ({line.strip()!r})")

    def __call__(self) -> tuple[float, float, list[int]]:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        prefill, decode, tokens = json.loads(self.proc.stdout.readline())
        return prefill, decode, tokens

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------ runs


def ort_generate(sess: Any, prompt: np.ndarray, steps: int, head_dim: int = 0) -> tuple[float, float, list[int]]:
    """Greedy generation with the KV cache through a raw ``sess.run`` loop: prefill s, decode s, tokens
    (`head_dim` for a graph that leaves the cache's last dimension symbolic, as GenAI's does)."""
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    past = [n for n in names if n.startswith("past_key_values.")]
    present = [n.replace("past_key_values.", "present.") for n in past]
    idx = [outs.index(p) for p in present]
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    B, T = prompt.shape
    feed: dict[str, np.ndarray] = {"input_ids": prompt, "attention_mask": np.ones((B, T), np.int64)}
    if "position_ids" in names:
        feed["position_ids"] = np.arange(T, dtype=np.int64)[None].repeat(B, 0)
    types = {i.name: i.type for i in sess.get_inputs()}
    for n in past:
        s = shapes[n]
        feed[n] = np.zeros((B, s[1], 0, s[3] if isinstance(s[3], int) else head_dim),
                           np.float16 if types[n] == "tensor(float16)" else np.float32)
    tokens: list[int] = []
    t0 = time.perf_counter()
    got = sess.run(None, feed)
    t1 = time.perf_counter()
    total = T
    for _ in range(steps):
        nxt = got[0][:, -1].argmax(-1)
        tokens.append(int(nxt[0]))
        total += 1
        feed = {"input_ids": nxt[:, None].astype(np.int64), "attention_mask": np.ones((B, total), np.int64)}
        if "position_ids" in names:
            feed["position_ids"] = np.full((B, 1), total - 1, np.int64)
        feed.update({n: got[i] for n, i in zip(past, idx, strict=True)})
        got = sess.run(None, feed)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, tokens


def runtime_generate(m: Any, prompt: np.ndarray, steps: int) -> tuple[float, float, list[int]]:
    """`plmgraph.runtime`'s greedy generation: prefill s (a one-token generate), decode s (the rest of
    a `steps`-token generate), tokens."""
    t0 = time.perf_counter()
    m.generate(prompt, 1, temperature=0.0, ignore_eos=True)
    t1 = time.perf_counter()
    ids = m.generate(prompt, steps, temperature=0.0, ignore_eos=True)
    t2 = time.perf_counter()
    return t1 - t0, (t2 - t1) - (t1 - t0), [int(t) for t in ids[0, prompt.shape[1]:]]


def genai_generate(model: Any, prompt: np.ndarray, steps: int) -> tuple[float, float, list[int]]:
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=prompt.shape[1] + steps, do_sample=False)
    gen = og.Generator(model, params)
    t0 = time.perf_counter()
    gen.append_tokens(prompt.astype(np.int32))  # the prefill runs here
    t1 = time.perf_counter()
    for _ in range(steps):
        gen.generate_next_token()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [int(t) for t in gen.get_sequence(0)[prompt.shape[1]:]]


def torch_generate(model: Any, prompt: np.ndarray, steps: int, hf: bool = False) -> tuple[float, float, list[int]]:
    ids = torch.from_numpy(prompt)
    tokens: list[int] = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        t1 = time.perf_counter()
        past = out.past_key_values
        for _ in range(steps):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(nxt[0, 0]))
            out = model(nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, tokens


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int, pause: float) -> dict[str, list[Any]]:
    """Each contender once per round (warm-up round first), the order rotated every round."""
    names = list(runs)
    for n in names:
        runs[n]()
        time.sleep(pause)
    got: dict[str, list[Any]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            got[n].append(runs[n]())
            time.sleep(pause)
    return got


def bench_decoder(key: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime_genai as og

    from plmgraph.runtime import OrtModel

    print(f"{key}: building and exporting", file=sys.stderr)
    model, hf = build(key, args.sizes, work)
    folder = export_folder_plmgraph(model, work, args.threads, args.spinning)
    graphs = {"plmgraph fused": folder / "model.onnx", "plmgraph plain": export_plmgraph(model, work, True, False)}
    for p in args.precision:
        graphs[f"plmgraph fused {p}"] = export_precision(model, work, p)
    genai = export_genai(hf, work, args.threads, args.spinning) if key == "llama" and not args.no_genai else None
    if genai is not None:
        graphs["genai graph"] = genai / "model.onnx"
    if args.optimum_python:
        graphs.update(export_optimum(args.optimum_python, hf, work, "text-generation-with-past"))
    runs: dict[str, Callable[[], Any]] = {}
    prompt = np.random.default_rng(0).integers(0, model.spec.sizes.vocab, (1, args.prompt)).astype(np.int64)
    head_dim = model.spec.sizes.hidden // model.spec.sizes.heads
    for name, path in graphs.items():
        sess = session(path, args.threads, args.spinning)
        runs[name] = lambda sess=sess: ort_generate(sess, prompt, args.steps, head_dim)
    info: dict[str, Any] = {"graphs": {n: node_count(p) for n, p in graphs.items()}}
    rt = OrtModel(folder, threads=args.threads, spinning=args.spinning == "on")
    runs["plmgraph.runtime"] = lambda: runtime_generate(rt, prompt, args.steps)
    if not args.no_genai:
        ours = og.Model(str(folder))
        runs["plmgraph -> genai"] = lambda: genai_generate(ours, prompt, args.steps)
    if genai is not None:
        theirs = og.Model(str(genai))
        runs["genai"] = lambda: genai_generate(theirs, prompt, args.steps)
    runner = None
    if "optimum-O2" in graphs:  # Optimum's own loop (HF generate on its ORT model), on the -O2 graph
        runner = OptimumRunner(args.optimum_python, graphs["optimum-O2"].parent, prompt, args.steps, args.threads,
                               args.spinning, work)
        runs["optimum-O2 generate"] = runner
    runs["torch"] = lambda: torch_generate(model, prompt, args.steps)
    hf_model = _hf_model(hf)
    if hf_model is not None:
        runs["transformers"] = lambda: torch_generate(hf_model, prompt, args.steps, hf=True)
    times = interleaved(runs, args.repeats, args.pause)
    if runner is not None:
        runner.close()
    want = times["torch"][0][2]
    rows = {}
    for name, got in times.items():
        prefill = statistics.median(g[0] for g in got)
        decode = statistics.median(g[1] for g in got)
        rows[name] = {"prefill_ms": round(prefill * 1e3, 2), "decode_tokens_per_s": round(args.steps / decode, 1),
                      "best_prefill_ms": round(min(g[0] for g in got) * 1e3, 2),
                      "best_decode_tokens_per_s": round(args.steps / min(g[1] for g in got), 1),
                      "same_tokens_as_torch": got[0][2] == want}
    info["rows"] = rows
    return info


def bench_encoder(key: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{key}: building and exporting", file=sys.stderr)
    model, hf = build(key, args.sizes, work)
    graphs = {"plmgraph fused": export_plmgraph(model, work, False, True),
              "plmgraph plain": export_plmgraph(model, work, False, False)}
    if args.optimum_python:
        graphs.update(export_optimum(args.optimum_python, hf, work, "fill-mask"))
    ids = np.random.default_rng(0).integers(0, model.spec.sizes.vocab, (1, args.seq)).astype(np.int64)
    runs: dict[str, Callable[[], Any]] = {}
    for name, path in graphs.items():
        sess = session(path, args.threads, args.spinning)
        feed = {i.name: (ids if i.name == "input_ids" else np.ones_like(ids) if i.name == "attention_mask"
                         else np.zeros_like(ids)) for i in sess.get_inputs()}
        runs[name] = lambda sess=sess, feed=feed: _timed(lambda: sess.run(None, feed), args.inner)
    t_ids = torch.from_numpy(ids)

    def run_torch() -> float:
        with torch.inference_mode():
            return _timed(lambda: model(t_ids, attention_mask=torch.ones_like(t_ids)), args.inner)

    runs["torch"] = run_torch
    times = interleaved(runs, args.repeats * 2, args.pause)
    rows = {n: {"forward_ms": round(statistics.median(t) * 1e3, 2), "best_forward_ms": round(min(t) * 1e3, 2)}
            for n, t in times.items()}
    return {"graphs": {n: node_count(p) for n, p in graphs.items()}, "rows": rows}


def _timed(fn: Callable[[], Any], times: int = 1) -> float:
    """Seconds per call of `fn`, over `times` calls back to back (the steady state of a serving loop)."""
    t = time.perf_counter()
    for _ in range(times):
        fn()
    return (time.perf_counter() - t) / times


def _hf_model(hf: Path) -> Any:
    try:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(hf), torch_dtype=torch.float32).eval()
    except Exception as e:  # noqa: BLE001  (a reference contender only)
        print(f"  transformers cannot load {hf}: {str(e).splitlines()[0][:120]}", file=sys.stderr)
        return None


def print_model(key: str, info: dict[str, Any]) -> None:
    rows = info["rows"]
    print(f"\n{key} ({'batch 1, seq 128 forward' if key == 'bert' else 'prompt 128, 64 greedy steps, batch 1'})")
    if key == "bert":
        base = rows.get("optimum-O2", rows.get("optimum", {})).get("forward_ms")
        print(f"{'contender':<18} {'nodes':>6} {'forward ms':>11} {'vs optimum-O2':>14}")
        for n, r in rows.items():
            nodes = info["graphs"].get(n, {}).get("nodes", "")
            ratio = f"{base / r['forward_ms']:.2f}x" if base else ""
            print(f"{n:<18} {nodes!s:>6} {r['forward_ms']:>11.2f} {ratio:>14}")
        return
    ref = rows.get("genai") or rows.get("optimum-O2") or rows.get("optimum")
    print(f"{'contender':<18} {'nodes':>6} {'prefill ms':>11} {'decode tok/s':>13} {'best':>8} {'tokens':>7}  "
          "ratio (decode, prefill; best decode)")
    for n, r in rows.items():
        nodes = info["graphs"].get(n, {}).get("nodes", "")
        ratio = (f"{r['decode_tokens_per_s'] / ref['decode_tokens_per_s']:.2f}x, "
                 f"{ref['prefill_ms'] / r['prefill_ms']:.2f}x; "
                 f"{r['best_decode_tokens_per_s'] / ref['best_decode_tokens_per_s']:.2f}x") if ref else ""
        print(f"{n:<18} {nodes!s:>6} {r['prefill_ms']:>11.2f} {r['decode_tokens_per_s']:>13.1f} "
              f"{r['best_decode_tokens_per_s']:>8.1f} {'same' if r['same_tokens_as_torch'] else 'DIFF':>7}  {ratio}")
    base = rows.get("plmgraph fused")
    precisions = [n for n in rows if n.startswith("plmgraph fused ")]
    if base and precisions:  # decode tokens/s and prefill against the fp32 fused graph
        print(f"\n{'precision':<18} {'decode vs fp32':>15} {'prefill vs fp32':>16}")
        for n in ["plmgraph fused", *precisions]:
            r = rows[n]
            print(f"{n.removeprefix('plmgraph fused').strip() or 'fp32':<18} "
                  f"{r['decode_tokens_per_s'] / base['decode_tokens_per_s']:>14.2f}x "
                  f"{base['prefill_ms'] / r['prefill_ms']:>15.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
