"""The compiler's registry: block kind (``norm/rmsnorm``) -> torch module factory.

Each layer file registers the kinds it implements with `@register("axis/variant")`; the
factory takes the graph node (`Node`: id, kind, attrs, param shapes) and returns an
``nn.Module`` whose parameters are exactly the node's ``params``.  Adding a block kind is
one decorated factory in one file; `build` finds it here by the node's ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..kinds import KINDS, Kind, MissingFacet


@dataclass(frozen=True)
class Node:
    """One graph node as a factory sees it."""

    id: str
    kind: str
    attrs: dict[str, Any]
    params: dict[str, tuple[int, ...]]
    stack: str | None = None
    layer: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self.attrs[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


Factory = Callable[[Node], nn.Module]


class NotSupportedError(MissingFacet):
    """The graph uses a block kind the compiler has no torch implementation for (yet)."""


#: kind -> torch factory: every registered kind's `build` facet (see plmgraph/kinds/).
REGISTRY: dict[str, Factory] = {name: k.build for name, k in KINDS.items() if type(k).build is not Kind.build}


def register(*kinds: str) -> Callable[[Factory], Factory]:
    """Register `fn` as the factory of every kind in `kinds`."""

    def deco(fn: Factory) -> Factory:
        for kind in kinds:
            if kind in REGISTRY:
                raise ValueError(f"block kind {kind!r} is already registered by {REGISTRY[kind].__qualname__}")
            REGISTRY[kind] = fn
        return fn

    return deco


def not_implemented(*kinds: str, issue: str = "a later release") -> None:
    """Register kinds that are known but not compiled yet: building them raises a clear error."""

    def refuse(node: Node) -> nn.Module:
        raise NotSupportedError(
            f"{node.id}: block kind {node.kind!r} has no torch implementation yet ({issue}); "
            "the spec validates and resolves, but it cannot be built"
        )

    for kind in kinds:
        REGISTRY[kind] = refuse


def make(node: Node) -> nn.Module:
    """Build the module for `node` with its registered factory."""
    try:
        factory = REGISTRY[node.kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise NotSupportedError(
            f"{node.id}: no torch implementation for block kind {node.kind!r}; known: {known}"
        ) from None
    return factory(node)
