"""`plmgraph run` and `plmgraph bench`: an export folder (or a bare .onnx file) on ONNX Runtime.

    plmgraph run deploy/ --input-ids 1,2,3          # one forward: every output's shape, the top next tokens
    plmgraph run model.onnx --input-ids 1,2,3 --json
    plmgraph bench deploy/                          # ONNX Runtime vs PyTorch eager, side by side, interleaved
    plmgraph generate deploy/ --prompt "The" -n 50  # (train_cmds) dispatches here for a folder with model.onnx

torch and onnxruntime are imported inside the commands, never at import time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from . import JSON_HELP, app, err, out, print_json, run

PROVIDER_HELP = "ONNX Runtime execution provider: tensorrt, cuda or cpu (default: the first of those available)."


def _open(path: str, provider: str | None, **kw: Any) -> Any:
    with err.status(f"loading {path} in ONNX Runtime", spinner="dots"):
        from ..runtime import OrtModel

        return OrtModel(path, provider=provider, **kw)


def _ids(text: str) -> list[int]:
    from ..errors import UsageError

    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise UsageError(f"--input-ids takes comma-separated integers such as 1,2,3; got {text!r}") from None
    if not ids:
        raise UsageError("--input-ids is empty; give comma-separated integers such as 1,2,3")
    return ids


def generate_onnx(path: str, prompts: list[str], max_new_tokens: int, *, temperature: float, top_k: int,
                  top_p: float, repetition_penalty: float, seed: int | None, provider: str | None) -> None:
    """`plmgraph generate` on an export folder."""
    from ..errors import InputError

    m = _open(path, provider)
    if m.tokenizer is None:
        raise InputError(f"{path}: no tokenizer.json in the folder, so text prompts cannot be encoded; export from a "
                         "run folder (it carries its tokenizer), or use plmgraph.runtime.OrtModel.generate with ids")
    ids = m.generate(list(prompts), max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                     repetition_penalty=repetition_penalty, seed=seed)
    for row in ids.tolist():
        out.print(m.tokenizer.decode(row), highlight=False, markup=False)


@app.command("run")
def run_cmd(
    path: Annotated[str, typer.Argument(help="An export folder (model.onnx + configs) or a .onnx file.",
                                        metavar="DEPLOY|FILE")],
    input_ids: Annotated[str, typer.Option("--input-ids", help="Comma-separated token ids of one sequence.")],
    top: Annotated[int, typer.Option("--top", help="Most likely next tokens to show.")] = 5,
    provider: Annotated[str | None, typer.Option("--provider", help=PROVIDER_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """One forward on ONNX Runtime: the shape of every output and the most likely next tokens."""

    def go() -> None:
        import numpy as np

        from ..errors import InputError

        ids = _ids(input_ids)
        m = _open(path, provider)
        if m.vocab is not None and max(ids) >= m.vocab or min(ids) < 0:
            raise InputError(f"--input-ids: {max(ids) if max(ids) >= 0 else min(ids)} is outside the vocabulary "
                             f"(0..{(m.vocab or 1) - 1})")
        feed = m.complete(np.array([ids], np.int64))
        result = m.forward(feed)
        shapes = {k: list(v.shape) for k, v in result.items()}
        tops: list[dict[str, Any]] = []
        if "logits" in result and result["logits"].ndim == 3:
            last = result["logits"][0, -1].astype(np.float64)
            probs = np.exp(last - last.max())
            probs /= probs.sum()
            for i in np.argsort(-last)[:top]:
                text = m.tokenizer.decode([int(i)], skip_special_tokens=False) if m.tokenizer else None
                tops.append({"id": int(i), "logit": float(last[i]), "prob": float(probs[i]), "token": text})
        if as_json:
            print_json({"path": path, "provider": m.session.get_providers()[0], "inputs": {k: list(v.shape)
                        for k, v in feed.items()}, "outputs": shapes, "top": tops})
            return
        from rich.table import Table

        t = Table(title=f"{m.file} on {m.session.get_providers()[0]}", title_justify="left")
        for col in ("", "name", "shape"):
            t.add_column(col)
        for k, v in feed.items():
            t.add_row("input", k, str(list(v.shape)))
        for k, s in shapes.items():
            t.add_row("output", k, str(s))
        out.print(t)
        if tops:
            n = Table(title="next token (last position)", title_justify="left")
            for col, j in (("id", "right"), ("token", "left"), ("logit", "right"), ("prob", "right")):
                n.add_column(col, justify=j)
            for r in tops:
                n.add_row(str(r["id"]), repr(r["token"]) if r["token"] is not None else "", f"{r['logit']:.3f}",
                          f"{r['prob']:.3f}")
            out.print(n)

    run(go)


@app.command("bench")
def bench_cmd(
    path: Annotated[str, typer.Argument(help="An export folder (model.onnx + spec.yaml).", metavar="DEPLOY")],
    prompt_len: Annotated[int, typer.Option("--prompt-len", help="Prompt tokens (batch 1).")] = 32,
    new_tokens: Annotated[int, typer.Option("--new-tokens", help="Cached decode steps timed.")] = 32,
    repeats: Annotated[int, typer.Option("--repeats", help="Rounds, ORT and PyTorch alternating.")] = 5,
    threads: Annotated[int, typer.Option("--threads", help="Threads for both (0: each library's default).")] = 0,
    torch_source: Annotated[str | None, typer.Option("--torch", help="Run or checkpoint folder for PyTorch's "
                                                     "weights (default: the folder's spec.yaml, random weights: "
                                                     "the same work, so the same speed).")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help=PROVIDER_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """ONNX Runtime vs PyTorch eager on the same model: prefill latency and cached decode tokens/s.

    The two alternate round by round (medians reported), ORT with its worker threads' spinning off
    (``session.intra_op.allow_spinning = 0``) so that it does not slow the PyTorch run after it.
    """

    def go() -> None:
        from ..errors import InputError, UsageError

        if min(prompt_len, new_tokens, repeats) < 1:
            raise UsageError("--prompt-len, --new-tokens and --repeats must be at least 1")
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"{path}: bench takes an export folder (plmgraph export SPEC -o FOLDER --kv-cache); "
                             "it needs the spec.yaml beside model.onnx to build PyTorch's side")
        m = _open(path, provider, threads=threads, spinning=False)
        if not m.past or "logits" not in m.outputs:
            raise InputError(f"{path}: bench times cached generation; export the decoder with --kv-cache")
        import numpy as np
        import torch

        with err.status("building PyTorch's model", spinner="dots"):
            model = _torch_model(folder, torch_source)
        if threads:
            torch.set_num_threads(threads)
        ctx = m.context_length or model.spec.sizes.max_positions
        if ctx is not None and prompt_len + new_tokens > ctx:
            raise UsageError(f"--prompt-len + --new-tokens = {prompt_len + new_tokens} exceeds the model's {ctx} "
                             "positions")
        gen = np.random.default_rng(0)
        ids = gen.integers(0, m.vocab or model.spec.sizes.vocab, (1, prompt_len)).astype(np.int64)
        tids = torch.from_numpy(ids)
        from ..train.generate import generate

        def ort_prefill() -> None:
            m.forward(m.complete(ids))

        start = torch.full((1, 1), m.pad) if model.spec.family == "encoder-decoder" else None

        def torch_prefill() -> None:  # an encoder-decoder: the encoder and the decoder's first step, as ORT's
            with torch.no_grad():
                model(tids, use_cache=True, decoder_input_ids=start)

        def ort_decode() -> None:
            m.generate(ids, new_tokens, temperature=0.0, ignore_eos=True)

        def torch_decode() -> None:
            generate(model, None, tids, new_tokens, temperature=0.0)

        rounds: dict[str, list[float]] = {k: [] for k in ("ort_prefill", "torch_prefill", "ort_decode",
                                                          "torch_decode")}
        for fn in (ort_prefill, torch_prefill, ort_decode, torch_decode):  # warm-up
            fn()
        for _ in range(repeats):
            for key, fn in (("ort_prefill", ort_prefill), ("torch_prefill", torch_prefill),
                            ("ort_decode", ort_decode), ("torch_decode", torch_decode)):
                t0 = time.perf_counter()
                fn()
                rounds[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in rounds.items()}
        # decode tokens/s: the whole generate (prefill + new_tokens steps) minus one prefill
        dec = {s: new_tokens / max(med[f"{s}_decode"] - med[f"{s}_prefill"], 1e-9) for s in ("ort", "torch")}
        result = {"path": path, "provider": m.session.get_providers()[0], "spec": model.spec.name,
                  "prompt_len": prompt_len, "new_tokens": new_tokens, "repeats": repeats,
                  "threads": threads or None, "torch_weights": torch_source or "random (spec.yaml)",
                  "prefill_ms": {"ort": med["ort_prefill"] * 1e3, "torch": med["torch_prefill"] * 1e3},
                  "decode_tokens_per_s": dec,
                  "ratio": {"prefill_ort_over_torch_time": med["ort_prefill"] / med["torch_prefill"],
                            "decode_ort_over_torch_speed": dec["ort"] / dec["torch"]}}
        if as_json:
            print_json(result)
            return
        from rich.table import Table

        t = Table(title=f"{model.spec.name}: batch 1, {prompt_len}-token prompt, {new_tokens} cached steps, median "
                  f"of {repeats} interleaved rounds", title_justify="left")
        for col in ("", f"ONNX Runtime ({result['provider']})", "PyTorch eager", "ratio"):
            t.add_column(col, justify="right")
        t.add_row("prefill ms", f"{result['prefill_ms']['ort']:.2f}", f"{result['prefill_ms']['torch']:.2f}",
                  f"{result['ratio']['prefill_ort_over_torch_time']:.2f}x time")
        t.add_row("decode tokens/s", f"{dec['ort']:.0f}", f"{dec['torch']:.0f}",
                  f"{result['ratio']['decode_ort_over_torch_speed']:.2f}x speed")
        out.print(t)
        out.print(f"PyTorch weights: {result['torch_weights']}", highlight=False)

    run(go)


def _torch_model(folder: Path, source: str | None) -> Any:
    from ..errors import InputError

    if source is not None:
        from ..compile.io import load
        from ..train.trainer import RUN_FILE, latest_checkpoint

        s = Path(source)
        return load(latest_checkpoint(s) if (s / RUN_FILE).is_file() else s).eval()
    spec_file = folder / "spec.yaml"
    if not spec_file.is_file():
        raise InputError(f"{folder}: no spec.yaml beside model.onnx (plmgraph export writes one); pass --torch RUN "
                         "to say which model PyTorch should run")
    from ..compile import build
    from ..spec import load_spec

    return build(load_spec(str(spec_file)), device="cpu", seed=0).eval()


__all__ = ["generate_onnx"]
