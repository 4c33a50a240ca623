"""Encoder-decoders (T5, BART) as a deploy folder in Hugging Face Optimum's seq2seq layout.

    pg.export_folder(t5, "deploy/", tokenizer=tok)     # plmgraph export RUN -o deploy/   (dispatches here)

writes::

    deploy/
      encoder_model.onnx          input_ids, attention_mask [B, S] -> last_hidden_state [B, S, H]
      decoder_model_merged.onnx   input_ids [B, T], encoder_attention_mask [B, S],
                                  encoder_hidden_states [B, S, H],
                                  past_key_values.{i}.decoder.key/value [B, kv, P, d],
                                  past_key_values.{i}.encoder.key/value [B, kv, S, d], use_cache_branch [1]
                                  -> logits [B, T, V], present.{i}.decoder.key/value [B, kv, P + T, d],
                                     present.{i}.encoder.key/value
      config.json, generation_config.json, tokenizer files, spec.yaml     (as for a decoder folder)

The merged decoder is Optimum's: one ``If`` on ``use_cache_branch`` over two graphs that share
their weights (the outer graph holds each distinct initializer once).  ``False`` (the first
step): the pasts are empty ([B, kv, 0, d]), the cross-attention keys and values are computed
from ``encoder_hidden_states`` and returned as ``present.{i}.encoder.*`` [B, kv, S, d].  ``True``
(later steps): the cross-attention keys and values come from ``past_key_values.{i}.encoder.*``
(``encoder_hidden_states`` is not read) and ``present.{i}.encoder.*`` are empty [0, kv, 1, d]
constants, as Optimum's ``merge_decoders`` writes them: a runtime keeps the first step's.

Both files are verified against PyTorch on shapes other than the export shape (`verify_seq2seq`);
a failed verification writes nothing (the folder is written atomically by `export_folder`).

With ``fuse`` (the default) the graphs have ONNX Runtime's kernels (`seq2seq_fusion_plan` says which
module becomes which, or why it stays plain):

- the encoder's self-attention: ``com.microsoft.MultiHeadAttention`` per layer, the padding mask
  (and T5's relative position bias) as ``attention_bias`` (`onnx_fuse.fused`, as for an encoder);
- the decoder's self-attention: ``com.microsoft.GroupQueryAttention`` per layer with the
  ``past_key_values.{i}.decoder.*`` cache inside (`onnx_fuse.fused`, as for a causal stack; T5's
  bias goes in as ``attention_bias``), in both branches of the ``If``;
- the cross-attention: ``com.microsoft.MultiHeadAttention`` on the projected queries and the keys /
  values [B, heads, S, d] (BNSH) as they are in ``present.{i}.encoder.*`` (computed in the first
  step's branch, read from ``past_key_values.{i}.encoder.*`` in the cached one), the encoder
  padding as ``attention_bias`` [B, 1, T, S] (`fused_cross`);
- norms, GELU, residual adds: `onnx_fuse.fuse_graph`, ONNX Runtime's optimizer and
  `onnx_fuse.fuse_skip_norms` on each graph (the decoder's two before they are merged: the
  rewrites see only a graph's top level, not the ``If``'s branches).

``fuse=False`` writes the plain ONNX graphs (ONNX Runtime's optimizer still fuses norms and GELU).
ONNX Runtime's GroupQueryAttention takes several new tokens on a non-empty cache only for one
sequence at a time (batch 1; one token per step, what Optimum and `plmgraph.runtime` feed, at any
batch size): a fused decoder is verified on such a step at batch 1.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmgraph.errors import ExportError

from . import onnx as ox
from . import onnx_fuse

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model_merged.onnx"
SEQ2SEQ_FILES = (ENCODER_FILE, ENCODER_FILE + ".data", DECODER_FILE, DECODER_FILE + ".data")
ENCODER_INPUTS = ["input_ids", "attention_mask"]
#: The model-level inputs an exportable encoder-decoder reads (Optimum feeds no others).
ALLOWED_INPUTS = {"input_ids", "attention_mask", "decoder_input_ids"}


@dataclass(frozen=True)
class Seq2SeqSignature:
    """The merged decoder's inputs and outputs."""

    layers: int
    kv_heads: int
    head_dim: int

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{part}.{kv}" for i in range(self.layers) for part in ("decoder", "encoder")
                for kv in ("key", "value")]

    def present_names(self, part: str | None = None) -> list[str]:
        return [f"present.{i}.{p}.{kv}" for i in range(self.layers) for p in ("decoder", "encoder")
                for kv in ("key", "value") if part in (None, p)]

    @property
    def decoder_inputs(self) -> list[str]:
        return ["input_ids", "encoder_attention_mask", "encoder_hidden_states", *self.past_names(),
                "use_cache_branch"]

    @property
    def decoder_outputs(self) -> list[str]:
        return ["logits", *self.present_names()]


def seq2seq_signature(model: nn.Module) -> Seq2SeqSignature:
    """The merged decoder's signature for `model`.

    Raises:
        ExportError: not an encoder-decoder, inputs Optimum does not feed (token types), heads other
            than one language-model head, or prefix tuning (its hooks add key/value columns).
    """
    from plmgraph.kinds import kind

    spec = model.spec
    if spec.family != "encoder-decoder":
        raise ExportError(f"{spec.name} is {spec.family!r}; the seq2seq folder is for encoder-decoders")
    read = {name for _, d in model.graph.nx.nodes(data=True) for name in kind(d["kind"]).model_inputs(d["attrs"])}
    extra = sorted(read - ALLOWED_INPUTS)
    if extra:
        raise ExportError(f"{spec.name} reads {', '.join(extra)}: Optimum's seq2seq encoder takes only input_ids "
                          "and attention_mask; export one file instead (-o model.onnx)")
    if list(model.heads) != ["lm"] or model.pooled_heads:
        raise ExportError(f"{spec.name} has heads {', '.join(model.heads) or 'none'}: the seq2seq folder needs one "
                          "language-model head (lm); export one file instead (-o model.onnx)")
    if spec.tuning.kind == "prefix":
        raise ExportError(f"{spec.name}: prefix tuning feeds the attention extra key/value columns through hooks, "
                          "which the cached decoder graph does not carry; export one file instead (-o model.onnx)")
    dec = model.decoder
    blocks = [dec.layers[k] for k in dec.schedule]
    attn = blocks[0].attn
    if any(not b.has_cross for b in blocks):
        raise ExportError(f"{spec.name}: a decoder layer without cross-attention has no encoder cache")
    cross = blocks[0].cross
    if (cross.kv_heads, cross.head_dim) != (attn.kv_heads, attn.head_dim) or any(
            (b.attn.kv_heads, b.attn.head_dim, b.cross.kv_heads, b.cross.head_dim) !=
            (attn.kv_heads, attn.head_dim, attn.kv_heads, attn.head_dim) for b in blocks):
        raise ExportError(f"{spec.name}: the decoder's self- and cross-attention caches differ in shape; Optimum's "
                          "layout has one [batch, heads, seq, head_dim] shape for both")
    return Seq2SeqSignature(len(blocks), attn.kv_heads, attn.head_dim)


# ----------------------------------------------------------------- the modules that are exported


@contextmanager
def cross_kv(model: nn.Module, given: Sequence[tuple[Tensor, Tensor]] | None = None) -> Iterator[list[Any]]:
    """For the block: each decoder cross-attention takes its keys/values from `given` (in schedule
    order) instead of projecting the encoder output; without `given`, the ones it computes are
    collected in the yielded list (schedule order)."""
    dec = model.decoder
    made: list[Any] = []
    feed = iter(given) if given is not None else None
    patched = []
    for key in dict.fromkeys(dec.schedule):
        cross = dec.layers[key].cross
        original = type(cross).memory_kv.__get__(cross)

        def memory_kv(memory: Tensor, _original: Callable = original) -> Any:
            if feed is not None:
                return next(feed)
            kv = _original(memory)
            made.append(kv)
            return kv

        cross.memory_kv = memory_kv
        patched.append(cross)
    try:
        yield made
    finally:
        for cross in patched:
            del cross.memory_kv


class EncoderAdapter(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model.encoder(input_ids, attention_mask)[0]


class DecoderAdapter(nn.Module):
    """The decoder step without (``with_past=False``) or with the caches, tensors in and a tuple out."""

    def __init__(self, model: nn.Module, sig: Seq2SeqSignature, with_past: bool) -> None:
        super().__init__()
        self.model, self.sig, self.with_past = model, sig, with_past

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        input_ids, mask, memory, *past = tensors
        L = self.sig.layers
        self_past = tuple((past[4 * i], past[4 * i + 1]) for i in range(L)) if self.with_past else None
        given = [(past[4 * i + 2], past[4 * i + 3]) for i in range(L)] if self.with_past else None
        with cross_kv(self.model, given) as made:
            out = self.model(attention_mask=mask, decoder_input_ids=input_ids, encoder_outputs=memory,
                             past_key_values=self_past, use_cache=True)
        flat = [out.logits]
        for i, (k, v) in enumerate(out.past_key_values):
            flat += [k, v]
            if not self.with_past:
                flat += list(made[i])
        return tuple(flat)


def torch_step(model: nn.Module, ids: Tensor, mask: Tensor, memory: Tensor,
               past: Sequence[Tensor] | None = None) -> list[Tensor]:
    """PyTorch's answer for one merged-decoder call: logits, then the presents in `Seq2SeqSignature`
    order (the cross-attention ones computed from `memory`; on a cached call they are not returned)."""
    with ox._eval(model), torch.no_grad():
        L = len(model.decoder.schedule)
        self_past = tuple((past[4 * i], past[4 * i + 1]) for i in range(L)) if past is not None else None
        out = model(attention_mask=mask, decoder_input_ids=ids, encoder_outputs=memory, past_key_values=self_past,
                    use_cache=True)
        flat = [out.logits]
        for i, (k, v) in enumerate(out.past_key_values):
            flat += [k, v]
            if past is None:
                flat += list(model.decoder.layers[model.decoder.schedule[i]].cross.memory_kv(memory))
    return flat


# ----------------------------------------------------------------- fused cross-attention


@torch.library.custom_op("plmgraph_seq2seq::cross_mha", mutates_args=())
def cross_mha(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, heads: int, scale: float) -> Tensor:
    """MultiHeadAttention's meaning with projected keys / values: query [B, T, n*d], key / value
    [B, n, S, d] (BNSH, the encoder cache's layout), bias additive [B|1, 1, T, S] -> [B, T, n*d]."""
    B, T, _ = query.shape
    d = key.shape[-1]
    q = query.view(B, T, heads, d).transpose(1, 2)  # [B, n, T, d]
    y = torch.nn.functional.scaled_dot_product_attention(q, key, value, attn_mask=bias, scale=scale)
    return y.transpose(1, 2).reshape(B, T, heads * d).contiguous()


@cross_mha.register_fake
def _cross_mha_fake(query, key, value, bias, heads, scale):  # noqa: ANN001, ANN202
    return query.new_empty(query.shape)


def _cross_translations() -> dict[Callable, Callable]:
    from onnxscript.values import Op, Opset

    ms = Opset("com.microsoft", 1)
    MultiHeadAttention = Op(ms, "MultiHeadAttention", onnx_fuse._contrib_schema("MultiHeadAttention", outputs=1))  # noqa: N806

    def cross_onnx(query, key, value, bias, heads: int, scale: float):  # noqa: ANN001, ANN202
        # key / value 4-D: ONNX Runtime's cross-attention format (Q_K_V_BSNH_BNSH_BNSH), used as given
        return MultiHeadAttention(query, key, value, None, None, bias, num_heads=heads, scale=scale)

    return {torch.ops.plmgraph_seq2seq.cross_mha.default: cross_onnx}


def _cross_plan(model: nn.Module) -> list[onnx_fuse.Fusion]:
    """For each decoder cross-attention: MultiHeadAttention, or why it stays plain."""
    from plmgraph.compile.attention import CrossAttention

    plan = []
    for key in dict.fromkeys(model.decoder.schedule):
        cross = model.decoder.layers[key].cross
        why = ""
        if type(cross) is not CrossAttention:
            why = f"{type(cross).__name__} has no fused kernel"
        elif cross.kv_heads != cross.heads:
            why = (f"MultiHeadAttention has no grouped key/value heads ({cross.heads} heads, {cross.kv_heads} kv "
                   "heads)")
        elif cross.qk_norm:
            why = "the queries are normed per head after the projection (the kernel takes them unnormed)"
        elif cross.softcap is not None:
            why = f"soft-capped scores (softcap {cross.softcap:g}) are computed outside SDPA; kept plain"
        plan.append(onnx_fuse.Fusion(f"decoder.layers.{key}.cross", "attention/cross",
                                     None if why else "com.microsoft.MultiHeadAttention", why))
    return plan


def seq2seq_fusion_plan(model: nn.Module) -> list[onnx_fuse.Fusion]:
    """What each attention module of the encoder-decoder becomes in the fused folder (or why it stays
    plain): `onnx_fuse.fusion_plan` for the self-attention of both stacks, then the cross-attention."""
    return [*onnx_fuse.fusion_plan(model), *_cross_plan(model)]


def _cross_forward(cross: nn.Module) -> Callable[..., Tensor]:
    def forward(x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        B, T, _ = x.shape
        k, v = cross.memory_kv(memory)  # [B, n, S, d] each (`cross_kv` hands them in on the cached branch)
        if mask is not None:  # [B, 1, 1, S] -> [B, 1, T, S]: the kernel does not broadcast over queries
            mask = mask.expand(-1, -1, T, -1)
        y = torch.ops.plmgraph_seq2seq.cross_mha(cross.q(x), k, v, mask, cross.heads, onnx_fuse._scale(cross))
        return cross.out(y)

    return forward


@contextmanager
def fused_cross(model: nn.Module) -> Iterator[list[onnx_fuse.Fusion]]:
    """Swap the ``forward`` of every fusable cross-attention (`_cross_plan`) for one that calls
    ``plmgraph_seq2seq::cross_mha`` (translated to MultiHeadAttention) for the block; restore after."""
    plan = _cross_plan(model)
    patched = []
    try:
        for f in plan:
            if f.op is not None:
                cross = model.get_submodule(f.module)
                cross.forward = _cross_forward(cross)
                patched.append(cross)
        yield plan
    finally:
        for cross in patched:
            del cross.forward


@contextmanager
def _fusing(model: nn.Module, module: nn.Module, fuse: bool) -> Iterator[dict[Any, Any] | None]:
    """Every fusable module swapped (`onnx_fuse.fused`, `fused_cross`) and the translation table, when `fuse`."""
    if not fuse:
        yield None
        return
    with onnx_fuse.fused(model, module), fused_cross(model):
        yield {**onnx_fuse.translation_table(), **_cross_translations()}


# ----------------------------------------------------------------- export


def _export(model: nn.Module, module: nn.Module, args: tuple[Tensor, ...], shapes: tuple[Any, ...],
            names: tuple[list[str], list[str]], path: Path, what: str, opset: int | None, optimize: bool,
            large: bool, fuse: bool = False) -> Path:
    with ox._eval(model), torch.no_grad(), ox._quiet(), warnings.catch_warnings(), \
            _fusing(model, module, fuse) as table:
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
            program = program.run_decompositions({torch.ops.aten.scaled_dot_product_attention.default: ox._sdpa_math})
            torch.onnx.export(program, args, str(path), dynamo=True, input_names=names[0], output_names=names[1],
                              opset_version=opset, dynamic_shapes=shapes, optimize=optimize, external_data=large,
                              verbose=False, custom_translation_table=table)
        except Exception as e:  # noqa: BLE001  (torch raises many types; the message is what matters)
            raise ExportError(f"exporting {model.spec.name}'s {what} to ONNX failed: {ox._cause(e)}") from e
    if fuse:
        onnx_fuse.fuse_graph(path)
    return path


def _finish(path: Path, optimize: bool, fuse: bool) -> None:
    """ONNX Runtime's offline optimizations, then the tied head's table stored once: by the skip-norm
    rewrites when fused (`onnx_fuse.fuse_skip_norms` ties it too), else `tie_transposed_tables`."""
    if not optimize:
        return
    ox.optimize_graph(path)
    if fuse:  # the folder's graphs keep SkipLayerNormalization and MultiHeadAttention as they are
        onnx_fuse.fuse_skip_norms(path, plain_layer_norms=False, pack_attention=False)
    else:
        tie_transposed_tables(path)


def tie_transposed_tables(path: Path) -> int:
    """`onnx_fuse.tie_transposes` on the graph at `path` (T5's scaled tied head included): the
    embedding table stored once.  Returns how many copies were dropped."""
    model = onnx_fuse._load(path)
    tied = onnx_fuse.tie_transposes(model)
    if tied:
        onnx_fuse._save(model, path)
    return tied


def _random_ids(model: nn.Module, b: int, t: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, model.spec.sizes.vocab, (b, t), generator=gen)


def _mask(b: int, s: int, pad: int) -> Tensor:
    mask = torch.ones(b, s, dtype=torch.long)
    if pad:
        mask[0, s - pad:] = 0
    return mask


def _encode(model: nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    with ox._eval(model), torch.no_grad():
        return model.encoder(ids, mask)[0]


def export_seq2seq(model: nn.Module, folder: Path, *, optimize: bool = True, opset: int | None = None,
                   batch: int = 2, seq: int = 7, fuse: bool = True) -> list[Path]:
    """Write `ENCODER_FILE` and `DECODER_FILE` into `folder` (not verified; see `verify_seq2seq`).

    `fuse`: ONNX Runtime's attention kernels and norm fusions (see the module docstring); False: the
    plain ONNX graphs."""
    import tempfile

    from torch.export import Dim

    sig = seq2seq_signature(model)
    folder = Path(folder)
    large = ox._weight_bytes(model) > ox.TWO_GB - 2**27
    gen = torch.Generator().manual_seed(0)
    B, S, T, P = batch, seq, 3, 4  # distinct sizes >= 2: torch.export specialises 0 and 1
    b, s = Dim("batch_size"), Dim("encoder_sequence_length")
    ids, mask = _random_ids(model, B, S, gen), _mask(B, S, 1)
    enc = _export(model, EncoderAdapter(model), (ids, mask), ({0: b, 1: s}, {0: b, 1: s}),
                  (ENCODER_INPUTS, ["last_hidden_state"]), folder / ENCODER_FILE, "encoder", opset, optimize, large,
                  fuse)
    _finish(enc, optimize, fuse)
    memory = _encode(model, ids, mask)
    t, p = Dim("decoder_sequence_length"), Dim("past_decoder_sequence_length")
    plain = ["input_ids", "encoder_attention_mask", "encoder_hidden_states"]
    plain_shapes = ({0: b, 1: t}, {0: b, 1: s}, {0: b, 1: s})
    dec_ids = _random_ids(model, B, T, gen)
    past_flat = [x.contiguous() for x in torch_step(model, _random_ids(model, B, P, gen), mask, memory)[1:]]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        no_past = _export(model, DecoderAdapter(model, sig, False), (dec_ids, mask, memory),
                          (plain_shapes,), (plain, ["logits", *sig.present_names()]), Path(tmp) / "no_past.onnx",
                          "decoder", opset, optimize, large, fuse)
        past_shapes = [{0: b, 2: p} if ".decoder." in n else {0: b, 2: s} for n in sig.past_names()]
        with_past = _export(model, DecoderAdapter(model, sig, True), (dec_ids, mask, memory, *past_flat),
                            ((*plain_shapes, *past_shapes),),
                            (plain + sig.past_names(), ["logits", *sig.present_names("decoder")]),
                            Path(tmp) / "with_past.onnx", "cached decoder", opset, optimize, large, fuse)
        # each branch optimized before the If holds it: the rewrites read a graph's top level only, and
        # ONNX Runtime's constant folding inside the branches would copy the tied table into each
        _finish(no_past, optimize, fuse)
        _finish(with_past, optimize, fuse)
        merge_decoders(no_past, with_past, folder / DECODER_FILE, sig, large)
    return [enc, folder / DECODER_FILE]


# ----------------------------------------------------------------- merging (Optimum's If)


def _small(t: Any) -> bool:
    """Scalars and 1-D integer tensors stay inside the branches (as Optimum's merge keeps them)."""
    return len(t.dims) == 0 or (len(t.dims) == 1 and t.data_type in (6, 7))


def _rename_inputs(graph: Any, rename: dict[str, str]) -> None:
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name in rename:
                node.input[j] = rename[name]
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_inputs(attr.g, rename)
            for g in attr.graphs:
                _rename_inputs(g, rename)


def merge_decoders(no_past: Path, with_past: Path, out: Path, sig: Seq2SeqSignature, large: bool = False) -> Path:
    """One graph with an ``If`` on ``use_cache_branch``: ``with_past`` as its then-branch, ``no_past``
    as its else-branch, each distinct weight stored once in the outer graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a, c = onnx.load(str(no_past)), onnx.load(str(with_past))
    taken_values = {o for g in (a.graph, c.graph) for n in g.node for o in n.output}
    taken_values |= {i.name for g in (a.graph, c.graph) for i in g.input}
    taken_values |= {t.name for g in (a.graph, c.graph) for t in g.initializer if _small(t)}  # no shadowing
    outer: list[Any] = []
    by_content: dict[tuple[Any, ...], str] = {}
    names: set[str] = set()

    def hoist(graph: Any) -> list[Any]:
        keep, rename = [], {}
        for t in graph.initializer:
            if _small(t):
                keep.append(t)
                continue
            arr = numpy_helper.to_array(t)
            key = (t.data_type, tuple(t.dims), hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest())
            if key in by_content:
                rename[t.name] = by_content[key]
                continue
            name = t.name
            while name in names or name in taken_values:
                name += "_shared"
            if name != t.name:
                rename[t.name] = name
            new = numpy_helper.from_array(arr, name)
            outer.append(new)
            by_content[key] = name
            names.add(name)
        _rename_inputs(graph, rename)
        return keep

    keep_a, keep_c = hoist(a.graph), hoist(c.graph)
    nodes_c = list(c.graph.node)
    outputs_c = list(c.graph.output)
    for name in sig.present_names("encoder"):  # Optimum's empty constants: the runtime keeps the first step's
        empty = helper.make_tensor(name + "_empty", TensorProto.FLOAT, [0, sig.kv_heads, 1, sig.head_dim], [])
        nodes_c.append(helper.make_node("Constant", [], [name], name=name + "_constant", value=empty))
        outputs_c.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [0, sig.kv_heads, 1, sig.head_dim]))
    order = {n: i for i, n in enumerate(sig.decoder_outputs)}
    outputs_c.sort(key=lambda v: order[v.name])
    outputs_a = sorted(a.graph.output, key=lambda v: order[v.name])
    # (no value_info in the branches: the exporter's shape annotations may name values of the other graph)
    else_branch = helper.make_graph(list(a.graph.node), "no_past", [], outputs_a, initializer=keep_a)
    then_branch = helper.make_graph(nodes_c, "with_past", [], outputs_c, initializer=keep_c)
    inputs = {i.name: i for i in a.graph.input}
    inputs.update({i.name: i for i in c.graph.input if i.name not in inputs})
    graph_inputs = []
    for n in sig.decoder_inputs[:-1]:
        if n.startswith("past_key_values."):  # the first step's encoder pasts are empty: their own axis name
            axis = "past_decoder_sequence_length" if ".decoder." in n else "encoder_sequence_length_out"
            graph_inputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, [
                "batch_size", sig.kv_heads, axis, sig.head_dim]))
        else:
            graph_inputs.append(inputs[n])
    graph_inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))
    graph_outputs = []
    for v in outputs_a:  # dims: batch and static sizes kept, the sequence axes named for both branches
        dims: list[Any] = ["batch_size", "decoder_sequence_length", sig_vocab(v)] if v.name == "logits" else [
            "batch_size", sig.kv_heads, "present_decoder_sequence_length" if ".decoder." in v.name
            else "encoder_sequence_length_out", sig.head_dim]
        graph_outputs.append(helper.make_tensor_value_info(v.name, TensorProto.FLOAT, dims))
    node = helper.make_node("If", ["use_cache_branch"], [v.name for v in outputs_a], name="optimum::if",
                            then_branch=then_branch, else_branch=else_branch)
    merged = helper.make_graph([node], "merged", graph_inputs, graph_outputs, initializer=outer)
    opsets: dict[str, Any] = {}
    for imp in list(a.opset_import) + list(c.opset_import):
        opsets.setdefault(imp.domain, imp)
    model = helper.make_model(merged, opset_imports=list(opsets.values()), producer_name="plmgraph")
    model.ir_version = a.ir_version
    functions: dict[tuple[str, str], Any] = {}
    for f in list(a.functions) + list(c.functions):
        functions.setdefault((f.domain, f.name), f)
    model.functions.extend(functions.values())
    if large:
        onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=out.name + ".data", size_threshold=1024)
    else:
        onnx.save(model, str(out))
    return out


def sig_vocab(v: Any) -> Any:
    """The static vocabulary size of a ``logits`` value info (or a name when it is symbolic)."""
    dims = v.type.tensor_type.shape.dim
    return dims[-1].dim_value if len(dims) and dims[-1].HasField("dim_value") else "vocab_size"


# ----------------------------------------------------------------- verify


def verify_seq2seq(model: nn.Module, folder: str | Path, *, atol: float = ox.ATOL, rtol: float = ox.RTOL,
                   seed: int = 1) -> ox.VerifyReport:
    """Both graphs against PyTorch eager (fp32) on shapes other than the export shape.

    Encoder: batch 1 with a short input, batch 3 with a long one (row 0 padded).  Merged decoder,
    for the same two shapes: the first step (``use_cache_branch`` False, empty pasts; one start
    token at batch 1, four decoder tokens at batch 3) compared on its logits and every present,
    then one cached step fed ONNX Runtime's own presents (``use_cache_branch`` True) compared on
    the logits and the self-attention presents; and a cached step of three tokens on a PyTorch-made
    cache of another length (batch 2; batch 1 for a decoder with GroupQueryAttention, which takes
    several new tokens on a non-empty cache only for one sequence).  Every element within
    ``atol + rtol * |PyTorch|``, every position compared (the decoder has no padding; the encoder's
    padded rows still see unpadded keys).

    Raises:
        ExportError: a file ONNX Runtime cannot load or run, other input / output names than
            Optimum's, or an output that differs (case, output, shape and max abs diff named).
    """
    ort = ox.import_onnxruntime()
    folder = Path(folder)
    sig = seq2seq_signature(model)
    sessions = {}
    for name, want_in, want_out in ((ENCODER_FILE, ENCODER_INPUTS, ["last_hidden_state"]),
                                    (DECODER_FILE, sig.decoder_inputs, sig.decoder_outputs)):
        try:
            sess = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  (onnxruntime's own types)
            raise ExportError(f"{folder / name}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") \
                from None
        got_in, got_out = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
        if got_in != want_in or got_out != want_out:
            raise ExportError(f"{folder / name} has inputs {got_in} and outputs {got_out}, expected {want_in} -> "
                              f"{want_out}")
        sessions[name] = sess
    checks: list[ox.Check] = []
    gen = torch.Generator().manual_seed(seed)

    def run(name: str, case: str, feed: dict[str, Any]) -> list[np.ndarray]:
        arrays = {k: (v.detach().cpu().numpy() if isinstance(v, Tensor) else v) for k, v in feed.items()}
        try:
            return sessions[name].run(None, arrays)
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"ONNX Runtime cannot run {name} on {case}: {str(e).splitlines()[0][:300]}") from None

    def compare(case: str, names: Sequence[str], got: Sequence[np.ndarray], want: Sequence[Tensor]) -> None:
        for name, g, w in zip(names, got, want, strict=False):
            w = w.detach().cpu().float().numpy()
            if g.shape != w.shape:
                raise ExportError(f"ONNX Runtime output {name!r} has shape {list(g.shape)} on {case}, PyTorch's "
                                  f"{list(w.shape)}")
            err = np.abs(g - w)
            diff = float(err.max()) if w.size else 0.0
            used = float((err / (atol + rtol * np.abs(w))).max()) if w.size else 0.0
            checks.append(ox.Check(case, name, tuple(w.shape), diff, used))
            if not used <= 1.0:  # NaN fails too
                raise ExportError(f"ONNX Runtime output {name!r} differs from PyTorch on {case}: shape "
                                  f"{list(w.shape)}, max abs diff {diff:.3g} > atol {atol:g} + rtol {rtol:g} * "
                                  f"|PyTorch| ({used:.2f}x the tolerance)")

    def empty(b: int) -> dict[str, np.ndarray]:
        return {n: np.zeros((b, sig.kv_heads, 0, sig.head_dim), np.float32) for n in sig.past_names()}

    limit = ox._max_positions(model)
    for b, s, t in ((1, 3, 1), (3, min(limit, 19), 4)):
        case = f"batch {b}, encoder seq {s}"
        ids, mask = _random_ids(model, b, s, gen), _mask(b, s, 2 if b > 1 else 0)
        memory = _encode(model, ids, mask)
        got = run(ENCODER_FILE, case, {"input_ids": ids, "attention_mask": mask})
        compare(f"encoder {case}{', padded' if b > 1 else ''}", ["last_hidden_state"], got, [memory])
        dec = _random_ids(model, b, t, gen)
        first = f"decoder {case}, past 0, seq {t}"
        feed = {"input_ids": dec, "encoder_attention_mask": mask, "encoder_hidden_states": memory, **empty(b),
                "use_cache_branch": np.array([False])}
        got = run(DECODER_FILE, first, feed)
        want = torch_step(model, dec, mask, memory)
        compare(first, sig.decoder_outputs, got, want)
        step_ids = _random_ids(model, b, 1, gen)
        step = f"decoder {case}, past {t}, seq 1, ORT cache"
        ort_past = {n: got[1 + i] for i, n in enumerate(sig.past_names())}
        got = run(DECODER_FILE, step, {"input_ids": step_ids, "encoder_attention_mask": mask,
                                       "encoder_hidden_states": memory, **ort_past,
                                       "use_cache_branch": np.array([True])})
        want_step = torch_step(model, step_ids, mask, memory, want[1:])
        dec_names = ["logits", *sig.present_names("decoder")]
        compare(step, dec_names, [got[0], *(got[1 + sig.present_names().index(n)] for n in dec_names[1:])],
                want_step)
        for n in sig.present_names("encoder"):
            shape = got[1 + sig.present_names().index(n)].shape
            if shape[0] != 0:
                raise ExportError(f"{DECODER_FILE}: {n} on a cached step has shape {list(shape)}, not the empty "
                                  "constant Optimum's layout has")
    gqa = "GroupQueryAttention" in ox.fused_ops(folder / DECODER_FILE)  # several new tokens on a cache: batch 1 only
    b, s, past = 1 if gqa else 2, 6, 5
    case = f"decoder batch {b}, encoder seq {s}, past {past}, seq 3, PyTorch cache"
    ids, mask = _random_ids(model, b, s, gen), _mask(b, s, 1)
    memory = _encode(model, ids, mask)
    cache = torch_step(model, _random_ids(model, b, past, gen), mask, memory)[1:]
    new = _random_ids(model, b, 3, gen)
    got = run(DECODER_FILE, case, {"input_ids": new, "encoder_attention_mask": mask, "encoder_hidden_states": memory,
                                   **dict(zip(sig.past_names(), cache, strict=True)),
                                   "use_cache_branch": np.array([True])})
    want = torch_step(model, new, mask, memory, cache)
    names = ["logits", *sig.present_names("decoder")]
    compare(case, names, [got[0], *(got[1 + sig.present_names().index(n)] for n in names[1:])], want)
    fused = ox.is_fused(folder / ENCODER_FILE) or ox.is_fused(folder / DECODER_FILE)
    return ox.VerifyReport(folder, checks, atol, rtol, fused)


# ----------------------------------------------------------------- the folder's configs


def seq2seq_configs(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(config.json, generation_config.json, notes) for an encoder-decoder folder.

    The decoder starts from the pad id, as plmgraph's `generate` (and training) start it, so that
    Optimum, `plmgraph.runtime` and PyTorch generate the same tokens; ``forced_eos_token_id`` (a
    generation setting plmgraph's generate does not apply) is left out."""
    cfg = dict(cfg)
    notes = []
    start = cfg.get("pad_token_id", 0)
    if cfg.get("decoder_start_token_id", start) != start:
        notes.append(f"decoder_start_token_id {start} (the pad id, plmgraph's start token) instead of "
                     f"{cfg['model_type']}'s {cfg['decoder_start_token_id']}")
    cfg["decoder_start_token_id"] = start
    cfg.pop("forced_eos_token_id", None)
    cfg["is_encoder_decoder"] = True
    gen = {k: cfg[k] for k in ("bos_token_id", "decoder_start_token_id", "eos_token_id", "pad_token_id") if k in cfg}
    gen["transformers_version"] = cfg["transformers_version"]
    return cfg, gen, notes


def write_configs(tmp: Path, cfg: dict[str, Any] | None) -> list[str]:
    """config.json and generation_config.json into `tmp`; the notes to report."""
    if cfg is None:
        return []
    cfg, gen, notes = seq2seq_configs(cfg)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
    return notes


__all__ = ["DECODER_FILE", "ENCODER_FILE", "SEQ2SEQ_FILES", "Seq2SeqSignature", "export_seq2seq", "fused_cross",
           "merge_decoders", "seq2seq_fusion_plan", "seq2seq_signature", "verify_seq2seq"]


# ----------------------------------------------------------------- the folder


def export_seq2seq_folder(model: nn.Module, folder: str | Path, *, tokenizer: Any = None, optimize: bool = True,
                          verify: bool = True, opset: int | None = None, force: bool = False, fuse: bool = True,
                          on_stage: Callable[[str], None] | None = None) -> Any:
    """`onnx_folder.export_folder` for an encoder-decoder (see the module docstring); a `FolderReport`.

    Raises:
        ExportError: see `seq2seq_signature`, or a failed export / verification (nothing is written).
        CheckpointError: the folder holds other files (without `force`) or cannot be written.
    """
    from plmgraph.compile.io import spec_yaml, write_folder

    from . import onnx_folder as of

    spec = model.spec
    seq2seq_signature(model)  # refuse before any work
    out = Path(folder)
    notes: list[str] = []
    cfg, why = of.hf_config(model, tokenizer, True)
    if why:
        notes.append(why)
    if fuse:
        notes.extend(f"{f.module} stays the plain graph: {f.why}" for f in seq2seq_fusion_plan(model) if f.op is None)
    if tokenizer is None:
        notes.append("no tokenizer files: the source has no tokenizer.json (a run folder or a saved model with one "
                     "has); prompts must be token ids")
    written: list[str] = []
    report = of.FolderReport(out, written, notes)

    def write(tmp: Path) -> None:
        if on_stage:
            on_stage("export")
        export_seq2seq(model, tmp, optimize=optimize, opset=opset, fuse=fuse)
        if verify:
            if on_stage:
                on_stage("verify")
            report.verification = verify_seq2seq(model, tmp)
        notes.extend(write_configs(tmp, cfg))
        files = {"spec.yaml": spec_yaml(spec)}
        if tokenizer is not None:
            files.update(of.tokenizer_files(tokenizer, spec.sizes.max_positions))
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        written.extend(sorted(p.name for p in tmp.iterdir()))

    write_folder(out, write, of.FOLDER_FILES, force=force)
    if report.verification is not None:
        report.verification.path = out  # (it ran in the temporary folder)
    return report
