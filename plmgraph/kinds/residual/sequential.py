"""Sequential sublayers: x = x + attn(...), then x = x + mlp(...) (every classic transformer)."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class Sequential(Strict):
    """Sequential sublayers: attention, then (cross-attention, then) the MLP, each with its own residual."""

    kind: Literal["sequential"] = "sequential"


@register
class SequentialKind(Kind):
    name = "residual/sequential"
    spec = Sequential

    def words(self, a: Attrs) -> str:
        return "sequential"
