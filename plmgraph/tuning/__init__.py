"""Delta tuning: attach the spec's tuning kind to a built model, freeze the rest, count what trains.

The contract (every tuning kind in plmgraph/kinds/tuning/ follows it; see TUNING_CONTRACT in the README's
Tuning section)
------------------------------------------------------------------------------------------------------

A tuning kind is a `kinds.tuning._shared.TuningKind` with two facets beyond the usual words/explain:

``plan(graph, attrs) -> TuningPlan``  (torch-free; graph/stats, `show`, `stats` read it)
    What the kind adds and what trains, from the `ArchGraph` alone: ``added`` maps the *full module
    path* of every new parameter in the compiled model (``decoder.layers.0.attn.qkv.lora.q.A``) to its
    shape; ``kept`` lists the base parameters (graph names, ``graph.param_shapes()`` keys) that stay
    trainable (BitFit: the biases; ``full``: all of them); ``flops`` the forward FLOPs per token the
    additions cost; ``sites`` anything the kind wants to hand to its own `attach` (plain data).
    Bad options (a target that matches no module, a rank above the layer's width) raise
    `TuningError` here, before anything is built, naming the bad value and what is allowed.

``attach(model, plan, generator) -> None``  (torch; imported lazily inside the facet)
    Insert the new modules/parameters into the built `PLMModel` (as child modules, with forward hooks
    or by registering submodules on the host layer) so that the model's new parameters are *exactly*
    ``plan.added`` (names and shapes), on the device and dtype of the module they attach to, and
    initialise them (through `generator`, a ``torch.Generator`` or None). A meta-device model gets
    meta parameters (no init): `io.load` then assigns the checkpoint's values.

The core (`apply`, in `plmgraph.tuning.core`, called by `compile.build` after the base is built and
initialised) does the rest, the same way for every kind: it computes the plan, freezes every base
parameter (``requires_grad_(False)``), calls ``attach``, checks that the new parameters equal
``plan.added`` (a mismatch is an AssertionError: a plmgraph bug), sets ``requires_grad`` on
``added`` + ``kept`` and records the plan as ``model.tuning`` (a `TuningPlan`).  The trainer optimises
only ``requires_grad`` parameters; checkpoints hold every parameter (base + added), and `io.load`
rebuilds the same modules from the saved spec's ``tuning`` before loading them.

Kinds that change the forward beyond one module (prompt tuning: extra input positions; prefix tuning:
per-layer key/value prefixes; ladder side tuning: a side network) do it from `attach` with forward
(pre-)hooks on the model's own modules, so the compiled base model's code is unchanged and a model
with ``tuning: full`` is exactly the model it was.  Optional facets: ``merge(model, plan)`` /
``unmerge`` (LoRA: fold ``W += s·BA`` into the base weights) and ``to_peft`` / ``from_peft`` (PEFT
interop, plmgraph/tuning/peft.py).

This module is torch-free; `apply`, `merge`, `merged_copy`, `save_peft`, `load_peft` import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlmgraphError

Shape = tuple[int, ...]


class TuningError(PlmgraphError):
    """A tuning option does not fit the model: a target that matches no module, a rank above the
    layer's width, an option that contradicts the spec, a PEFT adapter for another base model."""


@dataclass(frozen=True)
class TuningPlan:
    """What a tuning kind adds to a graph's model and what trains (see the module docstring)."""

    kind: str
    attrs: dict[str, Any]
    base: dict[str, Shape]
    """Every base parameter of the graph (``graph.param_shapes()``)."""
    added: dict[str, Shape] = field(default_factory=dict)
    """New parameters: full module path in the compiled model -> shape."""
    kept: tuple[str, ...] = ()
    """Base parameters that stay trainable."""
    flops: int = 0
    """Forward FLOPs per token the additions cost."""
    sites: dict[str, Any] = field(default_factory=dict)
    """Kind-private data for its `attach` (plain Python values)."""

    @property
    def trainable_names(self) -> list[str]:
        return [*self.kept, *self.added]

    @property
    def trainable(self) -> int:
        return sum(math.prod(self.base[k]) for k in self.kept) + sum(math.prod(s) for s in self.added.values())

    @property
    def total(self) -> int:
        return sum(math.prod(s) for s in self.base.values()) + sum(math.prod(s) for s in self.added.values())

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    def report(self) -> str:
        """``"trainable 98,304 of 4,206,912 (2.3 %)"``."""
        return trainable_text(self.trainable, self.total)


def trainable_text(trainable: int, total: int) -> str:
    pct = 100.0 * trainable / total if total else 0.0
    return f"trainable {trainable:,} of {total:,} ({pct:.{1 if pct >= 0.1 or pct == 0 else 3}f} %)"


def tuning_kind(spec_tuning: Any) -> Any:
    """The registered `TuningKind` of a spec's ``tuning`` value."""
    from ..kinds import kind

    return kind(f"tuning/{spec_tuning.kind}")


def plan(graph: Any) -> TuningPlan:
    """The `TuningPlan` of a graph's spec ``tuning`` (a `ModelSpec`, name or path is resolved first).

    Raises:
        TuningError: the tuning options do not fit the model.
        NotCompiledYet: a tuning kind that is known but not compiled yet.
    """
    from ..graph.arch import ArchGraph, resolve

    g = graph if isinstance(graph, ArchGraph) else resolve(graph)
    t = g.spec.tuning
    return tuning_kind(t).plan(g, t.model_dump(exclude={"kind"}))


def trainable_report(model_or_plan: Any) -> str:
    """``"trainable 98,304 of 4,206,912 (2.3 %)"`` for a tuned model (counted from its parameters'
    ``requires_grad``, shared tensors once) or a `TuningPlan`."""
    if isinstance(model_or_plan, TuningPlan):
        return model_or_plan.report()
    params = {id(p): p for p in model_or_plan.parameters()}.values()
    return trainable_text(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def apply(model: Any, graph: Any = None, *, seed: int | None = None) -> TuningPlan:
    """Attach the spec's tuning kind to a built model, freeze the base, record ``model.tuning``."""
    from .core import apply as _apply

    return _apply(model, graph, seed=seed)


def merge(model: Any) -> Any:
    """Fold the tuning into the base weights in place (LoRA: ``W += s·BA``); see `core.merge`."""
    from .core import merge as _merge

    return _merge(model)


def unmerge(model: Any) -> Any:
    from .core import unmerge as _unmerge

    return _unmerge(model)


def merged_copy(model: Any) -> Any:
    """A plain model (``tuning: full``) whose weights are the tuned model's with the tuning folded in."""
    from .core import merged_copy as _merged_copy

    return _merged_copy(model)


__all__ = ["Shape", "TuningError", "TuningPlan", "apply", "merge", "merged_copy", "plan", "trainable_report",
           "trainable_text", "tuning_kind", "unmerge"]
