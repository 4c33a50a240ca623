"""Export a compiled `PLMModel` to ONNX and check the file in a real ONNX Runtime session.

    path = pg.export_onnx(model, "gpt2.onnx", kv_cache=True)   # export -> optimize -> verify

`export_onnx` is a straight list of stages, each also public so the command line can show
progress between them:

1. `signature`      which named inputs and outputs the graph has, with their dynamic axes;
2. `export_graph`   ``torch.onnx.export(dynamo=True)`` of an `OnnxAdapter` (tensors in, a tuple out);
3. `optimize_graph` ONNX Runtime's offline graph optimizations, written back to the same path;
4. `verify_onnx`    a CPU `InferenceSession` against PyTorch eager on shapes other than the export shape.

Input names: ``input_ids``, ``attention_mask``, ``token_type_ids`` (models with segment
embeddings, and XLNet's segment term), ``prefix_lengths`` [batch] and ``position_ids``
[batch, 2, seq] (GLM's prefix mask and 2D positions), ``decoder_input_ids`` (encoder-decoders),
``pixel_values`` (patch models, alone).  With ``kv_cache=True`` a decoder whose positions are
learned (GPT-2, OPT) also takes ``position_ids`` [batch, seq] (after ``attention_mask``), so a
runtime that left-pads a batch (Optimum, ONNX Runtime GenAI, `plmgraph.runtime`) gives each
row its own positions (``cumsum(attention_mask) - 1``).  A rotary decoder (LLaMA, Mistral,
Qwen, ...) takes none, as ONNX Runtime GenAI's builder writes it: token ``i`` of a call is
rotated at ``past + i``, as PyTorch does without ``position_ids``.  Rotation being relative
(the score of query ``m`` and key ``n`` depends on ``m - n`` only), a left-padded row then
attends exactly as with positions counted from its first kept token (what `generate` feeds);
the fused graph so rotates inside GroupQueryAttention (``do_rotary``), with the QKV
projection packed.  What differs is right padding: new tokens sit after the pads, as in
PyTorch without ``position_ids``.
Output names: ``logits`` for a single head or one output per head name (``mlm``, ``nsp``),
then ``last_hidden_state`` (and ``encoder_last_hidden_state`` for encoder-decoders).
With ``kv_cache=True`` (decoder-only) the graph also takes ``past_key_values.{i}.key/value``
[batch, kv_heads, past, head_dim] and returns ``present.{i}.key/value`` [batch, kv_heads,
past + seq, head_dim] (Hugging Face Optimum's names); ``past`` may be 0, so one graph serves
both prefill and decode, and ``attention_mask`` then covers ``past + seq`` positions.
Relative-attention models (Transformer-XL, XLNet) cache a segment memory instead: one
``past_key_values.{i}`` [batch, past, hidden] per layer in, ``present.{i}`` [batch,
min(past + seq, memory), hidden] out (``memory`` 0: all of them).  XLNet's query stream (``perm_mask``,
``target_mapping``) is not in the graph: it exports the content stream.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmgraph.errors import ExportError
from plmgraph.kinds import kind

from . import onnx_fuse
from .runtime import import_onnxruntime

log = logging.getLogger(__name__)

TWO_GB = 2**31
ATOL = RTOL = 1e-4


# ----------------------------------------------------------------- signature


#: The order of the graph inputs (the order of `PLMModel.forward`'s arguments).
INPUT_ORDER = ("pixel_values", "input_ids", "attention_mask", "token_type_ids", "prefix_lengths", "position_ids",
               "decoder_input_ids")


@dataclass(frozen=True)
class Signature:
    """The named inputs and outputs of an exported graph, and what they mean to the model."""

    inputs: list[str]
    outputs: list[str]
    kv_cache: bool
    layers: int = 0
    """Decoder layers (the number of ``past_key_values.{i}`` pairs) when ``kv_cache``."""
    kv_shape: tuple[int, int] = (0, 0)
    """(kv_heads, head_dim) of the cache when ``kv_cache``."""
    heads: list[str] = field(default_factory=list)
    """Head names, in output order (empty without heads)."""
    positions: bool = False
    """The graph takes 1-D ``position_ids`` [batch, seq] (a cached decoder with learned
    positions); GLM's [batch, 2, seq] positions leave it False."""
    memory: int = 0
    """Hidden size of the segment memories ``past_key_values.{i}`` [batch, past, hidden] that a
    relative-attention model (Transformer-XL, XLNet) caches instead of key/value pairs; 0 otherwise."""
    choices: bool = False
    """A multiple-choice model: ``input_ids``, ``attention_mask``, ``token_type_ids`` are [batch, choices,
    seq] and its head's ``logits`` [batch, choices] (``last_hidden_state`` [batch * choices, seq, hidden])."""

    def past_names(self) -> list[str]:
        if self.memory:
            return [f"past_key_values.{i}" for i in range(self.layers)]
        return [f"past_key_values.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        if self.memory:
            return [f"present.{i}" for i in range(self.layers)]
        return [f"present.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def pack(self, flat: Sequence[Tensor]) -> tuple[Any, ...]:
        """Flat cache tensors, in `past_names` order -> the model's ``past_key_values``."""
        if self.memory:
            return tuple(flat)
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in range(self.layers))

    def unpack(self, past: Sequence[Any]) -> list[Tensor]:
        """The model's ``past_key_values`` -> flat tensors in `past_names` order."""
        return list(past) if self.memory else [t for kv in past for t in kv]


def signature(model: nn.Module, kv_cache: bool = False) -> Signature:
    """The graph's inputs and outputs for `model`.

    Raises:
        ExportError: ``kv_cache`` for a model that is not decoder-only.
    """
    spec = model.spec
    if kv_cache and spec.family != "decoder":
        raise ExportError(f"kv_cache export is for decoder-only models; {spec.name} is {spec.family!r} "
                          "(export it without --kv-cache)")
    if spec.pooler is not None and spec.pooler.kind == "eos" and spec.family == "encoder-decoder":
        raise ExportError(f"{spec.name}'s pooler (kind eos) picks decoder states at input_ids' eos positions, so "
                          "its decoder input must have the encoder input's length: ONNX export of such a model is "
                          "not supported yet (BartForSequenceClassification)")
    # Each block kind says which forward arguments its nodes read (its `model_inputs` facet).
    read = {name for _, d in model.graph.nx.nodes(data=True) for name in kind(d["kind"]).model_inputs(d["attrs"])}
    last = model.stacks()[-1]
    # learned positions are looked up per row (a left-padded row starts at 0); rotary ones are not
    # an input: the kernel rotates at past .. past + seq - 1, which, rotation being relative, gives
    # a left-padded row the attention of positions counted from its first kept token
    positions = kv_cache and "position_ids" not in read and not getattr(last, "memory_cache", False) and any(
        "position" in getattr(getattr(s, "embed", None), "has", ()) for s in model.stacks())
    inputs = [name for name in INPUT_ORDER if name in read or (positions and name == "position_ids")]
    heads = list(model.heads)
    outputs = ["logits"] if len(heads) == 1 else list(heads)
    outputs.append("last_hidden_state")
    if spec.family == "encoder-decoder":
        outputs.append("encoder_last_hidden_state")
    if not kv_cache:
        return Signature(inputs, outputs, False, heads=heads, choices=bool(getattr(model, "choice_heads", ())))
    if getattr(last, "memory_cache", False):  # relative.RelativeStack: one [B, M, H] memory per layer
        sig = Signature(inputs, outputs, True, len(last.schedule), heads=heads, memory=spec.sizes.hidden)
    else:
        attn = next(b for b in last.layers.values()).attn
        sig = Signature(inputs, outputs, True, len(last.schedule), (attn.kv_heads, attn.head_dim), heads)
    return Signature(inputs + sig.past_names(), outputs + sig.present_names(), True, sig.layers, sig.kv_shape,
                     heads, positions, sig.memory)


class OnnxAdapter(nn.Module):
    """`PLMModel` with tensors in the order of `Signature.inputs` and a tuple out, as ONNX wants."""

    def __init__(self, model: nn.Module, sig: Signature) -> None:
        super().__init__()
        self.model, self.sig = model, sig
        self.plain = [n for n in sig.inputs if not n.startswith("past_key_values.")]

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        kw = dict(zip(self.plain, tensors, strict=False))
        if self.sig.kv_cache:
            kw["past_key_values"] = self.sig.pack(tensors[len(self.plain):])
            kw["use_cache"] = True
        return flatten(self.model(**kw), self.sig)


def flatten(out: Any, sig: Signature) -> tuple[Tensor, ...]:
    """A `ModelOutput` as the tuple of tensors named by ``sig.outputs``."""
    flat = [out.head_outputs[h] for h in sig.heads]
    flat.append(out.last_hidden_state)
    if out.encoder_last_hidden_state is not None:
        flat.append(out.encoder_last_hidden_state)
    if sig.kv_cache:
        flat.extend(sig.unpack(out.past_key_values))
    return tuple(flat)


# ----------------------------------------------------------------- example inputs


def example_inputs(model: nn.Module, sig: Signature, batch: int, seq: int, past: int = 0, seed: int = 0,
                   pad: int = 0, cache: Sequence[Any] | None = None) -> dict[str, Tensor]:
    """Random inputs named as in `sig`: ``pad`` trailing positions of row 0 masked out, a real
    (PyTorch-computed) cache of ``past`` positions when ``sig.kv_cache`` (or `cache`, a
    ``past_key_values`` to continue from).  GLM gets a prefix length per row (within the cache
    on a cached call) and 2D positions laid out as Part A then one span."""
    gen = torch.Generator().manual_seed(seed)
    spec = model.spec
    first = model.stacks()[0]
    dev = next(model.parameters()).device
    if "pixel_values" in sig.inputs:
        pe = first.embed
        size = pe.image_size
        return {"pixel_values": torch.randn(batch, pe.patches.weight.shape[1], size, size, generator=gen).to(dev)}

    def ids(*shape: int, high: int = spec.sizes.vocab) -> Tensor:
        return torch.randint(0, high, shape, generator=gen).to(dev)

    if cache is not None:
        past = int(cache[0].shape[1] if sig.memory else cache[0][0].shape[2])
    elif sig.kv_cache and past:
        plain = Signature([n for n in sig.inputs if not n.startswith("past_key_values.")], [], False,
                          positions=sig.positions)
        with torch.no_grad():
            cache = model(**example_inputs(model, plain, batch, past, seed=seed + 1000), use_cache=True).past_key_values
    elif sig.kv_cache:
        empty = (batch, 0, sig.memory) if sig.memory else (batch, sig.kv_shape[0], 0, sig.kv_shape[1])
        cache = sig.pack([torch.zeros(empty, device=dev)] * len(sig.past_names()))
    feed: dict[str, Tensor] = {"input_ids": ids(batch, seq)}
    mask = torch.ones(batch, past + seq, dtype=torch.long, device=dev)
    if pad:
        mask[0, past + seq - pad:] = 0
    feed["attention_mask"] = mask
    if "token_type_ids" in sig.inputs:
        feed["token_type_ids"] = ids(batch, seq, high=first.embed.segments or 3)  # XLNet: 0, 1 and <cls>'s 2
    if "prefix_lengths" in sig.inputs:  # a cached call's prefix must lie in the cache (glm.check_glm_inputs)
        prefix = torch.randint(0, past + 1, (batch,), generator=gen) if past else \
            torch.randint(1, seq + 1, (batch,), generator=gen)
        feed["prefix_lengths"] = prefix.to(dev)
    if sig.positions:  # what a left-padding runtime feeds: each row counts its own kept tokens
        feed["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)[:, -seq:]
    elif "position_ids" in sig.inputs:
        at = torch.arange(past, past + seq)[None]  # [1, T] absolute positions
        a = feed["prefix_lengths"].cpu()[:, None] if "prefix_lengths" in sig.inputs else torch.full((1, 1), past + seq)
        text = torch.where(at < a, at, (a - 1).clamp(min=0))  # a span token sits at its [MASK]'s position
        block = torch.where(at < a, 0, at - a + 1)  # 1, 2, ... inside the span
        feed["position_ids"] = torch.stack((text, block), dim=1).expand(batch, 2, seq).contiguous().to(dev)
    if "decoder_input_ids" in sig.inputs:
        feed["decoder_input_ids"] = ids(batch, max(1, seq // 2 + 1))
    if sig.choices:  # batch x (batch + 1) candidates: rows of ``batch * choices`` drawn, then [B, C, T]
        n = batch + 1
        more = example_inputs(model, Signature(sig.inputs, [], False), batch * n, seq, seed=seed, pad=pad)
        feed = {k: v.reshape(batch, n, v.shape[-1]) for k, v in more.items()}
    if sig.kv_cache:
        feed.update(zip(sig.past_names(), sig.unpack(cache), strict=True))
    return feed


def _dynamic_shapes(sig: Signature) -> tuple[dict[int, Any], ...]:
    from torch.export import Dim

    batch, seq, tgt, past = Dim("batch"), Dim("seq"), Dim("decoder_seq"), Dim("past")
    total = Dim("past_seq") if sig.kv_cache else seq
    axes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total},
            "token_type_ids": {0: batch, 1: seq}, "prefix_lengths": {0: batch}, "position_ids": {0: batch, 2: seq},
            "decoder_input_ids": {0: batch, 1: tgt}, "pixel_values": {0: batch}}
    if sig.positions:
        axes["position_ids"] = {0: batch, 1: seq}
    if sig.choices:
        choices = Dim("choices")
        axes.update({k: {0: batch, 1: choices, 2: seq} for k in ("input_ids", "attention_mask", "token_type_ids")})
    cache = {0: batch, 1: past} if sig.memory else {0: batch, 2: past}
    return tuple(axes.get(name, cache) for name in sig.inputs)


# ----------------------------------------------------------------- stages


def export_graph(model: nn.Module, path: str | Path, sig: Signature, *, optimize: bool = True, opset: int | None = None,
           batch: int = 2, seq: int = 16, fuse: bool = True) -> Path:
    """Write `model` as ONNX to `path` (weights in ``path.data`` beside it when over 2 GB).

    With `fuse` (the default) the blocks that ONNX Runtime has kernels for are written as those
    kernels (GroupQueryAttention with the cache and rotary inside, MultiHeadAttention, norms
    ready for its fusions; see `onnx_fuse`); ``fuse=False`` writes the plain ONNX graph.

    The dynamo exporter is used (``torch.export`` first, so SDPA can be decomposed, see
    `_sdpa_math`): it keeps symbolic batch, sequence and past axes through rotary, GQA and
    relative-bias buckets, where the TorchScript exporter would bake traced Python values
    into the graph; and it is the exporter PyTorch maintains.

    Raises:
        ExportError: torch.export or the ONNX translation failed (the first line of the cause quoted).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    past = max(2, seq // 2) if sig.kv_cache else 0  # >= 2: torch.export specialises sizes 0 and 1
    feed = {k: v.contiguous().clone() for k, v in example_inputs(model, sig, batch, seq, past=past, pad=1).items()}
    large = _weight_bytes(model) > TWO_GB - 2**27
    args, shapes = tuple(feed.values()), (_dynamic_shapes(sig),)
    adapter = OnnxAdapter(model, sig)
    with _eval(model), torch.no_grad(), _quiet(), warnings.catch_warnings(), _fusing(model, adapter, fuse) as table:
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(adapter, args, dynamic_shapes=shapes, strict=False)
            program = program.run_decompositions({torch.ops.aten.scaled_dot_product_attention.default: _sdpa_math})
            torch.onnx.export(program, args, str(path), dynamo=True, input_names=sig.inputs, output_names=sig.outputs,
                              opset_version=opset, dynamic_shapes=shapes, optimize=optimize, external_data=large,
                              verbose=False, custom_translation_table=table)
        except Exception as e:  # noqa: BLE001  (torch raises many types; the message is what matters)
            raise ExportError(f"exporting {model.spec.name} to ONNX failed: {_cause(e)}") from e
    if fuse:
        onnx_fuse.fuse_graph(path)
    return path


@contextlib.contextmanager
def _fusing(model: nn.Module, adapter: nn.Module, fuse: bool) -> Iterator[dict[Any, Any] | None]:
    """`onnx_fuse.fused` and its translation table when `fuse`, else nothing."""
    if not fuse:
        yield None
        return
    with onnx_fuse.fused(model, adapter, positions_input="position_ids" in adapter.sig.inputs):
        yield onnx_fuse.translation_table()


def _sdpa_math(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
               is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """SDPA as its math reference (matmul, softmax, matmul), decomposed before the ONNX exporter sees it.

    Why: torch.export records ``y.transpose(1, 2).reshape(...)`` after SDPA as a copy or a
    view depending on the strides SDPA's meta kernel reports, and the ONNX exporter's later
    passes re-run that kernel under other symbolic-shape settings, get other strides and
    fail ("Cannot view a tensor with shape [B, T, n, d] ...", seen with T5's bias mask).
    The math form has one answer; ONNX has no strides, and the torchlib translation of SDPA
    at opset 18 is the same MatMul/Softmax graph, which ONNX Runtime fuses again.
    """
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, attn_mask, dropout_p, is_causal, None,
                                                             scale=scale, enable_gqa=enable_gqa)[0]


def optimize_graph(path: str | Path) -> Path:
    """Run ONNX Runtime's offline graph optimizations on `path` and write the result back.

    Level EXTENDED (constant folding, redundant-node removal, LayerNorm/GELU/attention
    fusions into ``com.microsoft`` ops), not ALL: ALL adds layout transforms specific to the
    CPU that ran them (NCHWc), and the saved file must also load in a CUDA session.
    A session still applies every level again when it opens the file.
    """
    ort = import_onnxruntime()
    path = Path(path)
    tmp = path.with_name(path.stem + ".opt.onnx")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp)
    data = path.with_name(path.name + ".data")
    if data.exists():  # keep big weights outside the .onnx protobuf (2 GB limit)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", tmp.name + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    tmp.replace(path)
    if data.exists():
        data.unlink()
        tmp.with_name(tmp.name + ".data").replace(data)
        _relink(path, data.name)
    return path


def _relink(path: Path, data_name: str) -> None:
    """Point the external-data references of `path` at `data_name` (after renaming the data file)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    m = onnx.load(str(path), load_external_data=False)
    for t in m.graph.initializer:
        if ExternalDataInfo(t).location:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = data_name
    onnx.save(m, str(path))


# ----------------------------------------------------------------- verify


@dataclass
class Check:
    """One output compared on one case."""

    case: str
    output: str
    shape: tuple[int, ...]
    max_abs_diff: float
    tolerance_used: float = 0.0
    """max over elements of ``|ORT - PyTorch| / (atol + rtol * |PyTorch|)``: at most 1 passes."""


@dataclass
class VerifyReport:
    """Max |ORT - PyTorch| per output per case; all within ``atol + rtol * |PyTorch|``."""

    path: Path
    checks: list[Check]
    atol: float = ATOL
    rtol: float = RTOL
    fused: bool = False
    """The graph has ONNX Runtime's fused attention kernels (`onnx_fuse`)."""

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=0.0)

    @property
    def tolerance_used(self) -> float:
        return max((c.tolerance_used for c in self.checks), default=0.0)

    def per_output(self) -> dict[str, dict[str, float]]:
        """Each output's worst case over all cases: max abs diff and the share of the tolerance used."""
        out: dict[str, dict[str, float]] = {}
        for c in self.checks:
            row = out.setdefault(c.output, {"max_abs_diff": 0.0, "tolerance_used": 0.0})
            row["max_abs_diff"] = max(row["max_abs_diff"], c.max_abs_diff)
            row["tolerance_used"] = max(row["tolerance_used"], c.tolerance_used)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "atol": self.atol, "rtol": self.rtol, "fused": self.fused,
                "max_abs_diff": self.max_abs_diff, "tolerance_used": self.tolerance_used,
                "per_output": self.per_output(),
                "checks": [{"case": c.case, "output": c.output, "shape": list(c.shape),
                            "max_abs_diff": c.max_abs_diff, "tolerance_used": c.tolerance_used}
                           for c in self.checks]}

    def __str__(self) -> str:
        rows = [f"{c.case:<36} {c.output:<24} {str(list(c.shape)):<18} {c.max_abs_diff:.3g} "
                f"({c.tolerance_used:.0%} of tolerance)" for c in self.checks]
        return "\n".join([f"{self.path}: ONNX Runtime vs PyTorch (atol {self.atol:g} + rtol {self.rtol:g} * |PyTorch|)",
                          *rows])


def fused_ops(path: str | Path) -> dict[str, int]:
    """How many of each ``com.microsoft`` op the graph at `path` has, subgraphs (an ``If``'s branches) included."""
    import onnx

    counts: dict[str, int] = {}

    def walk(graph: Any) -> None:
        for node in graph.node:
            if node.domain == "com.microsoft":
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(onnx.load(str(path), load_external_data=False).graph)
    return counts


def is_fused(path: str | Path) -> bool:
    """Whether the graph at `path` (subgraphs included) has ONNX Runtime's fused attention kernels (see `onnx_fuse`)."""
    return any(op in onnx_fuse.ATTENTION_OPS for op in fused_ops(path))


def verify_onnx(model: nn.Module, path: str | Path, *, kv_cache: bool = False, batch: int = 2, seq: int = 16,
           atol: float = ATOL, rtol: float = RTOL, seed: int = 1) -> VerifyReport:
    """Run `path` in a CPU `InferenceSession` and compare every output with PyTorch eager (fp32).

    Cases avoid the export shape ``(batch, seq)``: batch 1 with a short sequence and batch 3
    with a long one, padding in row 0 of the mask.  With ``kv_cache``: a prefill from an empty
    cache (past 0), then one decode step fed ONNX Runtime's own ``present`` tensors (past > 0),
    compared with PyTorch's cached step; and a step on a PyTorch-made cache of another length
    (batch 1 for a fused graph: ONNX Runtime's GroupQueryAttention takes several new tokens on a
    non-empty cache only for one sequence at a time); for a graph that shares its cache buffer
    (`onnx_fuse.shares_buffer`), a batch-3 prefill and two decode steps on one buffer per layer.

    Each element must be within ``atol + rtol * |PyTorch|`` (a relative part, so that large
    logits are judged on their scale); `Check.tolerance_used` says how much of it each output
    used.  In a fused graph the positions that ``attention_mask`` marks as padding are not
    compared: what a model computes there means nothing, and ONNX Runtime's attention kernels
    compute it differently (every non-padding position, cache included, is compared).

    Raises:
        ExportError: an output differs by more than ``atol + rtol * |expected|``; the message
            names the case, the output, its shape and the max abs difference.
    """
    ort = import_onnxruntime()
    path = Path(path)
    sig = signature(model, kv_cache)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a missing, empty or foreign file
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
    got_names = [o.name for o in sess.get_outputs()]
    if got_names != sig.outputs:
        raise ExportError(f"{path} has outputs {got_names}, expected {sig.outputs} for this model")
    fused = is_fused(path)
    checks: list[Check] = []
    limit = _max_positions(model)
    short = max(2, seq // 4 + 1)
    long = min(limit - (1 if kv_cache else 0), seq * 2 + 3)
    if (batch, seq) == (3, long):
        long -= 1

    def compare(case: str, feed: dict[str, Tensor], ort_feed: dict[str, np.ndarray] | None = None,
                run: Callable[[dict[str, np.ndarray]], list[Any]] | None = None) -> list[Any]:
        with _eval(model), torch.no_grad():
            want = flatten(model(**_model_kwargs(feed, sig)), sig)
        try:
            got = (run or (lambda f: sess.run(None, f)))(ort_feed or {k: v.detach().cpu().numpy()
                                                                      for k, v in feed.items()})
        except Exception as e:  # onnxruntime's own error types: a kernel refusing these shapes
            first = str(e).splitlines()[0][:300]
            raise ExportError(f"ONNX Runtime cannot run {path.name} on {case}: {first}") from None
        keep = _kept_positions(model, sig, feed) if fused else None
        for name, g, w in zip(sig.outputs, got, want, strict=True):
            w = w.detach().cpu().float().numpy()
            if g.shape != w.shape:
                raise ExportError(f"ONNX Runtime output {name!r} has shape {list(g.shape)} on {case}, "
                                  f"PyTorch's {list(w.shape)}")
            err = np.abs(g - w)
            if keep is not None:
                err = err * _position_mask(name, err.shape, keep, sig)
            diff = float(err.max()) if w.size else 0.0
            used = float((err / (atol + rtol * np.abs(w))).max()) if w.size else 0.0
            checks.append(Check(case, name, tuple(w.shape), diff, used))
            if not used <= 1.0:  # NaN fails too
                raise ExportError(f"ONNX Runtime output {name!r} differs from PyTorch on {case}: "
                                  f"shape {list(w.shape)} (ONNX {list(g.shape)}), max abs diff {diff:.3g} "
                                  f"> atol {atol:g} + rtol {rtol:g} * |PyTorch| ({used:.2f}x the tolerance)")
        return got

    if not kv_cache:
        compare(f"batch 1, seq {short}", example_inputs(model, sig, 1, short, seed=seed))
        compare(f"batch 3, seq {long}, padded", example_inputs(model, sig, 3, long, seed=seed + 1, pad=2))
    else:
        for b, t in ((1, short), (3, long)):
            feed = example_inputs(model, sig, b, t, past=0, seed=seed + b, pad=2 if b > 1 else 0)
            got = compare(f"batch {b}, past 0, seq {t}", feed)
            step = _decode_step(model, sig, feed, got, seed + 10 + b)
            compare(f"batch {b}, past {t}, seq 1, ORT cache", *step)
        b = 1 if fused else 3
        feed = example_inputs(model, sig, b, 3, past=short + 2, seed=seed + 5, pad=1)
        compare(f"batch {b}, past {short + 2}, seq 3", feed)
        if fused and onnx_fuse.shares_buffer(path):  # GenAI's past_present_share_buffer: one buffer, in place
            steps = max(0, min(2, limit - long))  # the buffer is longer than what it ever holds
            run = onnx_fuse.SharedCache(sess, 3, long + steps + 1)
            feed = example_inputs(model, sig, 3, long, past=0, seed=seed + 7, pad=2)
            got = compare(f"batch 3, past 0, seq {long}, shared buffer {long + steps + 1}", feed, run=run)
            for i in range(steps):
                feed, ort_feed = _decode_step(model, sig, feed, got, seed + 20 + i)
                got = compare(f"batch 3, past {long + i}, seq 1, shared buffer", feed, ort_feed, run=run)
    return VerifyReport(path, checks, atol, rtol, fused)


def _kept_positions(model: nn.Module, sig: Signature, feed: dict[str, Tensor]) -> np.ndarray | None:
    """[B, past + T] 1 where ``attention_mask`` keeps a position (decoder-only and encoder stacks)."""
    if "attention_mask" not in feed or model.spec.family == "encoder-decoder":
        return None
    mask = feed["attention_mask"]  # [B, C, T] for a multiple-choice model: its B * C sequences
    return mask.reshape(-1, mask.shape[-1]).detach().cpu().numpy().astype(np.float32)


def _position_mask(name: str, shape: tuple[int, ...], keep: np.ndarray, sig: Signature) -> np.ndarray | float:
    """A 0/1 array broadcasting to `shape` that zeroes padding positions of output `name`."""
    if name.startswith("present.") and not sig.memory and len(shape) == 4:  # [B, kv, past + T, d]
        return keep[:, None, -shape[2]:, None] if keep.shape[1] >= shape[2] else 1.0
    if len(shape) == 3 and shape[1] <= keep.shape[1]:  # [B, T, ...]: the last T positions of the mask
        return keep[:, -shape[1]:, None]
    return 1.0


def _decode_step(model: nn.Module, sig: Signature, prefill: dict[str, Tensor], got: list[np.ndarray],
                 seed: int) -> tuple[dict[str, Tensor], dict[str, np.ndarray]]:
    """One new token after `prefill`: PyTorch gets its own cache, ONNX Runtime its own ``present``."""
    b = prefill["input_ids"].shape[0]
    with _eval(model), torch.no_grad():
        cache = model(**_model_kwargs(prefill, sig)).past_key_values
    feed = example_inputs(model, sig, b, 1, seed=seed, cache=cache)
    # the prefill's padding carries over; a segment memory keeps only its last `memory` positions
    width = feed["attention_mask"].shape[1]
    feed["attention_mask"] = torch.cat([prefill["attention_mask"], torch.ones(b, 1, dtype=torch.long)], 1)[:, -width:]
    if sig.positions:
        feed["position_ids"] = (feed["attention_mask"].cumsum(1) - 1).clamp(min=0)[:, -1:]
    ort_feed = {k: v.numpy() for k, v in feed.items()}
    presents = got[len(sig.outputs) - len(sig.past_names()):]
    ort_feed.update(zip(sig.past_names(), presents, strict=True))
    return feed, ort_feed


def _model_kwargs(feed: dict[str, Tensor], sig: Signature) -> dict[str, Any]:
    kw: dict[str, Any] = {k: v for k, v in feed.items() if not k.startswith("past_key_values.")}
    if sig.kv_cache:
        kw["past_key_values"] = sig.pack([feed[n] for n in sig.past_names()])
        kw["use_cache"] = True
    return kw


def _max_positions(model: nn.Module) -> int:
    limits = [s.embed.max_positions for s in model.stacks() if getattr(s.embed, "max_positions", None)]
    return min(limits, default=512)


# ----------------------------------------------------------------- one call


def export_onnx(model: nn.Module, path: str | Path, kv_cache: bool = False, optimize: bool = True,
                verify: bool = True, opset: int | None = None, batch: int = 2, seq: int = 16, *,
                atol: float = ATOL, rtol: float = RTOL, fuse: bool = True,
                on_stage: Callable[[str], None] | None = None) -> Path:
    """Export `model` to ONNX at `path`, optimize it for ONNX Runtime, and verify it against PyTorch.

    Args:
        model: a `PLMModel` (``pg.build`` / ``pg.load``) on CPU, fp32.
        path: the ``.onnx`` file to write (``path.data`` beside it for models over 2 GB).
        kv_cache: decoder-only: add ``past_key_values.{i}.key/value`` inputs and ``present.*`` outputs.
        optimize: onnxscript's optimizer during export, then ONNX Runtime's offline graph optimizations.
        verify: run the file in ONNX Runtime on two shapes other than the export shape (see `verify_onnx`).
        opset: ONNX opset (default: the exporter's).
        batch, seq: the export example's shape (axes are dynamic regardless).
        atol, rtol: verification tolerance (fp32): each element within ``atol + rtol * |PyTorch|``.
        fuse: write ONNX Runtime's fused kernels (attention with the cache and rotary inside, norms
            ready for its fusions; see `onnx_fuse`); False: the plain ONNX graph.
        on_stage: called with ``"export"``, ``"optimize"``, ``"verify"`` as each stage starts.

    Returns:
        The path written.  The verification report is logged at INFO on ``plmgraph.exporters.onnx``;
        call `verify_onnx` directly to get it as a `VerifyReport`.

    Raises:
        ExportError: the model cannot be exported, or ONNX Runtime disagrees with PyTorch.
        PlmgraphError: ONNX Runtime is not installed (with the install hint).
    """
    stage = on_stage or (lambda _name: None)
    sig = signature(model, kv_cache)
    if optimize or verify:
        import_onnxruntime()  # fail before a minute of export, with the install hint
    stage("export")
    path = export_graph(model, path, sig, optimize=optimize, opset=opset, batch=batch, seq=seq, fuse=fuse)
    try:
        if optimize:
            stage("optimize")
            optimize_graph(path)
            if fuse:
                onnx_fuse.fuse_skip_norms(path)
        if verify:
            stage("verify")
            log.info("%s", verify_onnx(model, path, kv_cache=kv_cache, batch=batch, seq=seq, atol=atol, rtol=rtol))
    except BaseException:  # a graph that failed optimisation or verification is not left behind
        for written in (path, path.with_name(path.name + ".data")):
            written.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------- helpers


class _eval:
    """Context manager: `model` in eval mode (no dropout), its training flag restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.training)


def _cause(e: BaseException) -> str:
    """The line that says what went wrong: the torch exporter wraps it in a page of advice."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1:]
    else:
        lines[:1] = [f"{type(e).__name__}: {lines[0] if lines else ''}"]
    details = [ln for ln in lines[1:3] if ln.startswith("- ")]  # torch.export's "Not all values of seq ..."
    return " ".join(lines[:1] + details).replace(" For more information, run with TORCH_LOGS=\"+dynamic\".", "")


class _quiet:
    """Silence the exporters' INFO/WARNING chatter ("torchvision is not installed", initializer
    dedup) for the duration of an export; errors still propagate as exceptions."""

    names = ("torch.onnx", "torch.export", "onnx_ir", "onnxscript")

    def __enter__(self) -> None:
        self.levels = [(lg, lg.level) for lg in map(logging.getLogger, self.names)]
        for lg, _ in self.levels:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for lg, level in self.levels:
            lg.setLevel(level)


def _weight_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


__all__ = ["Check", "OnnxAdapter", "Signature", "VerifyReport", "example_inputs", "export_graph", "export_onnx",
           "fused_ops", "is_fused", "optimize_graph", "signature", "verify_onnx"]
