"""Stats from the graph alone (no torch): parameters, FLOPs/token, KV-cache bytes, memory.

Conventions (written down because every paper picks its own):

* **Parameters** are the tensors the graph says the compiled module owns; shared groups
  (ALBERT) and tied embeddings count once, exactly as ``sum(p.numel() for p in
  model.parameters())`` does for the Hugging Face reference.
* **FLOPs per token** are forward FLOPs: 2 per multiply-accumulate of every matrix a
  token passes through (embedding look-ups are free; norms, activations and softmax are
  ignored), plus attention scores and the weighted sum, 4 * heads * head_dim * T per
  layer for a context of T tokens (the PaLM appendix-B convention; no causal halving).
  MoE layers count the router and `top_k` experts.  For encoder-decoder models a
  "token" is one source token plus one target token, with source length = T.
  Sequence-level heads (pooler, classifiers) run once per sequence: counted / T.
  Training is about 3x forward.
* **KV bytes per token** is what a decoder's self-attention cache grows by for each
  generated token: layers * 2 * kv_heads * head_dim * bytes.  Encoder-only models have none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..kinds import KINDS, kind
from .arch import ArchGraph, resolve

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


@dataclass
class Stats:
    """Size and cost of an architecture, computed from its ArchGraph."""

    name: str
    params: int
    by_block: dict[str, int] = field(default_factory=dict)
    by_stack: dict[str, int] = field(default_factory=dict)
    per_layer: dict[str, int] = field(default_factory=dict)
    seq_len: int = 0
    flops_per_token: int = 0
    flops_by_block: dict[str, int] = field(default_factory=dict)
    kv_bytes_per_token: dict[str, int] = field(default_factory=dict)
    weight_bytes: dict[str, int] = field(default_factory=dict)
    tuning: str = "full"
    """The spec's tuning kind; its added tensors are in ``params`` and ``by_block["tuning"]``."""
    trainable: int = 0
    """Parameters that train under the spec's tuning (``params`` for full fine-tuning)."""
    frozen: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _axis_label(d: dict[str, Any]) -> str:
    kind = d["kind"]
    axis = d["axis"]
    if axis in ("embedding", "input"):
        return "embeddings"
    if axis == "position":
        return "position"
    if axis == "pool" or axis == "head":
        return "heads"
    if axis == "attention":
        return "cross-attention" if kind == "attention/cross" else "attention"
    return axis


def stats(graph: ArchGraph | Any, seq_len: int | None = None) -> Stats:
    """Compute `Stats` for a graph (or anything `resolve` accepts).

    Args:
        graph: an ArchGraph, ModelSpec, zoo name or path.
        seq_len: context length T for the attention FLOPs; default the spec's max_positions
            (or 2048 when the spec has none; the patch count for image models).
    """
    g = graph if isinstance(graph, ArchGraph) else resolve(graph)
    spec = g.spec
    if seq_len is None:
        if spec.embeddings.patches is not None:
            seq_len = spec.embeddings.patches.num_patches + int(spec.embeddings.patches.cls_token)
        else:
            seq_len = spec.sizes.max_positions or 2048
    T = seq_len
    out = Stats(name=spec.name, params=g.num_params(), seq_len=T)
    by_block: dict[str, int] = defaultdict(int)
    by_stack: dict[str, int] = defaultdict(int)
    per_layer: dict[str, int] = defaultdict(int)
    flops: dict[str, int] = defaultdict(int)
    for n, d in g.items():
        owned = sum(math.prod(s) for s in d["params"].values())
        label = _axis_label(d)
        by_block[label] += owned
        by_stack[d["stack"] or "shared"] += owned
        if d["layer"] is not None and d["layer"] == 0:
            # per-layer size counts the layer's own or shared weights once
            group = g.node(d["group"])
            per_layer[d["stack"]] += sum(math.prod(s) for s in group["params"].values())
        f = _flops(g, n, d, T)
        if f:
            flops[label] += f
    out.by_block = {k: v for k, v in by_block.items() if v}
    out.by_stack = {k: v for k, v in by_stack.items() if v}
    out.per_layer = dict(per_layer)
    out.flops_by_block = dict(flops)
    out.flops_per_token = sum(flops.values())
    kv_elems = 0
    for _, d in g.items():
        if d["axis"] == "attention" and d["stack"] == "decoder":  # each attention kind says what it caches
            kv_elems += KINDS[d["kind"]].kv_elems_per_token(d["attrs"])
    _tuning(g, out)
    out.kv_bytes_per_token = {k: kv_elems * b for k, b in DTYPE_BYTES.items() if k != "fp16"}
    out.weight_bytes = {k: out.params * b for k, b in DTYPE_BYTES.items() if k != "fp16"}
    return out


def _tuning(g: ArchGraph, out: Stats) -> None:
    """Trainable vs frozen under the spec's tuning (plmgraph/tuning: the kind's plan)."""
    from ..tuning import plan

    p = plan(g)
    added = p.total - out.params
    out.tuning, out.trainable, out.frozen = p.kind, p.trainable, p.frozen
    if added:
        out.by_block["tuning"] = added
        out.params += added
    if p.flops:
        out.flops_by_block["tuning"] = p.flops
        out.flops_per_token += p.flops


def _flops(g: ArchGraph, node: str, d: dict[str, Any], T: int) -> int:
    """Forward FLOPs per token spent in one node."""
    params = g.node(d["group"])["params"]
    if d["tied_to"]:  # a tied head multiplies by the embedding it reuses
        params = {**params, "tied.weight": g.node(d["tied_to"])["params"]["weight"]}
    return kind(d["kind"]).flops(d["attrs"], params, T)


__all__ = ["DTYPE_BYTES", "Stats", "stats"]
