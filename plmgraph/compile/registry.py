"""The compiler's view of the kind table: block kind (``norm/rmsnorm``) -> torch factory.

Every factory is a kind's ``build`` facet (plmgraph/kinds/): it takes the graph node (`Node`:
id, kind, attrs, param shapes; never the spec) and returns an ``nn.Module`` whose parameters
are exactly the node's ``params``. `build` finds it here by the node's ``kind``.
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
