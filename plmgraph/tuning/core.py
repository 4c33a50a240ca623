"""The torch half of the tuning core: `apply` (attach, freeze, check, record), merge / unmerge.

See the contract in `plmgraph.tuning` (the package docstring).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from . import TuningPlan, tuning_kind
from . import plan as make_plan


def _kind(p: TuningPlan) -> Any:
    from ..kinds import kind

    return kind(f"tuning/{p.kind}")


def apply(model: Any, graph: Any = None, *, seed: int | None = None) -> TuningPlan:
    """Attach the tuning of ``graph.spec.tuning`` (default: ``model.graph``) to `model`, in place.

    Freezes every base parameter, calls the kind's ``attach``, checks that the new parameters are
    exactly ``plan.added``, makes ``plan.added`` + ``plan.kept`` trainable and records the plan as
    ``model.tuning``.  ``tuning: full`` changes nothing (every parameter trains).

    Raises:
        TuningError: the options do not fit the model (from the kind's ``plan``).
    """
    graph = graph if graph is not None else model.graph
    if getattr(model, "tuning", None) is not None and model.tuning.kind != "full":
        raise AssertionError("apply: the model is tuned already")
    p = make_plan(graph)
    if p.kind == "full":
        model.tuning = p
        return p
    before = {n: tuple(t.shape) for n, t in model.named_parameters()}
    for t in model.parameters():
        t.requires_grad_(False)
    ref = next(iter(model.parameters()))
    gen = None
    if seed is not None and ref.device.type != "meta":
        gen = torch.Generator(device=ref.device)
        gen.manual_seed(seed + 1)
    tuning_kind(graph.spec.tuning).attach(model, p, gen)
    after = dict(model.named_parameters())
    new = {n: tuple(t.shape) for n, t in after.items() if n not in before}
    want = {n: tuple(s) for n, s in p.added.items()}
    if new != want or set(before) - set(after):
        raise AssertionError(f"tuning/{p.kind}: attach added {sorted(new)[:6]} ..., the plan says {sorted(want)[:6]} "
                             f"...; lost {sorted(set(before) - set(after))[:6]}")
    for n in (*p.kept, *p.added):
        after[n].requires_grad_(True)
    model.tuning = p
    return p


def trainable_names(model: Any) -> list[str]:
    """Names of the parameters that train (``requires_grad``)."""
    return [n for n, t in model.named_parameters() if t.requires_grad]


def merge(model: Any) -> Any:
    """Fold the tuning into the base weights in place (LoRA), so the adapters add nothing until `unmerge`.

    Raises:
        TuningError: the model's tuning kind cannot be merged (prompt tuning adds inputs, not weights).
    """
    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    k = _kind(p)
    if not hasattr(k, "merge"):
        from . import TuningError

        raise TuningError(f"tuning kind {p.kind!r} cannot be merged into the base weights")
    with torch.no_grad():
        k.merge(model, p)
    return model


def unmerge(model: Any) -> Any:
    """Undo `merge` (subtract the folded update again)."""
    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    with torch.no_grad():
        _kind(p).unmerge(model, p)
    return model


def merged_copy(model: Any) -> Any:
    """A new model with ``tuning: full`` whose weights are `model`'s with the tuning folded in.

    Its parameters are exactly the base graph's (no adapter modules), so every exporter (ONNX,
    Hugging Face, eject) takes it as it takes an untuned model.
    """
    from ..compile import build
    from ..graph import resolve

    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    spec = model.spec.model_copy(update={"tuning": type(model.spec).model_fields["tuning"].default_factory()})
    spec = type(spec).model_validate(spec.model_dump())
    tuned = copy.deepcopy(model)
    merge(tuned)
    state = {k: v for k, v in tuned.state_dict().items() if k in p.base}
    ref = next(iter(model.parameters()))
    plain = build(resolve(spec), device="meta", dtype=ref.dtype)
    plain.load_state_dict(state, strict=True, assign=True)
    plain.train(model.training)
    return plain


__all__ = ["apply", "merge", "merged_copy", "trainable_names", "unmerge"]
