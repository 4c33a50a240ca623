"""The block-kind table: one registered `Kind` per block kind, one module per kind.

Every reader of the graph dispatches through this table: the spec's tagged unions are
assembled from the kinds' spec classes (`union`), the graph builder asks a kind for its
parameter shapes, stats for its FLOPs, the diff and the diagram for its words, the compiler
for its torch module and its init rule. A kind lives in ``plmgraph/kinds/<axis>/<kind>.py``;
**adding a block kind is adding one module there** (and importing it in its axis's
``__init__``), plus its test. See `base.Kind` for the facets.

Torch-free: importing the table never imports torch.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from . import (  # noqa: F401  (each axis package imports its kind modules)
    attention,
    embedding,
    head,
    init,
    input,
    mlp,
    norm,
    objective,
    pool,
    position,
    residual,
    tuning,
)
from .base import KINDS, Aspect, Kind, MissingFacet, NotCompiledYet, Strict, register


def kind(name: str) -> Kind:
    """The registered kind called `name` (``norm/rmsnorm``); a clear error for an unknown one."""
    try:
        return KINDS[name]
    except KeyError:
        axis = name.split("/")[0]
        known = ", ".join(k for k in KINDS if k.startswith(axis + "/")) or ", ".join(KINDS)
        raise MissingFacet(f"no block kind {name!r} is registered; known: {known}") from None


def has(name: str, facet: str) -> bool:
    """Whether kind `name` is registered and defines `facet` itself (not the refusing default)."""
    k = KINDS.get(name)
    return k is not None and getattr(type(k), facet) is not getattr(Kind, facet)


def variants(axis: str) -> list[type[Strict]]:
    """The spec classes of an axis, in registration order (a class that several kinds share,
    its ``kind`` literal naming each, once)."""
    specs = (k.spec for name, k in KINDS.items() if name.startswith(axis + "/") and k.spec is not None)
    return list(dict.fromkeys(specs))


def union(axis: str) -> Any:
    """The discriminated union of an axis's spec classes, for a pydantic field."""
    classes = variants(axis)
    if len(classes) == 1:
        return classes[0]
    one_of = classes[0]
    for cls in classes[1:]:
        one_of = one_of | cls
    return Annotated[one_of, Field(discriminator="kind")]


__all__ = ["KINDS", "Aspect", "Kind", "MissingFacet", "NotCompiledYet", "Strict", "has", "kind", "register", "union",
           "variants"]
