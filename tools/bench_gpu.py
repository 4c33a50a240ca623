"""GPU latency: plmgraph's ONNX export on ONNX Runtime's CUDA execution provider against PyTorch eager.

    python tools/bench_gpu.py --json docs/onnx-bench-gpu.json              # on a CUDA machine: everything
    python tools/bench_gpu.py --models bert --work /tmp/bench-gpu --json bert.json         # the encoder only
    python tools/bench_gpu.py --models decoder --work /tmp/bench-gpu --json decoder.json   # the 1B decoder only
    python tools/bench_gpu.py --device cpu --sizes layers=1,hidden=64,heads=2,ffn=128,vocab=256,max_positions=64 \\
        --seq 16 --prompt 16 --steps 8 --repeats 1                          # the CPU smoke configuration (tests)

Random weights (seed 0), built by plmgraph and exported by plmgraph; PyTorch eager runs the same module.

Encoder: the zoo's ``bert-base`` (110M parameters, MLM and NSP heads), batch 1 and batch 8, sequence
128, one forward.  ONNX Runtime: ``pg.export_onnx`` (fused) in an ``InferenceSession`` with I/O
binding: the inputs copied to the device once, the outputs bound on the device (allocated by the
warm-up run, then reused), so a timed run moves nothing between host and device.  PyTorch: the module
on the same device, the inputs already there, ``torch.cuda.synchronize()`` before the clock stops.

Decoder: ``llama2-7b`` shrunk to about 1B parameters (``DECODER_SIZES``: 18 layers, hidden 2048, 16 heads,
FFN 5632, vocabulary 32000: 1,055,991,808 parameters), batch 1: prefill of a 128-token prompt, then 64
greedy steps with the KV cache.  ONNX Runtime: the deploy folder (``export_folder``) through
`plmgraph.runtime.OrtModel` (``provider=cuda``: one I/O binding, the cache in place on the device, the
last row of logits to the host each step), one ``steps``-token ``generate`` per round: prefill = from the
call to the end of its first session run, decode = the rest of the call / (steps - 1).  PyTorch: the
module with its KV cache, greedy, the same count of calls (each step's ``int(argmax)`` synchronizes, as
ORT's logits copy does).  The greedy tokens of the two are compared.  The graph (``--decoder-graph``):
fused, except fp32 on CUDA, which gets the plain graph: ONNX Runtime's GroupQueryAttention (the fused
graph's attention) has CUDA kernels for float16 and bfloat16 only, so a fused fp32 graph would run its
attention on the CPU.  Every ONNX Runtime graph is also run once under ORT's profiler, which says on
which execution provider each node ran (``placement`` in the JSON; the table lists nodes that were not
on the device's).

Precisions: ``fp32`` and ``fp16``.  fp16 ONNX is the fp32 export converted by
`plmgraph.exporters.onnx_quant.convert` (what ``export_folder(..., precision="fp16")`` runs after its
export; done on a copy so the model is exported once; the encoder's graph too, which ``export_folder``
refuses to convert because it writes converted precisions for decoder folders only): weights and
activations float16, the cache float16, logits float32.  PyTorch fp16 is ``.half()`` of the module, on
CUDA only; on the CPU the ONNX fp16 rows are compared with PyTorch fp32 (the ``torch_precision`` field).

Time on the machine: the decoder is exported twice (plain fp32 and fused, 1B parameters each; 208 s for one
export and 99 s for its fp16 conversion on 2 loaded CPU cores here) before anything is timed; ``--work`` keeps
the exports, so a second run (another ``--repeats``) starts at the timing.

Timing: contenders interleaved (one run each per round, the order rotated every round, after a warm-up
round), a pause between contenders (ONNX Runtime's worker threads spin after a run), medians over
``--repeats`` rounds; an encoder round is ``--inner`` forwards (their mean).  Reported: a table (ratio =
ONNX Runtime's latency / PyTorch's: below 1 is ONNX Runtime faster) and ``--json`` with the device,
the versions and the date.  Memory is checked before each model is built: the export's peak on the
host (`onnx_folder.check_export_memory`) and, on the device, a PyTorch and an ONNX Runtime copy of the
weights per precision plus room for activations; a model that does not fit is refused with a message.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime as dt
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import plmgraph as pg
from plmgraph.errors import PlmgraphError

sys.path.insert(0, str(Path(__file__).parent))
from bench_onnx import interleaved  # noqa: E402  (the same rounds as the CPU benchmark)

ENCODER = "bert-base"
DECODER = "llama2-7b"
#: ~1B parameters with LLaMA 2's layout (multi-head attention, SwiGLU, RMSNorm, untied head).
DECODER_SIZES = "layers=18,hidden=2048,heads=16,ffn=5632,max_positions=2048"
BYTES = {"fp32": 4, "fp16": 2}
#: Device memory beyond the weights: activations (batch 8 x 128 x FFN), the cache, CUDA's workspaces.
DEVICE_FACTOR, DEVICE_SLACK = 1.25, 2 * 2**30


class Refused(Exception):
    """A run that cannot happen here (no CUDA, not enough memory): the message says why; exit 1."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--precision", nargs="+", choices=list(BYTES), default=list(BYTES))
    ap.add_argument("--models", nargs="+", choices=["bert", "decoder"], default=["bert", "decoder"])
    ap.add_argument("--sizes", default=None,
                    help="size overrides for both models, after the defaults (the decoder's: " + DECODER_SIZES + ")")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="encoder batch sizes")
    ap.add_argument("--seq", type=int, default=128, help="encoder sequence length")
    ap.add_argument("--prompt", type=int, default=128, help="decoder prompt length")
    ap.add_argument("--steps", type=int, default=64, help="decoder greedy steps")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds (medians)")
    ap.add_argument("--inner", type=int, default=10, help="encoder forwards per round")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds between contenders")
    ap.add_argument("--threads", type=int, default=0, help="CPU: intra-op threads for both (0: their defaults)")
    ap.add_argument("--decoder-graph", choices=["auto", "fused", "plain"], default="auto",
                    help="the decoder's ONNX graph; auto: plain for fp32 on CUDA (GroupQueryAttention has CUDA "
                         "kernels for fp16 / bf16 only), fused otherwise")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep the exports here and reuse them on the next run")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be at least 2 (decode latency is measured from the second step)")
    try:
        return run(args)
    except Refused as e:
        print(f"bench_gpu: {e}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    ort = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = {key: load(key, args.sizes) for key in args.models}
    for key, spec in specs.items():  # before anything is built or exported
        check_memory(key, spec, args)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device_info(args.device),
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for key, spec in specs.items():
            work = (args.work or Path(tmp)) / key / str(spec.sizes).replace(" ", ",")  # kept exports: per size
            work.mkdir(parents=True, exist_ok=True)
            bench = bench_encoder if key == "bert" else bench_decoder
            results["rows"] += bench(spec, work, args)
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------ what this machine has


def check_device(device: str) -> Any:
    """ONNX Runtime, and for ``cuda`` both halves of the GPU path, or `Refused` naming what is missing."""
    try:
        from plmgraph.exporters.runtime import import_onnxruntime

        ort = import_onnxruntime()
    except PlmgraphError as e:
        raise Refused(str(e)) from None
    if device == "cpu":
        return ort
    missing = []
    if not torch.cuda.is_available():
        missing.append(f"PyTorch with CUDA (torch {torch.__version__}: torch.cuda.is_available() is False"
                       f"{', a CPU-only build' if torch.version.cuda is None else ''})")
    have = ort.get_available_providers()
    if "CUDAExecutionProvider" not in have:
        missing.append(f"ONNX Runtime's CUDAExecutionProvider (onnxruntime {ort.__version__} offers "
                       f"{', '.join(have)}; install onnxruntime-gpu instead of onnxruntime)")
    if missing:
        raise Refused("--device cuda needs PyTorch with CUDA and ONNX Runtime's CUDAExecutionProvider; missing on "
                      "this machine: " + "; ".join(missing) + ". Run with --device cpu for the CPU configuration.")
    return ort


def device_info(device: str) -> dict[str, Any]:
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        return {"type": "cuda", "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                "cuda": torch.version.cuda, "count": torch.cuda.device_count()}
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"type": "cpu", "name": name, "cores": os.cpu_count()}


def load(key: str, sizes: str | None) -> Any:
    name, base = (ENCODER, []) if key == "bert" else (DECODER, [DECODER_SIZES])
    return pg.load_spec(name, [*base, *([sizes] if sizes else [])])


def check_memory(key: str, spec: Any, args: argparse.Namespace) -> None:
    """Refuse a model whose export does not fit in the host's memory, or whose PyTorch and ONNX Runtime
    copies (one of each per precision) do not fit on the device."""
    from plmgraph.exporters.onnx_folder import check_export_memory

    from plmgraph.compile.build import _gib, available_memory
    from plmgraph.errors import ResourceError

    params = pg.resolve(spec).num_params()
    what = f"{spec.name} ({spec.sizes})"
    try:
        check_export_memory(params, 4, what)
    except ResourceError as e:
        raise Refused(f"{e}; pass --sizes with fewer layers or a smaller hidden size") from None
    torch_prec = [p for p in args.precision if p == "fp32" or args.device == "cuda"]
    weights = params * (sum(BYTES[p] for p in args.precision) + sum(BYTES[p] for p in torch_prec))
    need = int(weights * DEVICE_FACTOR) + DEVICE_SLACK
    free = available_memory(torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu"))
    if free is not None and need > free:
        raise Refused(f"{what}: {params:,} parameters need about {_gib(need)} on {args.device} (a PyTorch and an "
                      f"ONNX Runtime copy in {' and '.join(args.precision)}: {_gib(weights)} of weights, plus "
                      f"activations and the cache), but only {_gib(free)} is free; pass --sizes with fewer layers, "
                      "--precision fp16 alone, or --models to run one model")


# ------------------------------------------------------------------ building the contenders


def build(spec: Any) -> Any:
    model = pg.build(spec, seed=0).eval()
    model.check_inputs = False
    return model


def ort_session(path: Path, args: argparse.Namespace) -> Any:
    from plmgraph.exporters.runtime import import_onnxruntime

    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if args.threads:
        so.intra_op_num_threads = args.threads
    providers: list[Any] = ["CPUExecutionProvider"]
    if args.device == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": 0}))
    sess = ort.InferenceSession(str(path), so, providers=providers)
    check_provider(sess, args.device, path)
    return sess


def check_provider(sess: Any, device: str, path: Path) -> None:
    """ONNX Runtime falls back to the CPU when the CUDA provider cannot start (a missing cuDNN): refuse that."""
    if device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise Refused(f"{path}: ONNX Runtime did not start the CUDA execution provider (the session runs on "
                      f"{', '.join(sess.get_providers())}); check the CUDA and cuDNN libraries onnxruntime-gpu needs")


def converted(src: Path, dst: Path, precision: str) -> Path:
    """`src`'s folder copied to `dst` with its graph converted to `precision` (`onnx_quant.convert`)."""
    from plmgraph.exporters import onnx_quant

    graph = dst / src.name
    if graph.exists():
        return graph
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src.parent, tmp)
    t = time.perf_counter()
    onnx_quant.convert(tmp / src.name, onnx_quant.precision(precision))
    print(f"  converted to {precision} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    tmp.rename(dst)
    return graph


def export_encoder(model: Any, work: Path, precision: str) -> Path:
    path = work / "fp32" / "model.onnx"
    if not path.exists():
        t = time.perf_counter()
        pg.export_onnx(model, path, verify=False)
        print(f"  exported the encoder in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path if precision == "fp32" else converted(path, work / precision, precision)


def decoder_graph(args: argparse.Namespace, precision: str) -> str:
    """``fused`` or ``plain``: ONNX Runtime's GroupQueryAttention (the fused graph's attention with the cache)
    has CUDA kernels for float16 and bfloat16 only, so a fused fp32 graph would run its attention on the CPU."""
    if args.decoder_graph != "auto":
        return args.decoder_graph
    return "plain" if args.device == "cuda" and precision == "fp32" else "fused"


def export_decoder(model: Any, work: Path, precision: str, graph: str) -> Path:
    from plmgraph.exporters.onnx_folder import export_folder

    folder = work / f"{graph}-fp32"
    if not (folder / "model.onnx").exists():
        t = time.perf_counter()
        export_folder(model, folder, verify=False, fuse=graph == "fused")
        print(f"  exported the decoder folder ({graph}) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if precision == "fp32":
        return folder
    return converted(folder / "model.onnx", work / f"{graph}-{precision}", precision).parent


def torch_model(model: Any, device: str, precision: str) -> Any | None:
    """PyTorch's contender: the module on `device` (fp16: a ``.half()`` copy, CUDA only)."""
    if precision == "fp16":
        return copy.deepcopy(model).half() if device == "cuda" else None
    return model


def placement(path: Path, feed: dict[str, np.ndarray], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Where ONNX Runtime ran each node of `path` on one run of `feed` (its profiler's ``provider`` per node):
    the count on the device's execution provider and the op types of those that were not (a CUDA session
    puts some shape arithmetic on the CPU by design; anything heavier there is worth knowing)."""
    from plmgraph.exporters.runtime import import_onnxruntime

    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = str(work / "placement")
    providers: list[Any] = ["CPUExecutionProvider"]
    if args.device == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": 0}))
    sess = ort.InferenceSession(str(path), so, providers=providers)
    sess.run(None, feed)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink(missing_ok=True)
    want = "CUDAExecutionProvider" if args.device == "cuda" else "CPUExecutionProvider"
    on, off = 0, collections.Counter()
    for e in events:
        a = e.get("args") or {}
        if e.get("cat") == "Node" and "provider" in a and "op_name" in a:
            if a["provider"] == want:
                on += 1
            else:
                off[a["op_name"]] += 1
    return {"provider": want, "nodes_on_provider": on, "nodes_elsewhere": dict(off.most_common())}


# ------------------------------------------------------------------ runs


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bound_encoder(sess: Any, feed: dict[str, np.ndarray], device: str) -> tuple[Callable[[], None], dict[str, Any]]:
    """A run of `sess` on one I/O binding: inputs copied to the device once, outputs bound on the device
    (the warm-up run allocates them; they are bound again as they are, so later runs reuse them)."""
    from plmgraph.exporters.runtime import import_onnxruntime

    ort = import_onnxruntime()
    io = sess.io_binding()
    values = {n: ort.OrtValue.ortvalue_from_numpy(a, device, 0) for n, a in feed.items()}
    for n, v in values.items():
        io.bind_ortvalue_input(n, v)
    outs = [o.name for o in sess.get_outputs()]
    for n in outs:
        io.bind_output(n, device, 0)
    sess.run_with_iobinding(io)  # the warm-up
    io.synchronize_outputs()
    host = dict(zip(outs, io.copy_outputs_to_cpu(), strict=True))  # its outputs, for the check against PyTorch
    got = io.get_outputs()
    io.clear_binding_outputs()
    for n, v in zip(outs, got, strict=True):
        io.bind_ortvalue_output(n, v)

    def run(values: dict[str, Any] = values) -> None:  # (the bound inputs live as long as the run)
        sess.run_with_iobinding(io)
        io.synchronize_outputs()

    return run, host


def bench_encoder(spec: Any, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    print(f"{spec.name}: building and exporting", file=sys.stderr)
    model = build(spec)
    params = pg.resolve(spec).num_params()
    graphs = {p: export_encoder(model, work, p) for p in args.precision}
    model.to(args.device)
    sessions = {p: ort_session(graphs[p], args) for p in args.precision}
    ids = np.zeros((1, args.seq), np.int64)
    placed = {p: placement(graphs[p], {i.name: ids for i in sessions[p].get_inputs()}, args, work)
              for p in args.precision}
    torch_models = {p: torch_model(model, args.device, p) for p in args.precision}
    torch_of = {p: p if torch_models[p] is not None else "fp32" for p in args.precision}
    rows = []
    for batch in args.batches:
        ids = np.random.default_rng(0).integers(0, spec.sizes.vocab, (batch, args.seq)).astype(np.int64)
        feed_np = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed_t = {k: torch.from_numpy(v).to(args.device) for k, v in feed_np.items()}
        runs: dict[str, Callable[[], float]] = {}
        diffs: dict[str, float] = {}
        for p, sess in sessions.items():
            run_ort, outs = bound_encoder(sess, {i.name: feed_np[i.name] for i in sess.get_inputs()}, args.device)
            runs[f"ort {p}"] = _repeat(run_ort, args.inner, args.device)
            tm = torch_models[p]
            if tm is not None:
                def run_torch(tm: Any = tm, feed_t: dict[str, torch.Tensor] = feed_t) -> None:
                    with torch.inference_mode():
                        tm(**feed_t)
                runs[f"torch {p}"] = _repeat(run_torch, args.inner, args.device)
            with torch.inference_mode():  # the two agree (a check that both ran the same model)
                ref = (tm or model)(**feed_t).last_hidden_state.float().cpu().numpy()
            diffs[p] = float(np.abs(outs["last_hidden_state"].astype(np.float32) - ref).max())
        print(f"  batch {batch}: timing {len(runs)} contenders x {args.repeats} rounds", file=sys.stderr)
        times = interleaved(runs, args.repeats, args.pause)
        for p in args.precision:
            o = statistics.median(times[f"ort {p}"]) * 1e3
            t = statistics.median(times[f"torch {torch_of[p]}"]) * 1e3
            rows.append({"model": spec.name, "params": params, "case": f"forward, batch {batch}, seq {args.seq}",
                         "precision": p, "graph": "fused", "torch_precision": torch_of[p], "ort_ms": round(o, 3),
                         "torch_ms": round(t, 3), "ratio": round(o / t, 3),
                         "last_hidden_state_max_abs_diff": diffs[p], "placement": placed[p]})
    return rows


def _repeat(fn: Callable[[], Any], inner: int, device: str) -> Callable[[], float]:
    """Seconds per call of `fn`, the mean of `inner` calls (synchronized at the end)."""
    def timed() -> float:
        sync(device)
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        sync(device)
        return (time.perf_counter() - t) / inner
    return timed


class _Clocked:
    """`OrtModel.session` with the end of every ``run_with_iobinding`` timestamped (everything else as it is),
    so that one ``generate`` gives both the prefill's latency and the decode steps'."""

    def __init__(self, session: Any) -> None:
        self._session, self.ends = session, []

    def run_with_iobinding(self, *a: Any, **kw: Any) -> Any:
        out = self._session.run_with_iobinding(*a, **kw)
        self.ends.append(time.perf_counter())
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def ort_generate(m: Any, prompt: np.ndarray, steps: int) -> tuple[float, float, list[int]]:
    """`OrtModel`'s greedy generation (one ``generate`` of `steps` tokens): prefill s (from the call to the end
    of the first run, the prompt's), decode s per token (the rest of the call over its steps - 1 cached runs,
    every step's host work included), the `steps` tokens."""
    clock = m.session if isinstance(m.session, _Clocked) else _Clocked(m.session)
    m.session = clock
    clock.ends = []
    t0 = time.perf_counter()
    ids = m.generate(prompt, steps, temperature=0.0, ignore_eos=True)
    t2 = time.perf_counter()
    if len(clock.ends) != steps:
        raise RuntimeError(f"OrtModel.generate ran its session {len(clock.ends)} times for {steps} tokens; this "
                           "script expects one run per token (plmgraph.runtime changed: update ort_generate)")
    return clock.ends[0] - t0, (t2 - clock.ends[0]) / (steps - 1), [int(t) for t in ids[0, prompt.shape[1]:]]


def torch_generate(model: Any, prompt: torch.Tensor, steps: int, device: str) -> tuple[float, float, list[int]]:
    """PyTorch's greedy generation with the KV cache: prefill s (the prompt's forward and its token),
    decode s per token (steps - 1 cached calls), the `steps` tokens."""
    tokens: list[int] = []
    with torch.inference_mode():
        sync(device)
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True)
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(int(nxt[0, 0]))  # synchronizes
        t1 = time.perf_counter()
        for _ in range(steps - 1):
            out = model(nxt, past_key_values=out.past_key_values, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(nxt[0, 0]))
        t2 = time.perf_counter()
    return t1 - t0, (t2 - t1) / (steps - 1), tokens


def bench_decoder(spec: Any, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    from plmgraph.runtime import OrtModel

    if args.prompt + args.steps > spec.sizes.max_positions:
        raise Refused(f"--prompt {args.prompt} + --steps {args.steps} exceed the decoder's {spec.sizes.max_positions} "
                      "positions (--sizes max_positions=...)")
    params = pg.resolve(spec).num_params()
    print(f"{spec.name} ({params:,} parameters): building and exporting", file=sys.stderr)
    model = build(spec)
    graphs = {p: decoder_graph(args, p) for p in args.precision}
    folders = {p: export_decoder(model, work, p, graphs[p]) for p in args.precision}
    model.to(args.device)
    prompt = np.random.default_rng(0).integers(0, spec.sizes.vocab, (1, args.prompt)).astype(np.int64)
    prompt_t = torch.from_numpy(prompt).to(args.device)
    runs: dict[str, Callable[[], Any]] = {}
    torch_of: dict[str, str] = {}
    placed: dict[str, Any] = {}
    for p in args.precision:
        m = OrtModel(folders[p], provider=args.device, threads=args.threads)
        check_provider(m.session, args.device, folders[p])
        placed[p] = placement(m.file, m.complete(prompt), args, work)
        runs[f"ort {p}"] = lambda m=m: ort_generate(m, prompt, args.steps)
        tm = torch_model(model, args.device, p)
        torch_of[p] = p if tm is not None else "fp32"
        if tm is not None:
            runs[f"torch {p}"] = lambda tm=tm: torch_generate(tm, prompt_t, args.steps, args.device)
    print(f"  timing {len(runs)} contenders x {args.repeats} rounds", file=sys.stderr)
    times = interleaved(runs, args.repeats, args.pause)
    rows = []
    for p in args.precision:
        o, t = times[f"ort {p}"], times[f"torch {torch_of[p]}"]
        ort_tokens, torch_tokens = o[0][2], t[0][2]
        first_diff = next((i for i, (a, b) in enumerate(zip(ort_tokens, torch_tokens, strict=True)) if a != b), None)
        for case, i in ((f"prefill, prompt {args.prompt}", 0), (f"decode per token, {args.steps} greedy steps", 1)):
            om, tm_ = statistics.median(g[i] for g in o) * 1e3, statistics.median(g[i] for g in t) * 1e3
            rows.append({"model": spec.name, "params": params, "case": case, "precision": p, "graph": graphs[p],
                         "torch_precision": torch_of[p], "placement": placed[p], "ort_ms": round(om, 3),
                         "torch_ms": round(tm_, 3),
                         "ratio": round(om / tm_, 3), "same_tokens": first_diff is None,
                         "first_different_step": first_diff, "ort_tokens": ort_tokens, "torch_tokens": torch_tokens})
    return rows


# ------------------------------------------------------------------ report


def print_table(results: dict[str, Any]) -> None:
    d, v = results["device"], results["versions"]
    print(f"\n{d['type']} ({d['name']}), onnxruntime {v['onnxruntime']}, torch {v['torch']}, {results['date']}; "
          f"medians of {results['settings']['repeats']} interleaved rounds; ratio = ORT ms / PyTorch ms "
          "(below 1: ONNX Runtime faster)")
    head = (f"{'model':<11} {'case':<34} {'prec':<5} {'graph':<6} {'ORT ms':>10} {'PyTorch ms':>11} "
            f"{'ORT/PyTorch':>12}  tokens")
    print(head)
    print("-" * len(head))
    for r in results["rows"]:
        prec = r["precision"] + ("*" if r["torch_precision"] != r["precision"] else "")
        tokens = "" if "same_tokens" not in r else \
            "same" if r["same_tokens"] else f"DIFF from step {r['first_different_step']}"
        print(f"{r['model']:<11} {r['case']:<34} {prec:<5} {r['graph']:<6} {r['ort_ms']:>10.3f} {r['torch_ms']:>11.3f} "
              f"{r['ratio']:>11.2f}x  {tokens}")
    if any(r["torch_precision"] != r["precision"] for r in results["rows"]):
        print("* against PyTorch fp32 (PyTorch fp16 runs on CUDA only)")
    seen = set()
    for r in results["rows"]:
        pl, key = r["placement"], (r["model"], r["precision"])
        if pl["nodes_elsewhere"] and key not in seen:
            seen.add(key)
            ops = ", ".join(f"{op} x{n}" for op, n in pl["nodes_elsewhere"].items())
            print(f"{r['model']} {r['precision']}: nodes not on {pl['provider']} "
                  f"({pl['nodes_on_provider']} are): {ops}")


if __name__ == "__main__":
    sys.exit(main())
