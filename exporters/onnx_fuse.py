"""Fused ONNX graphs: ONNX Runtime's own kernels for the blocks the graph says a model has.

    with fused(model) as table:                  # the model's blocks run through fusable custom ops
        torch.onnx.export(program, ..., custom_translation_table=table)
    fuse_graph(path)                             # graph rewrites after the export (RMSNorm as a Div)

What each block kind becomes (`FUSIONS`, keyed on the kinds of the graph's nodes):

``attention/self`` in a causal stack (GPT-2, LLaMA, Mistral, Mixtral, ...)
    one ``com.microsoft.GroupQueryAttention`` per layer: the key/value cache inside
    (``past_key``/``past_value`` in, ``present_key``/``present_value`` out, BNSH
    [batch, kv_heads, past + seq, head_dim], plmgraph's and Optimum's cache layout), the grouped
    key/value heads served as they are (no ``Expand`` to repeat them), and with
    ``position/rope`` the rotary embedding inside (``do_rotary``) from cos/sin tables computed
    once for every position up to ``max_positions`` and stored as two initializers: nothing
    computes ``Sin``/``Cos`` per call.  The stack's additive mask goes in as ``attention_bias``,
    so any ``attention_mask`` means what it means in PyTorch (holes from padding included): for
    a plain causal stack the padding row alone (the kernel is causal itself), the whole mask
    where it is more (sliding window, ALiBi, T5's bias).  The fused QKV projection goes in
    packed (no ``Split``) unless q and k are normed or rotated at ``position_ids`` first.
    Nothing but the kernels reads the cache (the past length comes from ``attention_mask``), so
    the graph also runs on one shared buffer per layer (`shares_buffer`, GenAI's
    ``past_present_share_buffer``; `SharedCache` runs it).
``attention/self`` in a bidirectional stack (BERT, RoBERTa, ViT encoders)
    one ``com.microsoft.MultiHeadAttention`` per layer, the padding mask as ``attention_bias``;
    where q, k, v are the three parts of one biased projection, `fuse_skip_norms` writes it as the
    packed ``com.microsoft.Attention(x, W, b, attention_bias)`` (Optimum's form): one node a layer
    instead of ``MatMul``, ``Add``, ``Split`` and ``MultiHeadAttention``.
``norm/rmsnorm``
    the exporter writes ``x * Reciprocal(Sqrt(mean(x²) + eps))``, which ONNX Runtime's fusion
    does not match; `fuse_graph` rewrites it as ``x / Sqrt(...)``, after which ONNX Runtime's
    optimizer fuses every norm into ``SimplifiedLayerNormalization`` and the residual add in
    front of it into ``SkipSimplifiedLayerNormalization``.
``norm/layernorm`` + ``residual/add``
    in a graph without a cache, ``Add`` + ONNX's ``LayerNormalization``, not
    ``SkipLayerNormalization``: ONNX Runtime's CPU skip kernel is a scalar loop, 5.7x slower at
    128 rows (`fuse_skip_norms` undoes the ones its optimizer makes, in an order its fusion does not
    match again); a cached graph, decoding one row at a time, keeps ``SkipLayerNormalization``.
``mlp/dense`` (GELU)
    the exporter's ``Gelu`` is matched by ONNX Runtime's own fusions (``BiasGelu``/``FastGelu``)
    in `optimize_graph`.

Blocks a fused kernel cannot express exactly are left as the plain graph, layer by layer:
GLM's prefix-LM (bidirectional inside a causal stack), relative attention (Transformer-XL,
XLNet), dynamic NTK rotary (its tables depend on the sequence length), cross-attention.
`fusion_plan` says, per module, what it becomes and why not.

How: each fusable module's ``forward`` is swapped, for the length of the export only, for
one that calls a ``plmgraph_fused::*`` custom op (`torch.library`); the op's eager body is the
reference math (so ``torch.export`` traces it and the shapes are checked), and its
translation in `translation_table` writes the ``com.microsoft`` node.  The weights, their
names and the model are untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The com.microsoft attention kernels a fused graph has (`onnx.is_fused` looks for them).
ATTENTION_OPS = ("GroupQueryAttention", "MultiHeadAttention", "Attention")

# ---------------------------------------------------------------- custom ops (eager = reference math)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, interleaved: bool) -> Tensor:
    """Rotate the first ``2 * cos.shape[-1]`` dims of x [B, h, T, d] by cos/sin [T, rd/2]."""
    rd = 2 * cos.shape[-1]
    if interleaved:
        cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
    else:
        cos, sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    rot, rest = x[..., :rd], x[..., rd:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        turned = torch.stack((-x2, x1), dim=-1).flatten(-2)
    else:
        x1, x2 = rot[..., : rd // 2], rot[..., rd // 2:]
        turned = torch.cat((-x2, x1), dim=-1)
    return torch.cat((rot * cos + turned * sin, rest), dim=-1)


@torch.library.custom_op("plmgraph_fused::gqa", mutates_args=())
def gqa(query: Tensor, key: Tensor | None, value: Tensor | None, past_key: Tensor, past_value: Tensor,
        bias: Tensor | None, cos: Tensor, sin: Tensor, positions: Tensor, heads: int, kv_heads: int, scale: float,
        rotary: int, inside: bool, kernel_causal: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """GroupQueryAttention's meaning: query [B, T, n*d], key/value [B, T, kv*d] (or None: `query` is
    the packed [B, T, (n + 2 kv) * d] projection), past [B, kv, P, d], bias [B|1, n|1, T, P+T]
    additive, cos/sin [max_positions, rd/2] (rotary 0: none, 1: halves, 2: interleaved) at
    `positions` [B, T] -> (output [B, T, n*d], present_key, present_value).
    `inside`: the positions are P .. P+T-1 in every row, so the kernel's own rotary (``do_rotary``)
    applies; otherwise ``com.microsoft.RotaryEmbedding`` rotates q and k at `positions` first.
    `kernel_causal`: `bias` holds the padding only (key j hidden from query i where j > P + i is
    the kernel's own causality; GroupQueryAttention is always causal)."""
    d = past_key.shape[-1]
    if key is None or value is None:
        query, key, value = query.split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
    B, T, _ = query.shape
    if kernel_causal:
        S = past_key.shape[2] + T
        late = torch.arange(S, device=query.device)[None] > torch.arange(S - T, S, device=query.device)[:, None]
        hide = torch.zeros(T, S, dtype=torch.float32, device=query.device).masked_fill(late, torch.finfo(
            torch.bfloat16).min)
        bias = hide if bias is None else bias + hide
    q = query.view(B, T, heads, d).transpose(1, 2)
    k = key.view(B, T, kv_heads, d).transpose(1, 2)
    v = value.view(B, T, kv_heads, d).transpose(1, 2)
    if rotary:
        c, s = cos[positions][:, None], sin[positions][:, None]  # [B, 1, T, rd/2]
        q, k = _rotate(q, c, s, rotary == 2), _rotate(k, c, s, rotary == 2)
    k, v = torch.cat((past_key, k), 2), torch.cat((past_value, v), 2)
    g = heads // kv_heads
    kk, vv = (k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)) if g > 1 else (k, v)
    y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=bias, scale=scale)
    return y.transpose(1, 2).reshape(B, T, heads * d).contiguous(), k.contiguous(), v.contiguous()


@gqa.register_fake
def _gqa_fake(query, key, value, past_key, past_value, bias, cos, sin, positions, heads, kv_heads, scale, rotary,  # noqa: ANN001, ANN202
              inside, kernel_causal=False):
    B, T, _ = query.shape
    shape = (B, kv_heads, past_key.shape[2] + T, past_key.shape[3])
    return query.new_empty(B, T, heads * past_key.shape[3]), past_key.new_empty(shape), past_value.new_empty(shape)


@torch.library.custom_op("plmgraph_fused::mha", mutates_args=())
def mha(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, heads: int, scale: float) -> Tensor:
    """MultiHeadAttention's meaning (bidirectional): query/key/value [B, T, n*d], bias additive
    [B|1, n|1, T, T] -> output [B, T, n*d]."""
    B, T, H = query.shape
    d = H // heads
    q, k, v = (t.view(B, T, heads, d).transpose(1, 2) for t in (query, key, value))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    return y.transpose(1, 2).reshape(B, T, H).contiguous()


@mha.register_fake
def _mha_fake(query, key, value, bias, heads, scale):  # noqa: ANN001, ANN202
    return query.new_empty(query.shape)


# ---------------------------------------------------------------- translations (onnxscript)


def _contrib_schema(name: str, outputs: int, domain: str = "com.microsoft") -> Any:
    """ONNX Runtime's schema of contrib op `name` as an `onnx.defs.OpSchema` (onnx's registry does
    not know ONNX Runtime's ops; the exporter needs a schema to tell inputs from attributes),
    with only its first `outputs` outputs (the exporter writes every output a schema lists)."""
    import onnx.defs as defs
    from onnxruntime.capi import onnxruntime_pybind11_state as C  # noqa: N812

    theirs = next(s for s in C.get_all_operator_schema() if s.name == name and s.domain == domain)
    opt = defs.OpSchema.FormalParameterOption

    def param(p: Any) -> Any:
        return defs.OpSchema.FormalParameter(p.name, p.typeStr, param_option=getattr(opt, p.option.name))

    attrs = [defs.OpSchema.Attribute(a.name, defs.OpSchema.AttrType(int(a.type.value)), required=a.required)
             for a in theirs.attributes.values()]
    return defs.OpSchema(name, domain, theirs.since_version, inputs=[param(p) for p in theirs.inputs],
                         outputs=[param(p) for p in theirs.outputs[:outputs]],
                         type_constraints=[(t.type_param_str, list(t.allowed_type_strs), "")
                                           for t in theirs.type_constraints], attributes=attrs)


def _translations() -> dict[Callable, Callable]:
    from onnxscript import opset18 as op
    from onnxscript.values import Op, Opset

    ms = Opset("com.microsoft", 1)
    GroupQueryAttention = Op(ms, "GroupQueryAttention", _contrib_schema("GroupQueryAttention", outputs=3))  # noqa: N806
    MultiHeadAttention = Op(ms, "MultiHeadAttention", _contrib_schema("MultiHeadAttention", outputs=1))  # noqa: N806
    RotaryEmbedding = Op(ms, "RotaryEmbedding", _contrib_schema("RotaryEmbedding", outputs=1))  # noqa: N806
    import onnx

    _ONE_I32 = onnx.helper.make_tensor("one", onnx.TensorProto.INT32, [1], [1])

    def gqa_onnx(query, key, value, past_key, past_value, bias, cos, sin, positions, heads: int,  # noqa: ANN001, ANN202
                 kv_heads: int, scale: float, rotary: int, inside: bool, kernel_causal: bool = False):
        # GroupQueryAttention's lengths: every row holds past + seq positions (the mask, in the
        # bias, says which of them are padding), so seqlens_k = past + seq - 1 for every row
        # (read off the bias, the same tensor in every layer, so ONNX Runtime computes them once)
        if bias is not None:
            total = op.Cast(op.Shape(bias, start=3, end=4), to=6)
            b0 = bias.shape[0] if bias.shape is not None else 1
            batch = op.Shape(bias if not isinstance(b0, int) or b0 > 1 else query, start=0, end=1)
        else:
            total = op.Cast(op.Add(op.Shape(past_key, start=2, end=3), op.Shape(query, start=1, end=2)), to=6)
            batch = op.Shape(query, start=0, end=1)
        seqlens = op.Expand(op.Sub(total, op.Constant(value=_ONE_I32)), batch)
        # total_sequence_length may be one element [1] as well as a scalar (ONNX Runtime's check,
        # CPU and CUDA alike): no Squeeze
        rope = {"do_rotary": 1, "rotary_interleaved": int(rotary == 2)}
        if rotary and not inside:  # positions from position_ids: rotate q and k at them first
            d = 2 * cos.shape[1] if cos.shape is not None else 0
            query = RotaryEmbedding(query, positions, cos, sin, num_heads=heads, rotary_embedding_dim=d,
                                    interleaved=int(rotary == 2))
            key = RotaryEmbedding(key, positions, cos, sin, num_heads=kv_heads, rotary_embedding_dim=d,
                                  interleaved=int(rotary == 2))
            rope = {}
        elif not rotary:
            rope, cos, sin = {}, None, None
        return GroupQueryAttention(query, key, value, past_key, past_value, seqlens, total, cos, sin, None,
                                   bias, num_heads=heads, kv_num_heads=kv_heads, scale=scale, **rope)

    def mha_onnx(query, key, value, bias, heads: int, scale: float):  # noqa: ANN001, ANN202
        return MultiHeadAttention(query, key, value, None, None, bias, num_heads=heads, scale=scale)

    return {torch.ops.plmgraph_fused.gqa.default: gqa_onnx, torch.ops.plmgraph_fused.mha.default: mha_onnx}


# ---------------------------------------------------------------- which modules fuse


@dataclass(frozen=True)
class Fusion:
    """What one module of the model becomes in the fused graph."""

    module: str
    """Its path in the model (a graph node id)."""
    kind: str
    """Its block kind (``attention/self``, ...)."""
    op: str | None
    """The ONNX Runtime kernel it becomes, or None when it stays the plain graph."""
    why: str = ""
    """Why it stays plain (empty when fused)."""


def fusion_plan(model: nn.Module) -> list[Fusion]:
    """For each attention module of `model`: the kernel it becomes, or why it stays plain.

    Norms, GELU and residual adds are not listed: `fuse_graph` and ONNX Runtime's optimizer
    fuse them by pattern wherever they are."""
    from plmgraph.compile.attention import SelfAttention
    from plmgraph.compile.position import Rotary

    kinds = {nid: d["kind"] for nid, d in model.graph.nx.nodes(data=True)}
    plan: list[Fusion] = []
    for sname in model.stack_names:
        stack = getattr(model, sname)
        for key, block in stack.layers.items():
            attn = getattr(block, "attn", None)
            if attn is None:
                continue
            path = f"{sname}.layers.{key}.attn"
            kind = kinds.get(path, "attention/self")
            why = ""
            if type(attn) is not SelfAttention:
                why = f"{type(attn).__name__} has no fused kernel (relative attention)"
            elif model.spec.tuning.kind == "prefix":  # found by tests/compile/test_property.py
                why = "prefix tuning hands the attention extra key/value columns (through hooks)"
            elif getattr(stack, "prefix", False):
                why = "GLM's prefix-LM mask is bidirectional inside a causal stack"
            elif getattr(attn, "softcap", None) is not None:  # Gemma 2
                why = f"soft-capped scores (softcap {attn.softcap:g}) are computed outside SDPA; kept plain"
            elif getattr(stack, "windows", None) is not None or getattr(stack, "layer_positions", None) is not None:
                why = ("a layer pattern (windows or rotary bases that differ by layer, Gemma 2/3, ModernBERT): the "
                       "fused path builds one mask and one cos/sin table per stack")
            elif stack.rotary and not isinstance(stack.position, Rotary):
                why = f"position {type(stack.position).__name__} inside attention has no fused kernel"
            elif stack.rotary and stack.position.scaling.get("kind") == "dynamic":
                why = "dynamic NTK rotary rescales its tables by the sequence length"
            elif stack.rotary and not _max_positions(stack):
                why = "rotary without max_positions: no length to tabulate cos/sin for"
            elif stack.rotary and (stack.position.rotary_dim // 2) % 8:
                why = (f"ONNX Runtime's rotary kernels need rotary_dim / 2 a multiple of 8 "
                       f"(rotary_dim {stack.position.rotary_dim})")
            elif stack.causal and attn.head_dim % 8:  # found by tests/compile/test_property.py
                why = f"ONNX Runtime's GroupQueryAttention needs head_dim a multiple of 8 (head_dim {attn.head_dim})"
            if why:
                plan.append(Fusion(path, kind, None, why))
            elif stack.causal:
                plan.append(Fusion(path, kind, "com.microsoft.GroupQueryAttention"))
            elif stack.rotary:
                plan.append(Fusion(path, kind, None, "rotary in a bidirectional stack"))
            else:
                plan.append(Fusion(path, kind, "com.microsoft.MultiHeadAttention"))
    return plan


def _max_positions(stack: nn.Module) -> int:
    return int(getattr(stack.position, "max_positions", None) or getattr(stack.embed, "max_positions", None) or 0)


def rotary_tables(position: nn.Module, rows: int) -> tuple[Tensor, Tensor]:
    """cos, sin [rows, rotary_dim / 2] for positions 0 .. rows - 1 (scaled as the module scales)."""
    inv, factor = position.inv_freq(torch.device("cpu"), 0)
    freqs = torch.arange(rows, dtype=torch.float32)[:, None] * inv[None]
    return (freqs.cos() * factor).contiguous(), (freqs.sin() * factor).contiguous()


@contextlib.contextmanager
def fused(model: nn.Module, holder: nn.Module, positions_input: bool = False) -> Iterator[list[Fusion]]:
    """Swap the ``forward`` of every fusable module of `model` (see `fusion_plan`) for one that
    calls a ``plmgraph_fused`` custom op, for the length of the block; restore them after.

    `holder` (the module that is exported, e.g. the `OnnxAdapter`) receives the rotary tables as
    buffers ``rotary_cos_{i}``/``rotary_sin_{i}``, one pair per stack, so that they are stored
    once whatever the number of layers.  With `positions_input` (the graph takes ``position_ids``)
    the rotary embedding is applied at those positions (``RotaryEmbedding``) before the
    attention kernel; without, the kernel rotates at past .. past + seq - 1 itself.

    A fused stack's rotary module returns its positions instead of cos/sin (the attention
    kernels look the angles up in the tables), so no ``Sin``/``Cos`` is left in the graph."""
    plan = fusion_plan(model)
    patched: list[nn.Module] = []
    tables: dict[str, tuple[Tensor, Tensor]] = {}
    by_stack: dict[str, set[str | None]] = {}
    for f in plan:
        by_stack.setdefault(f.module.split(".")[0], set()).add(f.op)
    try:
        for f in plan:
            if f.op is None:
                continue
            sname = f.module.split(".")[0]
            stack = getattr(model, sname)
            attn = model.get_submodule(f.module)
            cos = sin = None
            if stack.rotary:
                if sname not in tables:
                    i = len(tables)
                    c, s = rotary_tables(stack.position, _max_positions(stack))
                    holder.register_buffer(f"rotary_cos_{i}", c, persistent=False)
                    holder.register_buffer(f"rotary_sin_{i}", s, persistent=False)
                    tables[sname] = getattr(holder, f"rotary_cos_{i}"), getattr(holder, f"rotary_sin_{i}")
                cos, sin = tables[sname]
                rotary = 2 if stack.position.interleaved else 1
                if "forward" not in vars(stack.position):
                    stack.position.forward = _positions_only
                    patched.append(stack.position)
            else:
                rotary = 0
            if f.op.endswith("GroupQueryAttention"):
                # a stack whose every layer is GroupQueryAttention and whose mask is causal + padding
                # only hands the kernels the padding row: they are causal themselves
                padding_only = by_stack[sname] == {f.op} and stack.window is None and not stack.score_bias \
                    and not stack.prefix
                attn.forward = _gqa_forward(attn, cos, sin, rotary, not positions_input, padding_only)
                if "self_mask" not in vars(stack):
                    stack.self_mask = _mask_lengths_from_mask(stack, padding_only)
                    patched.append(stack)
            else:
                attn.forward = _mha_forward(attn)
            patched.append(attn)
        yield plan
    finally:
        for m in patched:
            for name in ("forward", "self_mask"):
                if name in vars(m):
                    delattr(m, name)  # the class's method again
        for name in [n for n, _ in holder.named_buffers(recurse=False) if n.startswith("rotary_")]:
            delattr(holder, name)


def _split(attn: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The fused projection and (optional) per-head q/k norms: q [B, T, n*d], k/v [B, T, kv*d]."""
    B, T, _ = x.shape
    n, kv, d = attn.heads, attn.kv_heads, attn.head_dim
    q, k, v = attn.qkv(x).split([n * d, kv * d, kv * d], dim=-1)
    if attn.qk_norm and getattr(attn, "qk_whole", False):  # over the whole projections (OLMo 2)
        q, k = attn.q_norm(q), attn.k_norm(k)
    elif attn.qk_norm:
        q = attn.q_norm(q.reshape(B, T, n, d)).reshape(B, T, n * d)
        k = attn.k_norm(k.reshape(B, T, kv, d)).reshape(B, T, kv * d)
    return q, k, v


def _scale(attn: nn.Module) -> float:
    return float(attn.scale) if attn.scale is not None else 1.0 / math.sqrt(attn.head_dim)


def _positions_only(positions: Tensor) -> tuple[Tensor, Tensor]:
    """A fused stack's rotary: the positions [B|1, T] themselves (see `fused`)."""
    return positions, positions


def _mask_lengths_from_mask(stack: nn.Module, padding_only: bool) -> Callable[..., Any]:
    """A fused causal stack's ``self_mask`` that reads the past length off ``attention_mask``
    (``past + seq`` columns) instead of off the cache tensors, so that nothing in the graph reads
    the shape of ``past_key_values.*``: with a shared buffer (GenAI's ``past_present_share_buffer``)
    the cache is ``max_length`` long whatever the past, and only the mask says how much of it is
    filled (`shares_buffer` checks that the graph reads the cache only through the kernels).
    `padding_only`: the mask is the padding alone, [B, 1, seq, past + seq] (the kernels are causal)."""
    method = type(stack).self_mask

    def self_mask(x: Tensor, T: int, past: int, attention_mask: Tensor | None, cached: bool,
                  prefix_lengths: Tensor | None = None) -> tuple[Tensor | None, bool]:
        if padding_only and attention_mask is not None:  # [B, 1, T, S], every query row the padding row
            keep = attention_mask[:, None, None, :].bool()
            hidden = torch.tensor(torch.finfo(torch.bfloat16).min, dtype=torch.float32, device=x.device)
            return torch.where(keep, torch.zeros((), dtype=torch.float32, device=x.device), hidden).expand(
                -1, -1, T, -1), False
        if cached and attention_mask is not None:
            past = attention_mask.shape[1] - T
        return method(stack, x, T, past, attention_mask, cached, prefix_lengths)

    return self_mask


def _gqa_forward(attn: nn.Module, cos: Tensor | None, sin: Tensor | None, rotary: int,
                 inside: bool, kernel_causal: bool = False) -> Callable[..., Any]:
    # the projection goes in packed (one [B, T, (n + 2 kv) d] tensor, no Split) unless q and k are
    # normed or rotated (RotaryEmbedding at position_ids) first
    packed = not attn.qk_norm and not (rotary and not inside)

    def forward(x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary_cs: tuple[Tensor, Tensor] | None = None, past: tuple[Tensor, Tensor] | None = None):  # noqa: ANN202
        q, k, v = (attn.qkv(x), None, None) if packed else _split(attn, x)
        B, T, _ = x.shape
        if past is None:
            empty = x.new_zeros(B, attn.kv_heads, 0, attn.head_dim)
            past = (empty, empty)
        if cos is None:  # no rotary: the op ignores the tables and positions
            c = s = x.new_zeros(1, 1)
            pos = torch.zeros(B, T, dtype=torch.long, device=x.device)
        else:
            c, s = cos, sin
            pos = (rotary_cs[0] if not inside else rotary_cs[0].expand(B, T)) if rotary_cs is not None else \
                torch.arange(past[0].shape[2], past[0].shape[2] + T, device=x.device)[None].expand(B, T)
        y, pk, pv = torch.ops.plmgraph_fused.gqa(q, k, v, past[0], past[1], mask, c, s, pos, attn.heads,
                                                 attn.kv_heads, _scale(attn), rotary, inside, kernel_causal)
        return attn.out(y), (pk, pv)

    return forward


def _mha_forward(attn: nn.Module) -> Callable[..., Any]:
    def forward(x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary_cs: tuple[Tensor, Tensor] | None = None, past: tuple[Tensor, Tensor] | None = None):  # noqa: ANN202
        q, k, v = _split(attn, x)
        if attn.kv_heads != attn.heads:
            g = attn.heads // attn.kv_heads
            B, T, _ = x.shape
            k = k.view(B, T, attn.kv_heads, 1, attn.head_dim).expand(-1, -1, -1, g, -1).reshape(B, T, -1)
            v = v.view(B, T, attn.kv_heads, 1, attn.head_dim).expand(-1, -1, -1, g, -1).reshape(B, T, -1)
        if mask is not None and mask.shape[-2] == 1 and x.shape[1] != 1:
            mask = mask.expand(mask.shape[0], mask.shape[1], x.shape[1], mask.shape[-1])
        y = torch.ops.plmgraph_fused.mha(q, k, v, mask, attn.heads, _scale(attn))
        return attn.out(y), (k, v)

    return forward


translation_table = _translations


# ---------------------------------------------------------------- graph rewrites after the export


def fuse_graph(path: Any) -> dict[str, int]:
    """Rewrite the exported graph at `path` in place so that ONNX Runtime's fusions match it:
    ``x * Reciprocal(Sqrt(v))`` (the exporter's rsqrt) becomes ``x / Sqrt(v)``, the form
    ``SimplifiedLayerNormalization`` fusion looks for.  Returns how many of each rewrite."""
    import onnx_ir as ir

    model = _load(path)
    done = {"rsqrt_as_div": 0, "batch_from_input_ids": _batch_from_input_ids(model)}
    for node in list(model.graph):
        if node.op_type != "Reciprocal" or node.domain not in ("", "ai.onnx"):
            continue
        sq = node.inputs[0].producer() if node.inputs[0] is not None else None
        if sq is None or sq.op_type != "Sqrt":
            continue
        uses = list(node.outputs[0].uses())
        if not uses or any(u.node.op_type != "Mul" for u in uses):
            continue
        for use in uses:
            mul = use.node
            other = mul.inputs[1 - use.idx]
            div = ir.node("Div", [other, sq.outputs[0]], name=(mul.name or "") + "_div")
            model.graph.insert_before(mul, div)
            _take_over(model, mul.outputs[0], div.outputs[0])
            model.graph.remove(mul, safe=True)
            done["rsqrt_as_div"] += 1
        model.graph.remove(node, safe=True)
    _mark_share_buffer(model)
    _save(model, path)
    return done


# ---------------------------------------------------------------- shared key/value buffer

#: ``metadata_props`` key of a cached graph that runs on one shared key/value buffer per layer
#: (`shares_buffer`); `plmgraph.runtime` reads it from the session (value ``"true"``).
SHARE_BUFFER_KEY = "plmgraph.past_present_share_buffer"


def shares_buffer(path: Any) -> bool:
    """Whether the cached graph at `path` (or an `onnx_ir` model) runs with ``past`` and ``present``
    bound to one preallocated buffer [batch, kv_heads, max_length, head_dim] per layer (ONNX
    Runtime GenAI's ``past_present_share_buffer: true``; `plmgraph.runtime`'s generation loop).

    GroupQueryAttention writes the new keys/values in place at ``total - seq`` .. ``total - 1``
    when its past and present are one buffer, ``total`` being its ``total_sequence_length``
    (here: ``attention_mask``'s length; padding holes go in as ``attention_bias``).  That is
    exact only when nothing else reads the cache, since its length is then the buffer's and not
    the past's: so a graph shares when ``attention_mask`` is an input and every
    ``past_key_values.*`` is read, and every ``present.*`` written, by GroupQueryAttention alone
    (a layer left plain, or a length taken off the cache's shape, and it does not)."""
    model = path if not isinstance(path, (str, bytes)) and hasattr(path, "graph") else _load(path)
    names = {v.name for v in model.graph.inputs}
    past = [v for v in model.graph.inputs if v.name.startswith("past_key_values.")]
    presents = [v for v in model.graph.outputs if v.name.startswith("present.")]
    if not past or "attention_mask" not in names or len(presents) != len(past):
        return False
    for v in past:
        uses = list(v.uses())
        if not uses or any(u.node.op_type != "GroupQueryAttention" or u.idx not in (3, 4) for u in uses):
            return False
    for v in presents:
        node = v.producer()
        if node is None or node.op_type != "GroupQueryAttention" or v not in list(node.outputs)[1:3]:
            return False
    return True


class SharedCache:
    """Runs a shared-buffer graph (`shares_buffer`) in `sess` on CPU: one buffer [batch, kv_heads,
    capacity, head_dim] per ``past_key_values.*``, zeros at first, bound (I/O binding) as that
    input and as its ``present.*`` output, so the kernel writes the new positions in place.

        run = SharedCache(sess, batch=2, capacity=64)
        outputs = run(feed)   # feed's past_key_values.* are ignored; presents are the filled part

    Returns the outputs in the session's order, each ``present.*`` cut to the ``attention_mask``
    length (what the buffer holds so far), as the graph without a shared buffer returns them."""

    def __init__(self, sess: Any, batch: int, capacity: int) -> None:
        import numpy as np

        from .runtime import import_onnxruntime

        ort = import_onnxruntime()
        self.sess = sess
        meta = {i.name: i for i in sess.get_inputs()}
        self.past = [n for n in meta if n.startswith("past_key_values.")]
        self.outputs = [o.name for o in sess.get_outputs()]
        dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
        self.buffers = {n: ort.OrtValue.ortvalue_from_numpy(np.zeros(
            (batch, meta[n].shape[1], capacity, meta[n].shape[3]), dtypes.get(meta[n].type, np.float32)))
            for n in self.past}

    def __call__(self, feed: dict[str, Any]) -> list[Any]:
        import numpy as np

        binding = self.sess.io_binding()
        for name, value in feed.items():
            if not name.startswith("past_key_values."):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.past:
            binding.bind_ortvalue_input(name, self.buffers[name])
        for name in self.outputs:
            if name.startswith("present."):
                binding.bind_ortvalue_output(name, self.buffers["past_key_values." + name[len("present."):]])
            else:
                binding.bind_output(name, "cpu")
        self.sess.run_with_iobinding(binding)
        total = feed["attention_mask"].shape[1]
        return [v.numpy()[:, :, :total] if name.startswith("present.") else v.numpy()
                for name, v in zip(self.outputs, binding.get_outputs(), strict=True)]


def _mark_share_buffer(model: Any) -> None:
    if shares_buffer(model):
        model.metadata_props[SHARE_BUFFER_KEY] = "true"
    else:
        model.metadata_props.pop(SHARE_BUFFER_KEY, None)


def _batch_from_input_ids(model: Any) -> int:
    """``Shape(past_key_values.*)[0:1]`` (torch.export may read the batch size off the cache)
    becomes ``Shape(input_ids)[0:1]``, so that only the attention kernels read the cache
    (see `shares_buffer`).  Returns how many."""
    ids = next((v for v in model.graph.inputs if v.name == "input_ids"), None)
    if ids is None:
        return 0
    done = 0
    for v in [v for v in model.graph.inputs if v.name.startswith("past_key_values.")]:
        for use in list(v.uses()):
            node = use.node
            if node.op_type != "Shape" or node.domain not in ("", "ai.onnx"):
                continue
            start, end = node.attributes.get("start"), node.attributes.get("end")
            if start is None or start.as_int() != 0 or end is None or end.as_int() != 1:
                continue
            node.replace_input_with(0, ids)
            done += 1
    return done


def fuse_skip_norms(path: Any, *, plain_layer_norms: bool | None = None,
                    pack_attention: bool = True) -> dict[str, int]:
    """After ONNX Runtime's optimizer: each residual ``Add(a, b)`` that feeds a
    ``SimplifiedLayerNormalization`` (RMSNorm) becomes one ``com.microsoft.SkipSimplifiedLayerNormalization``
    (its fourth output is the sum, for the residual stream; ONNX Runtime's own skip fusion misses
    most of them, it wants static shapes).  Returns how many of each rewrite.

    `plain_layer_norms`: a ``LayerNormalization`` (with bias) stays ``Add`` + ``LayerNormalization``,
    and each ``com.microsoft.SkipLayerNormalization`` ONNX Runtime's optimizer made is written back
    as ``Add(Add(x, skip), bias)`` + ``LayerNormalization`` (the kernel's own order of the sums), in
    an order its fusion does not match again when a session loads the file: on CPU the skip kernel
    is a scalar loop, 5.7x slower than the two adds and ONNX's ``LayerNormalization`` at 128 rows
    (143 vs 25 us, hidden 256, ONNX Runtime 1.32) and no faster at one row; False: fused into
    ``SkipLayerNormalization`` as RMSNorm is; default (None): True, except for a cached graph
    (``past_key_values.*`` inputs: its hot path is decoding, one row, where the fused kernel's one
    node beats the plain three by 3-7 % of a GPT-2 step).  `pack_attention`: `_pack_encoder_attention`
    (default True).  An encoder-decoder folder's graphs pass both False (`onnx_seq2seq`)."""
    import onnx_ir as ir

    model = _load(path)
    cached = any(v.name.startswith("past_key_values.") for v in model.graph.inputs)
    plain = not cached if plain_layer_norms is None else plain_layer_norms
    done = {"SkipLayerNormalization": 0, "SkipSimplifiedLayerNormalization": 0,
            "unfused_layer_norms": _unfuse_layer_norms(model) if plain else 0}
    initializers = set(model.graph.initializers)
    for norm in list(model.graph):
        if norm.op_type not in ("LayerNormalization", "SimplifiedLayerNormalization") or \
                norm.domain not in ("", "ai.onnx") or plain and norm.op_type == "LayerNormalization":
            continue
        axis = norm.attributes.get("axis")
        if axis is not None and axis.as_int() != -1:
            continue
        x = norm.inputs[0]
        add = x.producer() if x is not None else None
        if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(norm.outputs) > 1 and any(
                o.uses() for o in norm.outputs[1:]):
            continue
        a, b = add.inputs
        if a is None or b is None or a.name in initializers or b.name in initializers or a.const_value is not None \
                or b.const_value is not None or _rank(a) not in (None, 3) or _rank(b) not in (None, 3):
            continue
        skip_op = "Skip" + norm.op_type
        eps = norm.attributes.get("epsilon")
        attrs = {"epsilon": eps.as_float()} if eps is not None else {}
        inputs = [a, b, norm.inputs[1]] + ([norm.inputs[2]] if len(norm.inputs) > 2 and norm.inputs[2] else [])
        skip = ir.node(skip_op, inputs, attributes=attrs, domain="com.microsoft", num_outputs=4,
                       name=(norm.name or "") + "_skip")
        model.graph.insert_before(norm, skip)
        _take_over(model, norm.outputs[0], skip.outputs[0])
        _take_over(model, add.outputs[0], skip.outputs[3])
        model.graph.remove(norm, safe=True)
        model.graph.remove(add, safe=True)
        done[skip_op] += 1
    done["tied_transposes"] = tie_transposes(model)
    done["packed_attention"] = _pack_encoder_attention(model) if pack_attention else 0
    done["typed_outputs"] = _type_outputs(model)
    if "com.microsoft" not in model.opset_imports:
        model.opset_imports["com.microsoft"] = 1
    _mark_share_buffer(model)
    _save(model, path)
    return done


def _unfuse_layer_norms(model: Any) -> int:
    """Each ``com.microsoft.SkipLayerNormalization(x, skip, gamma, beta?, bias?)`` (mean and variance
    outputs unused) becomes ``LayerNormalization(Add(Add(x, skip), bias), gamma, beta)``, its fourth
    output (the sum) the second ``Add``'s; without a bias ``LayerNormalization(Sum(x, skip), ...)``.
    The bias goes last, the kernel's own order, and so that ONNX Runtime's skip fusion, which wants a
    3-D + 3-D ``Add`` right before the norm, leaves it alone when a session loads the file (see
    `fuse_skip_norms`).  Returns how many."""
    import onnx_ir as ir

    undone = 0
    for skip in list(model.graph):
        if skip.op_type != "SkipLayerNormalization" or skip.domain != "com.microsoft":
            continue
        outs = list(skip.outputs)
        if any(o.uses() or o.is_graph_output() for o in outs[1:3]):
            continue
        ins = list(skip.inputs) + [None] * (5 - len(skip.inputs))
        x, s, gamma, beta, bias = ins[:5]
        # no bias: ``Sum``, the same a + b, which the fusion (``Add`` only) does not take for a skip
        total = ir.node("Add" if bias is not None else "Sum", [x, s], name=(skip.name or "") + "_add")
        model.graph.insert_before(skip, total)
        if bias is not None:
            total = ir.node("Add", [total.outputs[0], bias], name=(skip.name or "") + "_bias")
            model.graph.insert_before(skip, total)
        eps = skip.attributes.get("epsilon")
        attrs = {"axis": -1, **({"epsilon": eps.as_float()} if eps is not None else {})}
        norm = ir.node("LayerNormalization", [total.outputs[0], gamma] + ([beta] if beta is not None else []),
                       attributes=attrs, name=(skip.name or "") + "_norm")
        model.graph.insert_before(skip, norm)
        _take_over(model, outs[0], norm.outputs[0])
        if len(outs) > 3 and (outs[3].uses() or outs[3].is_graph_output()):
            _take_over(model, outs[3], total.outputs[0])
        model.graph.remove(skip, safe=True)
        undone += 1
    return undone


def tie_transposes(model: Any) -> int:
    """A tied LM head reads the embedding table transposed; constant folding stores that transpose as a
    second copy of the table (and, with T5's scaled head, folds the scale into
    ``com.microsoft.FusedMatMul(x, Wᵀ, alpha)``).  Each ``MatMul(x, Wᵀ)`` / ``FusedMatMul(x, Wᵀ, alpha)``
    on such a copy becomes ``com.microsoft.FusedMatMul(x, W, transB=1, alpha)`` and the copy is
    dropped: the table is stored once.  Returns how many copies."""
    import onnx_ir as ir

    inits = {n: v for n, v in model.graph.initializers.items() if v.const_value is not None and v.shape is not None
             and len(v.shape) == 2}
    by_shape: dict[tuple[int, ...], list[Any]] = {}
    for v in inits.values():
        by_shape.setdefault(tuple(v.shape), []).append(v)

    def reads_b(use: Any) -> bool:  # the copy is the (untransposed) right operand of a plain product
        node = use.node
        if use.idx != 1:
            return False
        if node.op_type == "MatMul" and node.domain in ("", "ai.onnx"):
            return True
        flags = ("transA", "transB", "transBatchA", "transBatchB")
        return node.op_type == "FusedMatMul" and node.domain == "com.microsoft" and not any(
            node.attributes[f].value for f in flags if f in node.attributes)

    tied = 0
    for v in list(inits.values()):
        shape = tuple(v.shape)
        if shape[0] == shape[1]:
            continue
        twins = by_shape.get(shape[::-1], [])
        uses = list(v.uses())
        if not twins or not uses or not all(reads_b(u) for u in uses):
            continue
        arr = v.const_value.numpy()
        base = next((t for t in twins if t.name in model.graph.initializers and
                     (t.const_value.numpy().T == arr).all()), None)
        if base is None:
            continue
        for use in uses:
            mm = use.node
            alpha = float(mm.attributes["alpha"].value) if "alpha" in mm.attributes else 1.0
            fused_mm = ir.node("FusedMatMul", [mm.inputs[0], base], attributes={"transB": 1, "alpha": alpha},
                               domain="com.microsoft", name=(mm.name or "") + "_tied")
            model.graph.insert_before(mm, fused_mm)
            _take_over(model, mm.outputs[0], fused_mm.outputs[0])
            model.graph.remove(mm, safe=True)
        del model.graph.initializers[v.name]
        by_shape[shape].remove(v)
        tied += 1
    if tied:
        model.opset_imports.setdefault("com.microsoft", 1)
    return tied


def _pack_encoder_attention(model: Any) -> int:
    """Each bidirectional ``MultiHeadAttention(q, k, v, attention_bias=mask)`` whose q, k, v are the
    three equal parts of one biased projection, ``Split(Add(MatMul(x, W), b))``, becomes one
    ``com.microsoft.Attention(x, W, b, attention_bias=mask)``: the packed form (Optimum's), one node
    instead of four per layer, the same arithmetic (the projection is the same GEMM; the kernel
    splits the heads itself).  Returns how many."""
    import onnx_ir as ir

    def const(v: Any, rank: int) -> bool:
        return v is not None and v.const_value is not None and v.shape is not None and len(v.shape) == rank

    def only_use(v: Any, node: Any) -> bool:
        uses = list(v.uses())
        return not v.is_graph_output() and len(uses) >= 1 and all(u.node is node for u in uses)

    packed = 0
    for mha in list(model.graph):
        if mha.op_type != "MultiHeadAttention" or mha.domain != "com.microsoft":
            continue
        ins = list(mha.inputs) + [None] * (8 - len(mha.inputs))
        if any(ins[i] is not None for i in (3, 4, 6, 7)) or any(o.uses() or o.is_graph_output()
                                                                 for o in list(mha.outputs)[1:]):
            continue
        uni = mha.attributes.get("unidirectional")
        if uni is not None and uni.as_int() != 0:
            continue
        q, k, v = ins[:3]
        split = q.producer() if q is not None else None
        if split is None or split.op_type != "Split" or split.domain not in ("", "ai.onnx") or \
                list(split.outputs) != [q, k, v] or not all(only_use(t, mha) for t in (q, k, v)):
            continue
        axis = split.attributes.get("axis")
        if axis is None or axis.as_int() not in (-1, 2) or _rank(split.inputs[0]) not in (None, 3):
            continue
        sizes = split.inputs[1] if len(split.inputs) > 1 else None
        if sizes is not None and (sizes.const_value is None or len(set(sizes.const_value.numpy().tolist())) != 1):
            continue
        add = split.inputs[0].producer()
        if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx") or \
                not only_use(add.outputs[0], split):
            continue
        a, b = add.inputs
        if const(a, 1):
            a, b = b, a
        mm = a.producer() if a is not None else None
        if not const(b, 1) or mm is None or mm.op_type != "MatMul" or mm.domain not in ("", "ai.onnx") or \
                not only_use(mm.outputs[0], add) or not const(mm.inputs[1], 2) or \
                _rank(mm.inputs[0]) not in (None, 3):
            continue
        width = mm.inputs[1].shape[1]
        if not isinstance(width, int) or width % 3 or b.shape[0] != width:
            continue
        attrs = {"num_heads": mha.attributes["num_heads"].as_int()}
        if mha.attributes.get("scale") is not None:
            attrs["scale"] = mha.attributes["scale"].as_float()
        att = ir.node("Attention", [mm.inputs[0], mm.inputs[1], b, None, None, ins[5]], attributes=attrs,
                      domain="com.microsoft", name=(mha.name or "") + "_packed")
        model.graph.insert_before(mha, att)
        _take_over(model, mha.outputs[0], att.outputs[0])
        for node in (mha, split, add, mm):
            model.graph.remove(node, safe=True)
        packed += 1
    return packed


def _type_outputs(model: Any) -> int:
    """Each graph output still without an element type takes its producer's first input's (the
    com.microsoft kernels written here keep their input's type).  Returns how many."""
    typed = 0
    for out in model.graph.outputs:
        v, seen = out, 0
        while v is not None and v.type is None and seen < 8:
            node = v.producer()
            v = node.inputs[0] if node is not None and node.inputs else None
            seen += 1
        if out.type is None and v is not None and v.type is not None:
            out.type = v.type
            typed += 1
    return typed


def _rank(v: Any) -> int | None:
    return len(v.shape) if v.shape is not None else None


def _take_over(model: Any, old: Any, new: Any) -> None:
    """Every use of `old` (a graph output too, by name) reads `new`, which takes `old`'s element
    type and shape where it has none (a node made here has neither: a graph output left untyped
    is ``elem_type`` 0, which the quantizers and some loaders refuse)."""
    import onnx_ir as ir

    if new.type is None and old.type is not None:
        new.type = old.type
    if new.shape is None and old.shape is not None:
        new.shape = old.shape.copy()
    if old.is_graph_output():
        outputs = model.graph.outputs
        i = list(outputs).index(old)
        name, old.name = old.name, None
        new.name = name
        outputs[i] = new
    ir.convenience.replace_all_uses_with(old, new)


def _load(path: Any) -> Any:
    import onnx_ir as ir

    return ir.load(str(path))


def _save(model: Any, path: Any) -> None:
    """Write `model` back to `path`, its weights where they were (``path.data`` when that exists)."""
    from pathlib import Path

    import onnx_ir as ir

    path = Path(path)
    data = path.with_name(path.name + ".data")
    if data.exists():
        tmp = path.with_name(path.stem + ".fuse.onnx")
        ir.save(model, str(tmp), external_data=tmp.name + ".data")
        del model  # its lazy tensors read `data`: done with it before it is replaced
        tmp.with_name(tmp.name + ".data").replace(data)
        tmp.replace(path)
        from .onnx import _relink

        _relink(path, data.name)
        return
    ir.save(model, str(path))


__all__ = ["ATTENTION_OPS", "SHARE_BUFFER_KEY", "Fusion", "SharedCache", "fuse_graph", "fuse_skip_norms", "fused",
           "fusion_plan", "rotary_tables", "shares_buffer", "translation_table"]
