"""Hugging Face tensor names <-> plmgraph parameter names, derived from the ArchGraph.

The list of tensors to expect is never written by hand: it is `ArchGraph.param_shapes()`,
and each ``"<node>.<param>"`` finds its HF source by the node's ``role`` (or, for heads,
its ``kind``) in the model type's table of name templates (`Family.names`).  A template may use
``{stack}``, ``{layer}``, ``{group}`` (ALBERT's layer group: the owner layer divided by
layers per group), ``{expert}`` and ``{p}`` (the parameter's last name, ``weight``/``bias``).

A `Rule` says how the HF tensors become the plmgraph one, with the few transforms real
checkpoints need: concatenate on dim 0 (q, k, v -> ``qkv``; gate, up -> gated ``up``),
transpose (GPT's Conv1D), drop a leading 1 (ViT's ``[1, N, H]`` position table), stack
experts (Mixtral),
reorder a fused qkv laid out per head (GPT-NeoX).  Every transform is invertible, so `to_hf` reads the same table.

Lookup order for a parameter ``attn.qkv.weight`` of role ``attn`` in stack ``decoder``:
``decoder:attn.qkv.weight``, ``attn.qkv.weight``, ``decoder:attn.qkv``, ``attn.qkv``,
``decoder:attn``, ``attn``; the first key present wins.  A key may map to a list of rules:
alternatives (the first one whose tensors are all in the checkpoint is used; export
writes the first).

This module never imports torch at import time (the two qkv re-layouts import it when called).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ConversionError
from ...graph import ArchGraph

Shape = tuple[int, ...]

#: Tensors any checkpoint may hold that are not parameters: buffers HF saves (or saved in older versions).
ALWAYS_IGNORED = (r"(^|\.)position_ids$", r"(^|\.)token_type_ids$", r"rotary_emb\.inv_freq$")


@dataclass(frozen=True)
class Rule:
    """How one plmgraph parameter is made of HF tensors."""

    names: tuple[str, ...]
    split: str | None = None  # "qkv" | "kv" | "halves": the sizes of `names` along dim 0
    t: bool = False  # HF stores the matrix transposed (Conv1D)
    lead: int = 0  # HF adds this many leading 1-dims
    experts: bool = False  # names contain {expert}; one tensor per expert, stacked on dim 0
    zeros_if_missing: bool = False  # absent tensor == zeros (BART's final_logits_bias)
    only: str | None = None  # applies only to nodes of this kind
    also: tuple[str, ...] = ()  # other names HF keeps for the same tensor: written on export, ignored on import
    heads: bool = False  # HF splits the heads * head_dim axis into [heads, head_dim] (XLNet's [H, n, d])
    qkv_per_head: bool = False  # one fused qkv whose rows are [head, (q, k, v), head_dim] (GPT-NeoX)
    #: one fused qkv whose rows are per key/value head [kv head, (its heads/kv_heads queries, k, v), head_dim]
    #: (Falcon, GPTBigCode): per head [q, k, v] when kv_heads == heads, plain [q; k; v] when kv_heads == 1
    qkv_grouped: bool = False
    #: nodes ("{stack}.layers.{layer}.<name>" templates) the graph must have for this rule to apply; "!" before
    #: one: must not have (Falcon names the norms of a parallel block with two norms apart from a sequential one)
    when: tuple[str, ...] = ()


def R(*names: str, **kw: Any) -> Rule:
    return Rule(tuple(names), **kw)


def QKV(template: str, q: str = "query", k: str = "key", v: str = "value", **kw: Any) -> Rule:
    """Three tensors (``{x}`` = q, k, v in `template`) concatenated into one fused ``qkv``."""
    return R(*(template.format(x=x, layer="{layer}", group="{group}", stack="{stack}", p="{p}") for x in (q, k, v)),
             split="qkv", **kw)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Item:
    """One plmgraph parameter and the HF tensors (names and shapes) it is made of."""

    key: str  # "<node>.<param>"
    shape: Shape
    rule: Rule
    groups: tuple[tuple[str, ...], ...]  # per expert (or one): the HF names concatenated
    sizes: tuple[int, ...]  # dim-0 sizes of the names (before transpose/lead)
    heads: tuple[int, int] | None = None  # (heads, head_dim) when the rule splits the last axis
    #: (heads, head_dim) of a `Rule.qkv_per_head` tensor, (heads, head_dim, kv_heads) of a `Rule.qkv_grouped` one
    per_head: tuple[int, ...] | None = None

    @property
    def hf_names(self) -> list[str]:
        return [n for g in self.groups for n in g]

    def hf_shape(self, i: int) -> Shape:
        """The HF shape of the i-th name of a group."""
        inner = self.shape[1:] if self.rule.experts else self.shape
        s: Shape = (self.sizes[i], *inner[1:]) if self.sizes else inner
        if self.rule.t and len(s) == 2:
            s = (s[1], s[0])
        if self.heads is not None:
            s = (*s[:-1], *self.heads)
        return (1,) * self.rule.lead + s

    def hf_shapes(self) -> dict[str, Shape]:
        return {n: self.hf_shape(i) for g in self.groups for i, n in enumerate(g)}


def _split_sizes(rule: Rule, d: dict[str, Any], shape: Shape) -> tuple[int, ...]:
    if rule.split is None:
        return ()
    a = d["attrs"]
    if rule.split == "qkv":
        n, kv, hd = a["heads"], a["kv_heads"], a["head_dim"]
        return (n * hd, kv * hd, kv * hd)
    if rule.split == "kv":
        return (a["kv_heads"] * a["head_dim"],) * 2
    rows = shape[1] if rule.experts else shape[0]
    return (rows // 2, rows // 2)


def _candidates(table: Mapping[str, Rule | list[Rule]], d: dict[str, Any], param: str) -> list[Rule]:
    key = d["kind"] if d["axis"] == "head" else d["role"]
    stack = d["stack"]
    keys = [f"{key}.{param}"]
    if "." in param:
        keys.append(f"{key}.{param.rsplit('.', 1)[0]}")
    keys.append(key)
    for k in keys:
        for kk in ([f"{stack}:{k}"] if stack else []) + [k]:
            if kk in table:
                rules = table[kk] if isinstance(table[kk], list) else [table[kk]]
                rules = [r for r in rules if r.only is None or r.only == d["kind"]]
                if rules:
                    return rules
    return []


def plan_for(graph: ArchGraph, table: Mapping[str, Rule | list[Rule]], model_type: str,
             available: set[str] | None = None) -> list[Item]:
    """For every parameter of `graph`, the HF tensors it is made of, by `model_type`'s `table`.

    `available` (the checkpoint's names) picks among alternative layouts; without it, the
    first (what ``save_pretrained`` writes) is used.

    Raises:
        ConversionError: a parameter no rule of `model_type` covers (a spec feature the
            HF family does not have).
    """
    spec = graph.spec
    items: list[Item] = []
    unmapped: list[str] = []
    for node in graph.owners():
        d = graph.node(node)
        for param, shape in d["params"].items():
            rules = [r for r in _candidates(table, d, param) if _applies(graph, d, r)]
            if not rules:
                unmapped.append(f"{node}.{param} {tuple(shape)}")
                continue
            options = [_item(graph, spec, node, d, param, tuple(shape), r) for r in rules]
            chosen = options[0]
            if available is not None:
                for o in options:
                    if all(n in available for n in o.hf_names):
                        chosen = o
                        break
            items.append(chosen)
    if unmapped:
        raise ConversionError(
            f"no Hugging Face {model_type} tensor for: {', '.join(unmapped)}"
        )
    return items


def _applies(graph: ArchGraph, d: dict[str, Any], rule: Rule) -> bool:
    """Whether the graph has (and has not) the nodes `rule.when` names."""
    for w in rule.when:
        want = not w.startswith("!")
        if (w.lstrip("!").format(stack=d["stack"], layer=d["layer"]) in graph) != want:
            return False
    return True


def _item(graph: ArchGraph, spec: Any, node: str, d: dict[str, Any], param: str, shape: Shape, rule: Rule) -> Item:
    layer = d["layer"]
    group = None
    if layer is not None:
        n_layers = spec.stacks[d["stack"]].layers
        sh = spec.sharing
        per = {"none": 1, "all": n_layers}.get(sh.kind) or n_layers // sh.groups
        group = layer // per
    fmt = {"stack": d["stack"], "layer": layer, "group": group, "p": param.rsplit(".", 1)[-1]}
    experts = range(shape[0]) if rule.experts else [None]
    groups = tuple(tuple(n.format(**fmt, expert=e) for n in rule.names) for e in experts)
    heads = (d["attrs"]["heads"], d["attrs"]["head_dim"]) if rule.heads else None
    per_head = None
    if rule.qkv_grouped:
        per_head = (d["attrs"]["heads"], d["attrs"]["head_dim"], d["attrs"]["kv_heads"])
    if rule.qkv_per_head:
        if d["attrs"]["kv_heads"] != d["attrs"]["heads"]:
            raise ConversionError(f"{node}: a per-head fused qkv needs kv_heads == heads "
                                  f"({d['attrs']['kv_heads']} != {d['attrs']['heads']})")
        per_head = (d["attrs"]["heads"], d["attrs"]["head_dim"])
    return Item(f"{node}.{param}", shape, rule, groups, _split_sizes(rule, d, shape), heads, per_head)


def qkv_from_per_head(t: Any, n: int, d: int, kv: int | None = None) -> Any:
    """Rows [head, (q, k, v), head_dim] (GPT-NeoX), or with `kv` key/value heads [kv head, (n/kv queries,
    k, v), head_dim] (Falcon) -> plmgraph's [q; k; v] (a torch tensor)."""
    import torch

    kv = n if kv is None else kv
    g, rest = n // kv, tuple(t.shape[1:])
    x = t.reshape(kv, g + 2, d, *rest)
    return torch.cat([x[:, :g].reshape(n * d, *rest), x[:, g].reshape(kv * d, *rest),
                      x[:, g + 1].reshape(kv * d, *rest)])


def qkv_to_per_head(t: Any, n: int, d: int, kv: int | None = None) -> Any:
    """The inverse of `qkv_from_per_head`."""
    import torch

    kv = n if kv is None else kv
    g, rest = n // kv, tuple(t.shape[1:])
    q, k, v = t.split([n * d, kv * d, kv * d])
    return torch.cat([q.reshape(kv, g, d, *rest), k.reshape(kv, 1, d, *rest), v.reshape(kv, 1, d, *rest)],
                     1).reshape((n + 2 * kv) * d, *rest)
