"""What the position kinds share: where their node goes and what the builder tells them.

A position kind is one of three sorts, said by two class attributes:

* ``adds_to_embeddings`` (learned, sinusoidal, glm_2d): a node in the stack's embeddings,
  ``positions [B, T] -> [B, T, E]``, summed with the token embedding;
* ``feeds_attention`` (rope, alibi, t5_relative, xl_relative): one node per stack, computed
  once and fed to every attention layer along a ``position`` edge (``edge_label`` says what
  it does there in the diagram);
* neither (none): no node at all.

The graph builder decides where the node goes (`plmgraph.graph.arch`); the kind turns its
spec and the `PositionSite` (the stack's sizes) into the node's attrs (`node_attrs`), and
everything else (params, FLOPs, words, labels, torch module, init) is read from those attrs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Attrs, Kind, Strict


@dataclass(frozen=True)
class PositionSite:
    """The facts of one stack a position node is made from (given by the graph builder)."""

    max_positions: int | None  # sizes.max_positions
    dim: int  # embedding width E (input positions)
    patches: int | None  # image models: sequence length (patches + CLS), else None
    heads: int  # attention heads
    hidden: int  # hidden width H
    head_dim: int  # width of one attention head
    bidirectional: bool  # the stack's attention is not causal


class PositionKind(Kind):
    """A position kind: its node attrs from the spec and the stack, and where the node goes."""

    #: Added to the token embeddings (a node in the stack's embeddings).
    adds_to_embeddings: ClassVar[bool] = False
    #: Computed once per stack and fed to every attention layer.
    feeds_attention: ClassVar[bool] = False
    #: What the position edge into attention says in a diagram.
    edge_label: ClassVar[str] = ""

    def node_attrs(self, p: Strict, site: PositionSite) -> Attrs:
        """The attrs of this kind's graph node, from its spec `p` and the stack's `site`."""
        raise self.missing("node_attrs")


class InputPosition(PositionKind):
    """A position table or function added to the token embeddings."""

    adds_to_embeddings = True

    def node_attrs(self, p: Strict, site: PositionSite) -> Attrs:
        return {"max_positions": site.max_positions, "dim": site.dim, **p.model_dump(exclude={"kind"}),
                **self.extra(p, site)}

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        """Attrs beyond the spec's fields, max_positions and dim."""
        return {}


class AttentionPosition(PositionKind):
    """A position signal computed once per stack and used inside every attention layer."""

    feeds_attention = True

    def node_attrs(self, p: Strict, site: PositionSite) -> Attrs:
        return {"head_dim": site.head_dim, **p.model_dump(exclude={"kind"}), **self.extra(p, site)}

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        """Attrs beyond the spec's fields and head_dim."""
        return {}


__all__ = ["AttentionPosition", "InputPosition", "PositionKind", "PositionSite"]
