"""Precision of an ONNX deploy folder: ``fp32`` (as exported), ``fp16``, ``int8``, ``int4``.

    pg.export_folder(model, "deploy/", tokenizer=tok, precision="int4")
    # plmgraph export RUN -o deploy/ --kv-cache --precision int4

The conversion runs on the finished graph (after `onnx_fuse` and ONNX Runtime's optimizer), so a fused
graph keeps its ``com.microsoft`` GroupQueryAttention / RotaryEmbedding / SkipSimplifiedLayerNormalization
nodes and only its weight matrices change; the plain graph (``fuse=False``) is converted the same way.

``fp16``   every float weight and activation in float16 (``onnxruntime.transformers.float16``); the key/value
           cache (``past_key_values.*`` / ``present.*``) is float16 too (half the cache memory), ``logits``
           and ``last_hidden_state`` stay float32 (a Cast at the end), token inputs are unchanged.
           Meant for CUDA; it also runs on ONNX Runtime's CPU kernels (where it is not faster).
``int8``   dynamic quantization (``quantize_dynamic``): each MatMul with a constant weight gets int8
           weights with one scale per output column (``per_channel``: the columns of a trained matrix
           differ in range, one scale for the whole matrix costs accuracy), activations quantized per call
           (uint8).  For CPU.
``int4``   weight-only ``MatMulNBits`` (``MatMulNBitsQuantizer``): 4-bit weights in blocks of `block_size`
           input rows (default 32), each block with its scale and, by default, a zero point (asymmetric);
           ``accuracy_level`` 4 (activations in int8 inside the kernel, ONNX Runtime's fastest CPU path).
           For CPU.

A tied LM head (``FusedMatMul(x, E, transB=1)`` reading the embedding table, see `onnx_fuse`) is untied
first for int8 / int4 (a MatMul on a transposed copy of the table), so that the head, often the largest
matrix, is quantized too; the embedding lookup (Gather) stays float32.

A converted graph cannot match PyTorch to fp32 precision, and `verify_precision` does not pretend it
does: it reports, per output, the max absolute difference and the max difference relative to the
output's largest magnitude (``max |ORT - PyTorch| / max |PyTorch|``), checked against the precision's
`Tolerance`, and the perplexity of the graph in ONNX Runtime on held-out text against PyTorch's (fp32),
checked against the precision's ratio bound.  Held-out text: Python's own documentation
(``pydoc_data.topics``, offline everywhere) in the folder's tokenizer, or, for a model without a
tokenizer, tokens sampled from the PyTorch model itself (seeded).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plmgraph.errors import ExportError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)  # what MatMulNBits accepts (a power of two >= 16)
INT4_BLOCK = 32
INT4_SYMMETRIC = False
INT4_ACCURACY_LEVEL = 4
HELD_OUT_TOKENS = 1024  # perplexity text length (tokens), at most
PPL_WINDOW = 256  # tokens per forward pass of the perplexity window, at most (the model's max_positions if less)


@dataclass(frozen=True)
class Tolerance:
    """What a converted graph is checked against: each output's ``max |ORT - PyTorch| / max |PyTorch|`` <= `rel`,
    and perplexity(ORT) / perplexity(PyTorch fp32) <= `ppl_ratio`."""

    rel: float
    ppl_ratio: float


#: Set from measurements (README, Deploy > Precision), with room for other models: fp16 rounds at
#: ~1e-3 per operation, int8 and int4 change the weights themselves.
TOLERANCES = {"fp16": Tolerance(0.02, 1.01), "int8": Tolerance(0.15, 1.05), "int4": Tolerance(0.35, 1.25)}


@dataclass(frozen=True)
class Precision:
    """One conversion: its name and, for int4, the MatMulNBits settings."""

    name: str = "fp32"
    block_size: int | None = None
    symmetric: bool | None = None
    accuracy_level: int | None = None

    @property
    def tolerance(self) -> Tolerance | None:
        return TOLERANCES.get(self.name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"precision": self.name}
        if self.name == "int8":
            d.update(quantizer="onnxruntime.quantization.quantize_dynamic", weights="int8, per output column",
                     activations="uint8, dynamic")
        elif self.name == "int4":
            d.update(quantizer="onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer",
                     block_size=self.block_size, symmetric=self.symmetric, accuracy_level=self.accuracy_level)
        elif self.name == "fp16":
            d.update(converter="onnxruntime.transformers.float16", io="logits, last_hidden_state float32; "
                     "key/value cache float16")
        return d

    def __str__(self) -> str:
        if self.name != "int4":
            return self.name
        return f"int4 (block {self.block_size}, {'symmetric' if self.symmetric else 'asymmetric'})"


def precision(name: str = "fp32", block_size: int | None = None, symmetric: bool | None = None) -> Precision:
    """Check and complete a precision request (int4's defaults filled in).

    Raises:
        ExportError: an unknown precision, a block size or symmetry given to another precision than int4,
            a block size MatMulNBits does not take.
    """
    if name not in PRECISIONS:
        raise ExportError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}")
    if name != "int4":
        if block_size is not None or symmetric is not None:
            raise ExportError(f"--block-size / --symmetric are int4's MatMulNBits settings; precision {name} "
                              "has none (use --precision int4)")
        return Precision(name)
    block = INT4_BLOCK if block_size is None else block_size
    if block not in INT4_BLOCK_SIZES:
        raise ExportError(f"int4 block size {block} is not one of {', '.join(map(str, INT4_BLOCK_SIZES))} "
                          "(MatMulNBits takes a power of two from 16)")
    return Precision("int4", block, INT4_SYMMETRIC if symmetric is None else symmetric, INT4_ACCURACY_LEVEL)


def check_model(model: Any, p: Precision, kv_cache: bool) -> None:
    """Refuse, before anything is exported, a precision this model cannot take.

    Raises:
        ExportError: a converted precision for anything but a cached decoder; int4 with a block size
            that does not divide the input width of every linear layer.
    """
    if p.name == "fp32":
        return
    spec = model.spec
    if spec.family != "decoder" or not kv_cache:
        raise ExportError(f"--precision {p.name}: {spec.name} is {'an' if spec.family[0] == 'e' else 'a'} "
                          f"{spec.family}; converted precisions are written for decoder deploy folders "
                          "(--kv-cache), where ONNX Runtime GenAI runs them and perplexity checks them; export "
                          "it in fp32 (without --precision)")
    if p.name == "int4":
        from torch import nn

        widths = sorted({m.in_features for m in model.modules() if isinstance(m, nn.Linear)} | {spec.sizes.hidden})
        bad = [w for w in widths if w % p.block_size]
        if bad:
            ok = [b for b in INT4_BLOCK_SIZES if all(w % b == 0 for w in widths)]
            raise ExportError(f"--precision int4 --block-size {p.block_size}: the block must divide the input width "
                              f"of every linear layer of {spec.name} ({', '.join(map(str, widths))}); "
                              f"{', '.join(map(str, bad))} {'is' if len(bad) == 1 else 'are'} not a multiple of "
                              f"{p.block_size}; " + (f"block sizes that fit: {', '.join(map(str, ok))}" if ok else
                                                     "no MatMulNBits block size (16 .. 256) fits"))


# ----------------------------------------------------------------- conversion


def convert(path: str | Path, p: Precision) -> dict[str, int]:
    """Convert the graph at `path` (written by `export_onnx`) to precision `p`, in place.

    Returns:
        What changed: ``{"MatMulNBits": n}``, ``{"MatMulInteger": n}``, ``{"float16 initializers": n}``, and
        ``"untied heads"`` (int8 / int4).

    Raises:
        ExportError: the quantizer failed, or found a weight it could not convert (int4: a width the block
            does not divide).
    """
    import onnx

    path = Path(path)
    if p.name == "fp32":
        return {}
    data = path.with_name(path.name + ".data")
    m = onnx.load(str(path))  # (its outputs are typed: the fused rewrites type what they make, onnx_fuse._take_over)
    done: dict[str, int] = {}
    try:
        if p.name == "fp16":
            m = _fp16(m, done)
        else:
            done["untied heads"] = _untie_heads(m)
            weights = _weight_matmuls(m)
            m = _int8(m) if p.name == "int8" else _int4(m, p, weights)
            op = "MatMulInteger" if p.name == "int8" else "MatMulNBits"
            done[op] = sum(n.op_type == op for n in m.graph.node)
            if done[op] != len(weights):
                left = sorted(set(weights) - {n.name for n in m.graph.node if n.op_type != "MatMul"})
                raise ExportError(f"{p} left {len(weights) - done[op]} of {len(weights)} weight MatMuls "
                                  f"unconverted ({', '.join(left[:4])})")
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001  (the converters raise assorted types; the first line says what)
        raise ExportError(f"converting {path.name} to {p}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    large = m.ByteSize() > 2**31 - 2**27 if _fits(m) else True
    data.unlink(missing_ok=True)
    onnx.save_model(m, str(path), save_as_external_data=large, location=data.name, size_threshold=1024)
    return done


def _fits(m: Any) -> bool:
    try:
        m.ByteSize()
        return True
    except Exception:  # noqa: BLE001  (protobuf refuses to size a message over 2 GB)
        return False


def _fp16(m: Any, done: dict[str, int]) -> Any:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = [v.name for v in list(m.graph.input) + list(m.graph.output)
            if not v.name.startswith(("past_key_values.", "present."))]
    before = sum(t.data_type == 1 for t in m.graph.initializer)
    m = convert_float_to_float16(m, keep_io_types=keep, disable_shape_infer=True)
    done["float16 initializers"] = before - sum(t.data_type == 1 for t in m.graph.initializer)
    return m


def _weight_matmuls(m: Any) -> list[str]:
    inits = {t.name: t for t in m.graph.initializer}
    names = []
    for i, n in enumerate(m.graph.node):
        if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in inits and len(inits[n.input[1]].dims) == 2:
            if not n.name:
                n.name = f"MatMul_w{i}"
            names.append(n.name)
    return names


def _untie_heads(m: Any) -> int:
    """``com.microsoft.FusedMatMul(x, E, transB=1, alpha=1)`` on an initializer -> ``MatMul(x, Eᵀ)`` on a copy."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in m.graph.initializer}
    untied = 0
    for i, n in enumerate(m.graph.node):
        if n.op_type != "FusedMatMul" or n.domain != "com.microsoft" or n.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if attrs.get("transB") != 1 or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 \
                or attrs.get("transBatchA", 0) or attrs.get("transBatchB", 0):
            continue
        table = numpy_helper.to_array(inits[n.input[1]], base_dir="")
        copy = numpy_helper.from_array(np.ascontiguousarray(table.T), name=n.input[1] + "_head_T")
        m.graph.initializer.append(copy)
        mm = helper.make_node("MatMul", [n.input[0], copy.name], list(n.output),
                              name=(n.name or f"head{i}") + "_untied")
        m.graph.node.remove(n)
        m.graph.node.insert(i, mm)
        untied += 1
    del onnx
    return untied


def _int8(m: Any) -> Any:
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(m, out, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8,
                         use_external_data_format=not _fits(m) or m.ByteSize() > 2**30,
                         extra_options={"MatMulConstBOnly": True})
        return onnx.load(str(out))


def _int4(m: Any, p: Precision, weights: Sequence[str]) -> Any:
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    inits = {t.name: t for t in m.graph.initializer}
    bad = sorted({int(inits[n.input[1]].dims[0]) for n in m.graph.node if n.name in weights
                  and inits[n.input[1]].dims[0] % p.block_size})
    if bad:
        raise ExportError(f"int4 block size {p.block_size} does not divide the input width {bad} of a MatMul "
                          "in the graph")
    del numpy_helper
    cfg = DefaultWeightOnlyQuantConfig(block_size=p.block_size, is_symmetric=bool(p.symmetric),
                                       accuracy_level=p.accuracy_level)
    with _quiet_quantizer():
        q = MatMulNBitsQuantizer(m, algo_config=cfg)
        q.process()
    return q.model.model


class _quiet_quantizer:
    """ONNX Runtime's quantizers log through the root logger at INFO (a line per tensor)."""

    def __enter__(self) -> None:
        self.levels = [(lg, lg.level) for lg in (logging.getLogger(), logging.getLogger("onnxruntime"))]
        for lg, _ in self.levels:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for lg, level in self.levels:
            lg.setLevel(level)


# ----------------------------------------------------------------- perplexity


def held_out_ids(model: Any, tokenizer: Any = None, tokens: int = HELD_OUT_TOKENS,
                 seed: int = 0) -> tuple[list[int], str]:
    """(token ids, where they come from): held-out text for the perplexity check.

    With a tokenizer: Python's documentation (``pydoc_data.topics``, the last topics in sorted order,
    which the repository's own training fixtures do not use), encoded and cut at `tokens`.  Without one:
    `tokens` ids sampled from the PyTorch model itself (temperature 1, seeded)."""
    if tokenizer is not None:
        from pydoc_data.topics import topics

        keys = sorted(topics)
        ids: list[int] = []
        for k in reversed(keys):
            ids.extend(tokenizer.encode(topics[k].strip()))
            if len(ids) >= tokens:
                break
        return ids[:tokens], "pydoc_data.topics (held out)"
    import torch

    from plmgraph.train.generate import generate

    length = min(model.spec.sizes.max_positions or tokens, tokens)
    rows = -(-tokens // length)
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, model.spec.sizes.vocab, (rows, 1), generator=g)
    with torch.no_grad():
        out = generate(model, None, start, length - 1, temperature=1.0, seed=seed, eos_token_id=-1)
    ids = [int(t) for row in out.tolist() for t in row]
    return ids[:tokens], "tokens sampled from the PyTorch model (no tokenizer)"


def ppl_window(model: Any) -> int:
    return min(PPL_WINDOW, model.spec.sizes.max_positions or PPL_WINDOW)


def _chunks(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, scored-from, end) windows of `plmgraph.train.evaluate.perplexity`'s sliding window."""
    out, a = [], 1
    while a < n:
        e = min(a + stride, n)
        out.append((max(0, e - window), a, e))
        a = e
    return out


def ort_perplexity(sess: Any, ids: Sequence[int], window: int, stride: int | None = None) -> dict[str, float]:
    """Perplexity of a cached decoder graph in an ONNX Runtime session, by the same sliding window as
    `plmgraph.train.evaluate.perplexity` (each window one prefill from an empty cache; float64 softmax)."""
    stride = stride or max(1, window // 2)
    x = np.asarray(ids, np.int64)
    meta = {i.name: i for i in sess.get_inputs()}
    np_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
    total = 0.0
    for s, a, e in _chunks(len(x), window, stride):
        chunk = x[s:e][None]
        t = chunk.shape[1]
        feed: dict[str, np.ndarray] = {"input_ids": chunk}
        if "attention_mask" in meta:
            feed["attention_mask"] = np.ones((1, t), np.int64)
        if "position_ids" in meta:
            feed["position_ids"] = np.arange(t, dtype=np.int64)[None]
        for name, i in meta.items():
            if name.startswith("past_key_values."):
                shape = [1 if k == 0 else (0 if k == 2 else d) for k, d in enumerate(i.shape)]
                feed[name] = np.zeros(shape, np_type.get(i.type, np.float32))
        logits = sess.run(["logits"], feed)[0][0].astype(np.float64)  # [t, vocab]
        pred, target = logits[a - s - 1:e - s - 1], chunk[0, a - s:]
        mx = pred.max(-1, keepdims=True)
        lse = (mx[:, 0] + np.log(np.exp(pred - mx).sum(-1)))
        total += float((lse - pred[np.arange(len(target)), target]).sum())
    loss = total / (len(x) - 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": len(x) - 1}


# ----------------------------------------------------------------- verification


@dataclass
class PrecisionCheck:
    """One output compared with PyTorch (fp32) on one case."""

    case: str
    output: str
    shape: tuple[int, ...]
    max_abs_diff: float
    max_rel_diff: float
    """``max |ORT - PyTorch| / max |PyTorch|`` over the compared elements."""


@dataclass
class PrecisionReport:
    """A converted graph against PyTorch fp32: per-output differences and the perplexity ratio."""

    path: Path
    precision: Precision
    checks: list[PrecisionCheck]
    ppl_torch: float
    ppl_ort: float
    ppl_tokens: int
    ppl_text: str
    converted: dict[str, int] = field(default_factory=dict)
    fused: bool = False

    @property
    def tolerance(self) -> Tolerance:
        return self.precision.tolerance

    @property
    def ppl_ratio(self) -> float:
        return self.ppl_ort / self.ppl_torch

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((c.max_rel_diff for c in self.checks), default=0.0)

    def per_output(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for c in self.checks:
            row = out.setdefault(c.output, {"max_abs_diff": 0.0, "max_rel_diff": 0.0})
            row["max_abs_diff"] = max(row["max_abs_diff"], c.max_abs_diff)
            row["max_rel_diff"] = max(row["max_rel_diff"], c.max_rel_diff)
        return out

    def summary(self) -> str:
        kind = "quantized" if self.precision.name.startswith("int") else "float16"
        return (f"{kind} ({self.precision}): ppl ratio {self.ppl_ratio:.4f} (ONNX Runtime {self.ppl_ort:.3f} / "
                f"PyTorch fp32 {self.ppl_torch:.3f} on {self.ppl_tokens} tokens of {self.ppl_text}; bound "
                f"{self.tolerance.ppl_ratio:g}), outputs max rel diff {self.max_rel_diff:.3g} (bound "
                f"{self.tolerance.rel:g}), max abs diff {self.max_abs_diff:.3g}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), **self.precision.to_dict(), "fused": self.fused, "converted": self.converted,
                "tolerance": {"max_rel_diff": self.tolerance.rel, "ppl_ratio": self.tolerance.ppl_ratio},
                "perplexity": {"pytorch_fp32": self.ppl_torch, "onnxruntime": self.ppl_ort, "ratio": self.ppl_ratio,
                               "tokens": self.ppl_tokens, "text": self.ppl_text},
                "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff,
                "per_output": self.per_output(),
                "checks": [{"case": c.case, "output": c.output, "shape": list(c.shape), "max_abs_diff": c.max_abs_diff,
                            "max_rel_diff": c.max_rel_diff} for c in self.checks]}

    def __str__(self) -> str:
        rows = [f"{c.case:<36} {c.output:<24} {str(list(c.shape)):<18} abs {c.max_abs_diff:.3g} "
                f"rel {c.max_rel_diff:.3g}"
                for c in self.checks]
        return "\n".join([f"{self.path}: {self.summary()}", *rows])


def verify_precision(model: Any, path: str | Path, p: Precision, ids: Sequence[int], text: str = "held-out text",
                     *, tolerance: Tolerance | None = None, seed: int = 1, batch: int = 2,
                     seq: int = 16, converted: dict[str, int] | None = None) -> PrecisionReport:
    """Compare the converted cached-decoder graph at `path` with PyTorch (fp32) and check its perplexity.

    Cases (as `verify_onnx`'s, off the export shape): batch 1 and batch 3 (row 0 padded) from an empty
    cache, each followed by one decode step fed ONNX Runtime's own ``present``; a step of 3 tokens on a
    PyTorch-made cache.  Padding positions are not compared.  Then the sliding-window perplexity of
    `ids` in ONNX Runtime and in PyTorch.

    Raises:
        ExportError: an output's relative difference or the perplexity ratio exceeds `tolerance` (default
            the precision's); the message says which, by how much, and that the graph is quantized.
    """
    import torch

    from plmgraph.train.evaluate import perplexity

    from . import onnx as ox
    from .runtime import import_onnxruntime

    ort = import_onnxruntime()
    tol = tolerance or p.tolerance
    path = Path(path)
    sig = ox.signature(model, True)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{path}: ONNX Runtime cannot load the {p} graph ({str(e).splitlines()[0][:200]})") from None
    types = {i.name: i.type for i in sess.get_inputs()}
    np_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}
    fused = ox.is_fused(path)
    checks: list[PrecisionCheck] = []
    limit = ox._max_positions(model)
    short, long = max(2, seq // 4 + 1), min(limit - 1, seq * 2 + 3)
    if (batch, seq) == (3, long):
        long -= 1

    def cast(feed: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for k, v in feed.items():
            a = v.detach().cpu().numpy() if hasattr(v, "detach") else v
            out[k] = np.ascontiguousarray(a, dtype=np_type.get(types[k], a.dtype))
        return out

    def compare(case: str, feed: dict[str, Any], ort_feed: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        with ox._eval(model), torch.no_grad():
            want = ox.flatten(model(**ox._model_kwargs(feed, sig)), sig)
        try:
            got = sess.run(None, cast(ort_feed or feed))
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"ONNX Runtime cannot run the {p} graph {path.name} on {case}: "
                              f"{str(e).splitlines()[0][:300]}") from None
        keep = ox._kept_positions(model, sig, feed)
        for name, g, w in zip(sig.outputs, got, want, strict=True):
            w = w.detach().cpu().float().numpy()
            err = np.abs(g.astype(np.float32) - w)
            scale = np.abs(w)
            if keep is not None:
                mask = ox._position_mask(name, err.shape, keep, sig)
                err, scale = err * mask, scale * mask
            diff = float(err.max()) if w.size else 0.0
            rel = diff / max(float(scale.max()), 1e-12) if w.size else 0.0
            checks.append(PrecisionCheck(case, name, tuple(w.shape), diff, rel))
            if not rel <= tol.rel:  # NaN fails too
                raise ExportError(f"the {p} graph's output {name!r} differs from PyTorch fp32 on {case} by "
                                  f"{rel:.3g} of its largest magnitude (max abs diff {diff:.3g}), over the "
                                  f"{p.name} bound {tol.rel:g}")
        return got

    for b, t in ((1, short), (3, long)):
        feed = ox.example_inputs(model, sig, b, t, past=0, seed=seed + b, pad=2 if b > 1 else 0)
        got = compare(f"batch {b}, past 0, seq {t}", feed)
        step, ort_feed = ox._decode_step(model, sig, feed, got, seed + 10 + b)
        compare(f"batch {b}, past {t}, seq 1, ORT cache", step, ort_feed)
    b = 1 if fused else 3
    compare(f"batch {b}, past {short + 2}, seq 3", ox.example_inputs(model, sig, b, 3, past=short + 2, seed=seed + 5,
                                                                     pad=1))
    window = ppl_window(model)
    want = perplexity(model, ids, window=window)
    got = ort_perplexity(sess, ids, window)
    report = PrecisionReport(path, p, checks, want["perplexity"], got["perplexity"], got["tokens"], text,
                             dict(converted or {}), fused)
    if not report.ppl_ratio <= tol.ppl_ratio:
        raise ExportError(f"the {p} graph's perplexity is {report.ppl_ort:.4g} in ONNX Runtime against PyTorch "
                          f"fp32's {report.ppl_torch:.4g} on {report.ppl_tokens} tokens of {text}: ratio "
                          f"{report.ppl_ratio:.4f}, over the {p.name} bound {tol.ppl_ratio:g}")
    return report


__all__ = ["INT4_BLOCK", "INT4_BLOCK_SIZES", "PRECISIONS", "TOLERANCES", "Precision", "PrecisionCheck",
           "PrecisionReport", "Tolerance", "check_model", "convert", "held_out_ids", "ort_perplexity", "precision",
           "verify_precision"]
