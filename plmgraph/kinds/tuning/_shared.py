"""What the tuning kinds share: words from the spec fields, the two tuning facets (`plan`, `attach`; the
contract is in plmgraph/tuning/__init__.py), target lookup by node role, and the refusal of the kinds
not compiled yet."""

from __future__ import annotations

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


def _text(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else num(v)
