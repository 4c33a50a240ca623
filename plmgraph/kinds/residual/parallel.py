"""Parallel sublayers: x = x + attn(n1(x)) + mlp(n2(x)) (GPT-J: n2 = n1; GPT-NeoX: two norms)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register


class Parallel(Strict):
    """Parallel sublayers: attention and MLP read the same input and are added together (GPT-J, NeoX)."""

    kind: Literal["parallel"] = "parallel"
    shared_norm: bool = Field(
        True, description="Attention and MLP read one shared norm (GPT-J) or two (NeoX)."
    )


@register
class ParallelKind(Kind):
    name = "residual/parallel"
    spec = Parallel

    def words(self, a: Attrs) -> str:
        return "parallel (attention ∥ MLP, " + ("one shared norm)" if a["shared_norm"] else "two norms)")
