"""What the tuning kinds share: words from the spec fields, the two tuning facets (`plan`, `attach`; the
contract is in plmgraph/tuning/__init__.py), target lookup by node role, and the refusal of the kinds
not compiled yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Aspect, Attrs, Kind, Shape, num


class TuningKind(Kind):
    """A tuning kind. It is not a graph node: `compile.build` builds the base model, then
    `plmgraph.tuning.apply` asks the kind for its `plan` (torch-free: what it adds, what trains) and
    calls its `attach` (torch: insert the modules), freezes the rest and records the plan.

    ``params`` and ``flops`` (the per-node facets) answer for the kind's attrs alone; what a tuning
    adds to a particular model depends on the graph and is the `plan`'s ``added`` and ``flops``.
    """

    #: The kind in words ("LoRA").
    title: ClassVar[str]

    def plan(self, graph: Any, a: Attrs) -> Any:
        """The `plmgraph.tuning.TuningPlan` of this kind on `graph` with options `a` (torch-free).

        Raises `plmgraph.tuning.TuningError` for options that do not fit the model."""
        raise self.missing("plan")

    def check(self, graph: Any, a: Attrs) -> list[tuple[str, str]]:
        """What about options `a` does not fit the model of `graph`: ``(field of tuning, message)`` pairs,
        ``[]`` when they fit (torch-free). The spec validator asks (`problems`), so ``plmgraph validate``
        refuses every combination `build` could not do; `plan` asks again for specs changed after
        validation. The message names the value and what is allowed."""
        return []

    def problems(self, spec: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """`check` on a validated `spec` (its graph resolved here): ``(("tuning", field), message)`` pairs."""
        from ...graph.arch import resolve

        return [(("tuning", f), m) for f, m in self.check(resolve(spec), spec.tuning.model_dump(exclude={"kind"}))]

    def checked(self, graph: Any, a: Attrs) -> None:
        """Raise `plmgraph.tuning.TuningError` with `check`'s first problem (`plan` calls it first)."""
        from ...tuning import TuningError

        found = self.check(graph, a)
        if found:
            raise TuningError("; ".join(f"tuning.{f}: {m}" for f, m in found))

    def attach(self, model: Any, plan: Any, generator: Any) -> None:
        """Insert this kind's parameters into the built `model` so that its new parameters are exactly
        ``plan.added``, and initialise them (`generator`: a ``torch.Generator`` or None)."""
        raise self.missing("attach")

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # a tuning kind is not a graph node: what it adds is its `plan`'s ``added``

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # ... and its `plan`'s ``flops``

    def build(self, node: Any) -> None:
        return None  # nothing to build from a node: `plmgraph.tuning.apply` calls `plan` and `attach`

    def init(self, module: Any, rule: Any) -> None:
        pass  # `attach` initialises what it adds

    def words(self, a: Attrs) -> str:
        rest = ", ".join(f"{k} {_text(v)}" for k, v in a.items() if v is not None)
        return f"{self.title} ({rest})" if rest else self.title

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("tuning", self.words(a), self.name)]

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.title, self.words(a).removeprefix(self.title).strip(" ()")


class NotCompiledTuning(TuningKind):
    """A tuning kind that validates, shows and diffs but is not compiled yet (issue 9): `build`
    refuses it rather than training every parameter; so do the facets that need its weights."""

    #: What `build` would have to train alone ("the low-rank adapters").
    trains: ClassVar[str]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        why = (f"tuning kind {cls.name.split('/')[1]!r} is not compiled yet (issue 9); the spec validates, shows and "
               f"diffs, but `build` cannot train only {cls.trains}")
        cls.refused = {facet: why for facet in ("build", "init", "plan", "attach", *cls.refused_too)}

    #: Further facets refused (``params``/``flops`` where the kind adds tensors the graph lacks).
    refused_too: ClassVar[tuple[str, ...]] = ()

    def _refuse_or(self, facet: str, value: Any) -> Any:
        if facet in self.refused:
            raise self.missing(facet)
        return value

    def plan(self, graph: Any, a: Attrs) -> Any:
        raise self.missing("plan")

    def attach(self, model: Any, plan: Any, generator: Any) -> None:
        raise self.missing("attach")

    def build(self, node: Any) -> None:
        raise self.missing("build")

    def init(self, module: Any, rule: Any) -> None:
        raise self.missing("init")

    def params(self, a: Attrs) -> dict[str, Shape]:
        return self._refuse_or("params", {})

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return self._refuse_or("flops", 0)


def make_plan(kind: TuningKind, graph: Any, a: Attrs, **kw: Any) -> Any:
    """A `plmgraph.tuning.TuningPlan` of `kind` on `graph` (``base`` filled from the graph)."""
    from ...tuning import TuningPlan

    return TuningPlan(kind=kind.variant, attrs=dict(a), base={k: tuple(v) for k, v in graph.param_shapes().items()},
                      **kw)


def layer_sites(graph: Any) -> list[dict[str, Any]]:
    """Every distinct transformer layer of `graph` (shared layers once, at their owner), in order:
    ``{"stack", "layer", "module": "<stack>.layers.<i>", <role>: node id, ...}`` for the roles the layer has
    (``attn``, ``cross``, ``mlp``, ``attn_norm``, ...). Node ids are module paths of the compiled model."""
    out = []
    for stack, facts in graph.stacks().items():
        for i in range(facts["layers"]):
            pre = f"{stack}.layers.{i}"
            if graph.node(f"{pre}.attn")["group"] != f"{pre}.attn":
                continue  # this layer runs another layer's weights (ALBERT)
            site: dict[str, Any] = {"stack": stack, "layer": i, "module": pre}
            for nid in graph.layer_nodes(stack, i):
                site[graph.node(nid)["role"]] = nid
            out.append(site)
    return out


#: Projection targets by node role: ``<role>.<projection>``. A fused projection (self-attention's
#: ``qkv``, a gated MLP's ``up`` = ``[gate; up]``) can be targeted whole or by its slices.
TARGETS = ("attn.qkv", "attn.q", "attn.k", "attn.v", "attn.out", "cross.q", "cross.kv", "cross.k", "cross.v",
           "cross.out", "mlp.gate_up", "mlp.gate", "mlp.up", "mlp.down")
#: Older short names, kept valid.
ALIASES = {"q": ("attn.q",), "k": ("attn.k",), "v": ("attn.v",), "o": ("attn.out",),
           "mlp": ("mlp.gate", "mlp.up", "mlp.down")}


def expand_targets(targets: list[str]) -> list[str]:
    out: list[str] = []
    for t in targets:
        for x in ALIASES.get(t, (t,)):
            if x not in out:
                out.append(x)
    return out


@dataclass(frozen=True)
class Projection:
    """One targeted projection of one layer: rows ``start:stop`` of the linear at module path ``host``."""

    target: str  # "attn.q"
    host: str  # "decoder.layers.0.attn.qkv" (an nn.Linear)
    key: str  # "q" ("all" when the whole projection is targeted)
    start: int
    stop: int
    fan_in: int
    layer: int
    stack: str
    runs: int  # how many layers run this module (ALBERT's shared layers: several)

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _slices(d: dict[str, Any]) -> dict[str, tuple[str, str, int, int, int]]:
    """target -> (projection param, key, start, stop, fan_in) for the node `d`'s weights."""
    role, a, p = d["role"], d["attrs"], d["params"]
    out: dict[str, tuple[str, str, int, int, int]] = {}

    def whole(target: str, proj: str) -> None:
        if f"{proj}.weight" in p and len(p[f"{proj}.weight"]) == 2:
            rows, fan_in = p[f"{proj}.weight"]
            out[target] = (proj, "all", 0, rows, fan_in)

    if d["axis"] == "attention":
        if role not in ("attn", "cross"):
            return out
        whole(f"{role}.out", "out")
        n, hd = a.get("heads"), a.get("head_dim")
        if "qkv.weight" in p and n and hd:
            rows, fan_in = p["qkv.weight"]
            q = n * hd
            kv = (rows - q) // 2
            whole(f"{role}.qkv", "qkv")
            for k, (s0, s1) in {"q": (0, q), "k": (q, q + kv), "v": (q + kv, rows)}.items():
                out[f"{role}.{k}"] = ("qkv", k, s0, s1, fan_in)
        if "q.weight" in p:
            whole(f"{role}.q", "q")
        if "kv.weight" in p:
            rows, fan_in = p["kv.weight"]
            whole(f"{role}.kv", "kv")
            out[f"{role}.k"] = ("kv", "k", 0, rows // 2, fan_in)
            out[f"{role}.v"] = ("kv", "v", rows // 2, rows, fan_in)
    elif d["axis"] == "mlp" and role == "mlp":
        whole("mlp.down", "down")
        if d["kind"] == "mlp/gated" and "up.weight" in p:
            rows, fan_in = p["up.weight"]
            whole("mlp.gate_up", "up")
            out["mlp.gate"] = ("up", "gate", 0, rows // 2, fan_in)
            out["mlp.up"] = ("up", "up", rows // 2, rows, fan_in)
        elif d["kind"] == "mlp/dense":
            whole("mlp.up", "up")
    return out


def projections(graph: Any, targets: list[str], what: str) -> list[Projection]:
    """The projections of every distinct layer that `targets` name (see `TARGETS`; aliases expanded).

    Raises:
        TuningError: a target no layer of this model has (the message lists the ones it has), or
            overlapping targets (``attn.qkv`` with ``attn.q``).
    """
    from ...tuning import TuningError

    wanted = expand_targets(targets)
    unknown = [t for t in wanted if t not in TARGETS]
    runs: dict[str, int] = {}
    for stack, facts in graph.stacks().items():
        for i in range(facts["layers"]):
            owner = graph.node(f"{stack}.layers.{i}.attn")["group"]
            runs[owner] = runs.get(owner, 0) + 1
    found: list[Projection] = []
    available: list[str] = []
    for site in layer_sites(graph):
        n = runs.get(f"{site['module']}.attn", 1)
        for role in ("attn", "cross", "mlp"):
            if role not in site:
                continue
            d = graph.node(site[role])
            table = _slices(d)
            available += [t for t in table if t not in available]
            for t in wanted:
                if t in table:
                    proj, key, s0, s1, fan_in = table[t]
                    found.append(Projection(t, f"{site[role]}.{proj}", key, s0, s1, fan_in, site["layer"],
                                            site["stack"], n))
    order = [t for t in TARGETS if t in available]
    if unknown or not wanted:
        raise TuningError(f"{what} targets {', '.join(map(repr, unknown)) or 'none'}: not a target; this model "
                          f"has {', '.join(order) or 'no projections to target'} (aliases: q, k, v, o, mlp)")
    optional = {x for t in targets if t in ALIASES and len(ALIASES[t]) > 1 for x in ALIASES[t]} - set(targets)
    missing = [t for t in wanted if t not in available and t not in optional]
    missing += [t for t in targets if t in ALIASES and not any(x in available for x in ALIASES[t])]
    if missing:
        raise TuningError(f"{what} targets {', '.join(map(repr, missing))} match no module of {graph.name}; "
                          f"its layers have {', '.join(order) or 'no projections to target'}")
    by_host: dict[str, list[Projection]] = {}
    for pr in found:
        by_host.setdefault(pr.host, []).append(pr)
    for host, prs in by_host.items():
        prs.sort(key=lambda x: x.start)
        for a_, b_ in zip(prs, prs[1:], strict=False):
            if b_.start < a_.stop:
                raise TuningError(f"{what} targets {a_.target!r} and {b_.target!r} overlap in {host} (a fused "
                                  f"projection is targeted whole or by its slices, not both)")
    return found


def _text(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else num(v)
