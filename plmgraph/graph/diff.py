"""Diff two architectures: `ArchGraph` x `ArchGraph` -> `ArchDiff` (no torch, no YAML).

The diff compares *resolved graphs*, so two specs written differently but meaning the
same architecture have an empty diff, and a change inherited through ``extends`` shows.

How it works, in four steps:

1. **Align.** Nodes are matched by ``(stack, layer, role)``.  Two single-stack models are
   aligned stack to stack (BERT's encoder against GPT-2's decoder).  When every layer of a
   stack is identical in both graphs (the usual case) only the layer template is compared
   and a change reads "all 12 layers"; otherwise layers are compared one by one and the
   change says which layers.
2. **Describe.** Each node is described as a list of `_Aspect`s, human-named facts such
   as ``("MLP", "SwiGLU")`` or ``("attention", "GQA (8 kv heads)")``; each aspect carries
   a structural key (``None`` for sizes and hyper-parameters).  Sizes that only echo the
   headline dimensions (hidden, vocab, ffn, ...) are left to the ``dims`` axis.
3. **Compare.** Aligned nodes differ where their aspects differ; a change is structural
   when the keys differ ("MHA -> GQA") and a size change otherwise ("GQA (8) -> GQA (4)").
   Unaligned nodes are added or removed blocks.  Stack-level facts (placement, residual
   wiring, sharing, objectives, tuning) come from ``graph.spec``, which is the validated,
   fully derived spec the graph was resolved from.
4. **Collapse.** Identical changes at different places become one `Change` whose
   ``where`` lists the places ("all 32 layers", "final norm").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..kinds import KINDS
from ..kinds import kind as _kind
from ..kinds.base import Aspect as _Aspect
from ..kinds.base import num as _num
from ..kinds.base import onoff as _onoff
from ..kinds.mlp.gated import GATED  # noqa: F401  (re-exported)
from ..spec.pattern import pattern_words
from .arch import ArchGraph, resolve
from .stats import Stats, stats

#: The axes a change is grouped by, in display order.
AXES = (
    "stack", "dims", "embeddings", "position", "norm", "residual", "attention", "mlp", "sharing", "heads",
    "objective", "tuning", "init",
)
AXIS_TITLES = {
    "stack": "stack", "dims": "dims", "embeddings": "embeddings", "position": "position", "norm": "norm",
    "residual": "residual", "attention": "attention", "mlp": "MLP", "sharing": "sharing", "heads": "heads",
    "objective": "objective", "tuning": "tuning", "init": "init",
}
#: Weight of a non-structural (size or hyper-parameter) change in `distance`.
SIZE_WEIGHT = 0.1

NORM_ROLES = {
    "final_norm": "final norm", "embed_norm": "embedding norm", "attn_norm": "attention norm",
    "mlp_norm": "MLP norm", "cross_norm": "cross-attention norm", "attn_post_norm": "attention post-norm",
    "mlp_post_norm": "MLP post-norm", "cross_post_norm": "cross-attention post-norm",
}
#: Node kinds whose presence follows from other blocks: never reported as added or removed.
_SILENT = ("input/", "op/sum", "residual/add")
_WHERE_ROLES = {
    "token": "embeddings", "position": "position", "relative_position": "relative position",
    "segment": "embeddings", "task_type": "embeddings",
    "patches": "embeddings", "mask_token": "embeddings", "project": "embeddings", "embed_norm": "embeddings",
    "sum": "embeddings", "final_norm": "final norm", "pooler": "pooler",
}


# ----------------------------------------------------------------------------- data


@dataclass
class Change:
    """One line of a diff: what changed on which axis, before and after, and where.

    ``before`` is ``None`` for an added block or feature, ``after`` is ``None`` for a removed one.
    """

    axis: str
    what: str
    before: str | None
    after: str | None
    where: list[str] = field(default_factory=list)
    structural: bool = True

    @property
    def status(self) -> str:
        """``added``, ``removed`` or ``changed``."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"

    @property
    def text(self) -> str:
        """``before -> after`` in words (``+ x`` for added, ``- x`` for removed)."""
        if self.before is None:
            return "added" if self.after == self.what else f"added ({self.after})"
        if self.after is None:
            return "removed" if self.before == self.what else f"removed ({self.before})"
        return f"{self.before} → {self.after}"

    def to_json(self) -> dict[str, Any]:
        return {
            "axis": self.axis, "what": self.what, "status": self.status, "before": self.before,
            "after": self.after, "where": list(self.where), "structural": self.structural,
        }


@dataclass
class ArchDiff:
    """The difference between two architectures ``a -> b``.

    Attributes:
        a, b: the two resolved graphs.
        changes: the collapsed change list, in `AXES` order.
        structure: whether only structural changes were kept.
        nodes_a: ``{node id of a: "changed" | "minor" | "removed"}`` for the diagram ("minor":
            only sizes or hyper-parameters changed).
        nodes_b: ``{node id of b: "changed" | "minor" | "added"}``.
        seq_len: the context length used for both models' FLOPs.
    """

    a: ArchGraph
    b: ArchGraph
    changes: list[Change]
    structure: bool = False
    nodes_a: dict[str, str] = field(default_factory=dict)
    nodes_b: dict[str, str] = field(default_factory=dict)
    seq_len: int | None = None
    _stats: tuple[Stats, Stats] | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def structural(self) -> list[Change]:
        return [c for c in self.changes if c.structural]

    @property
    def distance(self) -> float:
        """Structural changes count 1, size and hyper-parameter changes `SIZE_WEIGHT`."""
        return sum(1.0 if c.structural else SIZE_WEIGHT for c in self.changes)

    @property
    def stats(self) -> tuple[Stats, Stats]:
        """`Stats` of a and b at the same context length (computed on first use)."""
        if self._stats is None:
            self._stats = (stats(self.a, self.seq_len), stats(self.b, self.seq_len))
        return self._stats

    def by_axis(self) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {}
        for c in self.changes:
            out.setdefault(c.axis, []).append(c)
        return out

    def find(self, axis: str | None = None, what: str | None = None) -> list[Change]:
        """The changes on `axis` and/or about `what`."""
        return [c for c in self.changes if (axis is None or c.axis == axis) and (what is None or c.what == what)]

    def cost(self) -> dict[str, dict[str, float]]:
        """Parameters, forward FLOPs/token and bf16 KV-cache bytes/token of a and b, with deltas."""
        sa, sb = self.stats
        rows = {
            "params": (sa.params, sb.params),
            "flops_per_token": (sa.flops_per_token, sb.flops_per_token),
            "kv_bytes_per_token_bf16": (sa.kv_bytes_per_token["bf16"], sb.kv_bytes_per_token["bf16"]),
        }
        return {k: {"a": x, "b": y, "delta": y - x, "ratio": (y / x) if x else None} for k, (x, y) in rows.items()}

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON view: names, changes, cost deltas, changed node ids and the distance."""
        sa, _ = self.stats
        return {
            "a": self.a.name,
            "b": self.b.name,
            "structure_only": self.structure,
            "distance": round(self.distance, 6),
            "changes": [c.to_json() for c in self.changes],
            "cost": self.cost(),
            "seq_len": sa.seq_len,
            "nodes": {"a": dict(self.nodes_a), "b": dict(self.nodes_b)},
        }

    def lines(self) -> list[str]:
        """One plain-text line per change: ``axis: what: before -> after [where]``."""
        out = []
        for c in self.changes:
            where = f"  [{', '.join(c.where)}]" if c.where else ""
            what = "" if c.what.lower() == c.axis else f"{c.what}: "
            out.append(f"{AXIS_TITLES[c.axis]}: {what}{c.text}{where}")
        return out


# --------------------------------------------------------------------- public API


def diff(a: Any, b: Any, structure: bool = False, seq_len: int | None = None) -> ArchDiff:
    """Compare two architectures.

    Args:
        a, b: ArchGraphs, ModelSpecs, zoo names or spec paths.
        structure: keep only structural changes (kinds, wiring, flags), not sizes or
            hyper-parameters such as eps, dropout and rope theta.
        seq_len: context length for both models' FLOPs; default the smaller of their defaults.

    Returns:
        The `ArchDiff` ``a -> b``.

    Raises:
        SpecError: when a spec cannot be found or is invalid.
    """
    ga, gb = _graph(a), _graph(b)
    d = _Differ(ga, gb).run()
    changes = [c for c in d.changes if c.structural] if structure else d.changes
    if seq_len is None:
        seq_len = min(_default_seq(ga), _default_seq(gb))
    nodes_a, nodes_b = d.node_status(structure)
    return ArchDiff(ga, gb, changes, structure, nodes_a, nodes_b, seq_len)


def distance(a: Any, b: Any) -> float:
    """Number of structural changes between a and b plus `SIZE_WEIGHT` per size change."""
    ga, gb = _graph(a), _graph(b)
    return sum(1.0 if c.structural else SIZE_WEIGHT for c in _Differ(ga, gb).run().changes)


def _graph(x: Any) -> ArchGraph:
    return x if isinstance(x, ArchGraph) else resolve(x)


def _default_seq(g: ArchGraph) -> int:
    p = g.spec.embeddings.patches
    if p is not None:
        return p.num_patches + int(p.cls_token)
    return g.spec.sizes.max_positions or 2048


# ------------------------------------------------------------------------ aspects


def mlp_name(attrs: dict[str, Any], kind: str) -> str:
    """A dense gelu MLP is "GELU", a gated silu one "SwiGLU", a mixture "MoE 8×SwiGLU, top-2":
    its kind's `words`."""
    return KINDS[kind].words(attrs)


def norm_name(kind: str, attrs: dict[str, Any]) -> str:
    """A norm in words ("RMSNorm", "LayerNorm (no bias)"): its kind's `words`."""
    return KINDS[kind].words(attrs)


class _Seen(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


# Attributes that echo `dims` (reported once, from the spec) or are derived from another fact.
_ECHOES = {"head_dim", "hidden", "dim", "dim_in", "dim_out", "vocab", "width", "channels", "image_size", "ffn",
           "expert_ffn", "max_positions", "rotary_dim", "bidirectional", "mask", "window", "dropout", "activation",
           "norm", "interleaved_rotary", "rows", "heads", "argument", "shape"}


def _describe(d: dict[str, Any]) -> list[_Aspect]:
    """The facts about one node that a diff compares.

    The rules in `_describe_known` name the facts people talk about; every other attribute
    of the node is still compared, generically, so a new spec field is never silently
    ignored by the diff.
    """
    attrs = _Seen(d["attrs"])
    out = _describe_known({**d, "attrs": attrs})
    label = d["kind"].split("/")[-1].replace("_", " ")
    for key in sorted(set(attrs) - attrs.read - _ECHOES):
        v = dict.__getitem__(attrs, key)
        text = _onoff(v) if isinstance(v, bool) else (_num(v) if not isinstance(v, (dict, list)) else str(v))
        out.append(_Aspect(f"{label} {key.replace('_', ' ')}", text, v if isinstance(v, (bool, str)) else None))
    return out


def _describe_known(d: dict[str, Any]) -> list[_Aspect]:
    """The named facts about one node (sizes echoing `dims` are left out): its kind's aspects."""
    return _kind(d["kind"]).aspects(d["attrs"], d["role"])


def _axis(d: dict[str, Any]) -> str:
    axis = d["axis"]
    if axis in ("input", "op", "embedding"):
        return "embeddings"
    if axis in ("pool", "head"):
        return "heads"
    return {"residual": "residual"}.get(axis, axis)


def block_name(d: dict[str, Any]) -> str:
    """A block in words, for added/removed lines: "final norm (RMSNorm)", "NSP head"."""
    kind, a, role = d["kind"], d["attrs"], d["role"]
    axis = d["axis"]
    if axis == "attention":
        return KINDS[kind].words(a)  # "attention (GQA)", "cross-attention"
    if axis == "mlp":
        return f"{mlp_name(a, kind)} MLP"
    if axis == "norm":
        where = NORM_ROLES.get(role, role.replace("_", " "))
        return f"{where} ({norm_name(kind, a)})"
    if axis == "position":
        return f"{KINDS[kind].words(a)} positions"
    if axis in ("embedding", "head"):
        return KINDS[kind].words(a)  # "token embedding", "NSP head"
    if axis == "pool":
        return f"pooler ({KINDS[kind].words(a)})"
    return kind


# --------------------------------------------------------------------------- differ


@dataclass
class _Layers:
    """Per-layer nodes of one stack: ``{layer: {role: node}}`` and whether all layers are alike."""

    count: int
    by_layer: dict[int, dict[str, str]]
    uniform: bool


def _freeze(x: Any) -> Any:
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def _layers(g: ArchGraph) -> dict[str, _Layers]:
    cached = getattr(g, "_diff_layers", None)
    if cached is not None:
        return cached
    per: dict[str, dict[int, dict[str, str]]] = {}
    for n, d in g.items():
        if d["layer"] is not None:
            per.setdefault(d["stack"], {}).setdefault(d["layer"], {})[d["role"]] = n
    out = {}
    for stack, layers in per.items():
        sigs = {
            _freeze({r: (g.node(n)["kind"], g.node(n)["attrs"]) for r, n in roles.items()})
            for roles in layers.values()
        }
        out[stack] = _Layers(len(layers), layers, len(sigs) == 1)
    g.__dict__["_diff_layers"] = out  # a cache on the graph; the graph itself is never changed
    return out


class _Differ:
    def __init__(self, a: ArchGraph, b: ArchGraph) -> None:
        self.a, self.b = a, b
        sa, sb = list(a.spec.stacks), list(b.spec.stacks)
        # b's stack name -> a's: single-stack models are compared stack to stack
        self.rename = {sb[0]: sa[0]} if len(sa) == len(sb) == 1 else {s: s for s in sb}
        self.two_stacks = len(sa) == 2 or len(sb) == 2
        self.raw: list[tuple[str, str, str | None, str | None, str, bool]] = []
        # node marks: (side, node) -> status, and which change lines (by index in raw) touch it
        self.marks: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self.changes: list[Change] = []

    # -- helpers -----------------------------------------------------------------

    def fact(self, axis: str, what: str, before: str | None, after: str | None, where: str, structural: bool,
             nodes: Iterable[tuple[str, str]] = ()) -> None:
        self.raw.append((axis, what, before, after, where, structural))
        i = len(self.raw) - 1
        for side, n in nodes:
            self.marks.setdefault((side, n), []).append(("changed" if before is not None and after is not None
                                                         else "added" if before is None else "removed", i))

    def stack_label(self, stack: str | None) -> str:
        return f"{stack} " if (stack and self.two_stacks) else ""

    def where_model(self, d: dict[str, Any]) -> str:
        base = _WHERE_ROLES.get(d["role"])
        if base is None:
            base = KINDS[d["kind"]].words(d["attrs"]) if d["axis"] == "head" else d["role"]
        return self.stack_label(d["stack"]) + base

    # -- run -----------------------------------------------------------------------

    def run(self) -> _Differ:
        self.spec_facts()
        self.layer_nodes()
        self.model_nodes()
        self.collapse()
        return self

    def spec_facts(self) -> None:
        A, B = self.a.spec, self.b.spec
        if A.family != B.family:
            self.fact("stack", "family", A.family, B.family, "", True)
        # dims: the headline sizes and the per-stack values derived from them
        sizes = ("vocab", "hidden", "heads", "ffn", "max_positions")
        for k in sizes:
            va, vb = getattr(A.sizes, k), getattr(B.sizes, k)
            if k == "ffn":
                continue  # reported per stack below (the MLP's real inner width)
            if va != vb:
                self.fact("dims", k, _num(va), _num(vb), "", False)
        if A.embeddings.size != B.embeddings.size and (
            A.embeddings.size != A.sizes.hidden or B.embeddings.size != B.sizes.hidden
        ):
            self.fact("dims", "embedding size", _num(A.embeddings.size), _num(B.embeddings.size), "", False)
        for sb_name, st_b in B.stacks.items():
            sa_name = self.rename.get(sb_name, sb_name)
            st_a = A.stacks.get(sa_name)
            if st_a is None:
                self.fact("stack", f"{sb_name} stack", None, f"{st_b.layers} layers", "", True)
                continue
            where = self.stack_label(sb_name).strip()
            for what, va, vb in (
                ("layers", st_a.layers, st_b.layers),
                ("head_dim", st_a.block.attention.head_dim, st_b.block.attention.head_dim),
                ("ffn", _ffn(st_a.block.mlp), _ffn(st_b.block.mlp)),
            ):
                if va != vb:
                    self.fact("dims", what, _num(va), _num(vb), where, False)
            ba, bb = st_a.block, st_b.block
            if ba.placement != bb.placement:
                self.fact("norm", "norm placement", f"{ba.placement}-norm", f"{bb.placement}-norm", where, True)
            ra, rb = _residual(ba.residual), _residual(bb.residual)
            if ra != rb:
                self.fact("residual", "residual", ra, rb, where, True)
            pa, pb = pattern_words(st_a.pattern), pattern_words(st_b.pattern)
            if pa != pb:
                self.fact("attention", "layer pattern", pa, pb, where, True)
        for sa_name, st_a in A.stacks.items():
            if sa_name not in self.rename.values():
                self.fact("stack", f"{sa_name} stack", f"{st_a.layers} layers", None, "", True)
        if A.embeddings.dropout != B.embeddings.dropout:
            self.fact("embeddings", "embedding dropout", _num(A.embeddings.dropout), _num(B.embeddings.dropout), "",
                      False)
        if A.embeddings.share_across_stacks != B.embeddings.share_across_stacks and self.two_stacks:
            self.fact("embeddings", "encoder/decoder embeddings", _shared(A.embeddings.share_across_stacks),
                      _shared(B.embeddings.share_across_stacks), "", True)
        sh_a, sh_b = _sharing(A), _sharing(B)
        if sh_a != sh_b:
            self.fact("sharing", "layer weights", sh_a, sh_b, "", True)
        self.objectives()
        ta, tb = A.tuning.model_dump(), B.tuning.model_dump()
        if ta != tb:
            self.fact("tuning", "tuning", _kind_text(ta), _kind_text(tb), "", ta["kind"] != tb["kind"])
        ia, ib = A.init.model_dump(), B.init.model_dump()
        if ia != ib:
            self.fact("init", "initialisation", _init_text(ia), _init_text(ib), "", ia["kind"] != ib["kind"])

    def objectives(self) -> None:
        oa = {o.kind: o.model_dump() for o in self.a.spec.objectives}
        ob = {o.kind: o.model_dump() for o in self.b.spec.objectives}
        for k in [k for k in oa if k not in ob]:
            self.fact("objective", _objective(k), _objective(k), None, "", True)
        for k in [k for k in ob if k not in oa]:
            self.fact("objective", _objective(k), None, _objective(k), "", True)
        for k in oa.keys() & ob.keys():
            for f in oa[k].keys() | ob[k].keys():
                va, vb = oa[k].get(f), ob[k].get(f)
                if va == vb:
                    continue
                if k == "mlm" and f == "dynamic":
                    self.fact("objective", "masking", "dynamic" if va else "static", "dynamic" if vb else "static",
                              "", True)
                elif isinstance(va, str) or isinstance(va, bool):
                    self.fact("objective", f"{_objective(k)} {f}", _num(va), _num(vb), "", True)
                else:
                    self.fact("objective", f"{_objective(k)} {f}", _num(va), _num(vb), "", False)

    def key_b(self, d: dict[str, Any]) -> tuple[Any, ...]:
        return (self.rename.get(d["stack"], d["stack"]) if d["stack"] else None, d["layer"], d["role"])

    def model_nodes(self) -> None:
        A = {(d["stack"], d["layer"], d["role"]): n for n, d in self.a.items() if d["layer"] is None}
        B = {self.key_b(d): n for n, d in self.b.items() if d["layer"] is None}
        stacks_b = {self.rename.get(s, s) for s in self.b.spec.stacks}
        stacks_a = set(self.a.spec.stacks)
        for key in list(A) + [k for k in B if k not in A]:
            na, nb = A.get(key), B.get(key)
            if na is not None and nb is not None:
                self.compare(na, nb, self.where_model(self.b.node(nb)))
            elif na is not None:
                if key[0] is not None and key[0] not in stacks_b:
                    self.mark_stack("a", na, "removed")
                    continue
                self.one_sided("a", na, self.where_model(self.a.node(na)))
            else:
                assert nb is not None
                if key[0] is not None and key[0] not in stacks_a:
                    self.mark_stack("b", nb, "added")
                    continue
                self.one_sided("b", nb, self.where_model(self.b.node(nb)))

    def mark_stack(self, side: str, node: str, status: str) -> None:
        self.marks.setdefault((side, node), []).append((status, -1))

    def layer_nodes(self) -> None:
        la, lb = _layers(self.a), _layers(self.b)
        for sb_name, lb_s in lb.items():
            sa_name = self.rename.get(sb_name, sb_name)
            la_s = la.get(sa_name)
            if la_s is None:
                for roles in lb_s.by_layer.values():
                    for n in roles.values():
                        self.mark_stack("b", n, "added")
                continue
            prefix = self.stack_label(sb_name)
            if la_s.uniform and lb_s.uniform:
                n = f"all {lb_s.count} layers" if la_s.count == lb_s.count else "all layers"
                self.compare_layer(la_s, lb_s, 0, 0, prefix + n, all_layers=True)
            else:
                for i in range(min(la_s.count, lb_s.count)):
                    self.compare_layer(la_s, lb_s, i, i, f"{prefix}layer {i}")
        for sa_name, la_s in la.items():
            if sa_name not in {self.rename.get(s, s) for s in lb}:
                for roles in la_s.by_layer.values():
                    for n in roles.values():
                        self.mark_stack("a", n, "removed")

    def compare_layer(self, la: _Layers, lb: _Layers, i: int, j: int, where: str, all_layers: bool = False) -> None:
        ra, rb = la.by_layer[i], lb.by_layer[j]

        def every(l: _Layers, role: str) -> list[str]:
            if not all_layers:
                return [(l.by_layer[i] if l is la else l.by_layer[j])[role]]
            return [roles[role] for roles in l.by_layer.values() if role in roles]

        for role in list(ra) + [r for r in rb if r not in ra]:
            if role in ra and role in rb:
                self.compare(ra[role], rb[role], where, every(la, role), every(lb, role))
            elif role in ra:
                self.one_sided("a", ra[role], where, every(la, role))
            else:
                self.one_sided("b", rb[role], where, every(lb, role))

    def compare(self, na: str, nb: str, where: str, all_a: list[str] | None = None,
                all_b: list[str] | None = None) -> None:
        da, db = self.a.node(na), self.b.node(nb)
        nodes = [("a", n) for n in (all_a or [na])] + [("b", n) for n in (all_b or [nb])]
        asp_a = {x.what: x for x in _describe(da)}
        asp_b = {x.what: x for x in _describe(db)}
        axis = _axis(db)
        for what, xa in asp_a.items():
            xb = asp_b.get(what)
            if xb is None or xa.text == xb.text:
                continue
            structural = xa.key is not None and xa.key != xb.key
            self.fact(axis, what, xa.text, xb.text, where, structural, nodes)

    def one_sided(self, side: str, node: str, where: str, every: list[str] | None = None) -> None:
        g = self.a if side == "a" else self.b
        d = g.node(node)
        nodes = [(side, n) for n in (every or [node])]
        if d["kind"].startswith(_SILENT):
            for s, n in nodes:
                self.marks.setdefault((s, n), []).append(("removed" if side == "a" else "added", -1))
            return
        name = block_name(d)
        if side == "a":
            self.fact(_axis(d), name, name, None, where, True, nodes)
        else:
            self.fact(_axis(d), name, None, name, where, True, nodes)

    # -- collapse ------------------------------------------------------------------------

    def collapse(self) -> None:
        groups: dict[tuple[Any, ...], Change] = {}
        self.line_of: dict[int, tuple[Any, ...]] = {}
        for i, (axis, what, before, after, where, structural) in enumerate(self.raw):
            key = (axis, what, before, after)
            c = groups.get(key)
            if c is None:
                c = groups[key] = Change(axis, what, before, after, [], structural)
            if where and where not in c.where:
                c.where.append(where)
            self.line_of[i] = key
        changes = list(groups.values())
        for c in changes:
            c.where = _simplify_where(c.where, c.what)
            if c.where == [c.axis]:
                c.where = []  # "embeddings" says nothing on the embeddings axis
        # one removed and one added head (or objective) read better as one change: NSP -> SOP
        for axis in ("heads", "objective"):
            gone = [c for c in changes if c.axis == axis and c.status == "removed"]
            new = [c for c in changes if c.axis == axis and c.status == "added"]
            if len(gone) == 1 and len(new) == 1:
                g, n = gone[0], new[0]
                merged = Change(axis, "head" if axis == "heads" else "objective", g.before, n.after, [], True)
                changes[changes.index(g)] = merged
                changes.remove(n)
                for k, v in list(groups.items()):
                    if v is g or v is n:
                        groups[k] = merged
        order = {a: i for i, a in enumerate(AXES)}
        changes.sort(key=lambda c: order[c.axis])  # stable: keeps discovery order within an axis
        self.changes = changes
        self.groups = groups

    def node_status(self, structure: bool) -> tuple[dict[str, str], dict[str, str]]:
        """``{node: status}`` per side: added, removed, changed (structurally) or minor (sizes,
        hyper-parameters only); the strongest status a node has wins."""
        rank = {"minor": 0, "changed": 1, "removed": 2, "added": 2}
        out: dict[str, dict[str, str]] = {"a": {}, "b": {}}
        for (side, node), marks in self.marks.items():
            best = None
            for status, i in marks:
                if i >= 0:
                    c = self.groups[self.line_of[i]]
                    if structure and not c.structural:
                        continue
                    if c.status == "changed":  # a paired head change marks both heads "changed"
                        status = "changed" if c.structural else "minor"
                if best is None or rank[status] > rank[best]:
                    best = status
            if best is not None:
                out[side][node] = best
        return out["a"], out["b"]


def _simplify_where(where: list[str], what: str) -> list[str]:
    """Drop places that only repeat `what`; "encoder X" + "decoder X" -> "encoder & decoder X"."""
    out: list[str] = []
    for w in where:
        if w == what or what.startswith(w + " "):
            continue
        stack, _, tail = w.partition(" ")
        if stack in ("encoder", "decoder") and tail and (what == tail or what.startswith(tail + " ")):
            w = stack
        if w not in out:
            out.append(w)
    merged: list[str] = []
    for w in out:
        if w.startswith("encoder") and "decoder" + w[7:] in out:
            merged.append("encoder & decoder" + w[7:])
        elif not (w.startswith("decoder") and "encoder" + w[7:] in out):
            merged.append(w)
    return merged


def _ffn(mlp: Any) -> int | None:
    return mlp.expert.ffn if mlp.kind == "moe" else mlp.ffn


def _residual(r: Any) -> str:
    return KINDS[f"residual/{r.kind}"].words(r.model_dump())


def _shared(v: bool) -> str:
    return "shared" if v else "separate"


def _sharing(spec: Any) -> str:
    sh = spec.sharing
    if sh.kind == "all":
        return "one shared set for all layers"
    if sh.kind == "groups":
        return f"{sh.groups} shared groups"
    return "none"


def _objective(kind: str) -> str:
    return KINDS[f"objective/{kind}"].words({})


def _init_text(d: dict[str, Any]) -> str:
    return KINDS[f"init/{d['kind']}"].words(d)


def _kind_text(d: dict[str, Any]) -> str:
    name = d.get("kind", "")
    rest = ", ".join(
        f"{k} {_num(v)}" for k, v in d.items() if k != "kind" and v is not None and not isinstance(v, list)
    )
    return f"{name} ({rest})" if rest else name


def human_count(n: float) -> str:
    """124439808 -> '124.4M', 6738415616 -> '6.74B'."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.2f}{suffix}" if abs(v) < 10 else f"{v:.1f}{suffix}"
    return f"{n:g}"


__all__ = ["AXES", "ArchDiff", "Change", "diff", "distance", "human_count"]
