"""No position information: order comes only from the attention mask, if any.

A spec-only kind: it puts no node in the graph (neither `adds_to_embeddings` nor
`feeds_attention`), so it has no parameters, FLOPs, label, torch module or init of its own;
asking for one fails with `MissingFacet`, naming the kind.
"""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Strict, register
from .common import PositionKind


class NoPosition(Strict):
    """No position information at all (order comes only from the attention mask, if any)."""

    kind: Literal["none"] = "none"


@register
class NoPositionKind(PositionKind):
    name = "position/none"
    spec = NoPosition

    def words(self, a: Attrs) -> str:
        return "none"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="No position vector is added to the input: word order enters inside attention (rotary, ALiBi, "
            "relative biases) or, for a model without any, not at all.",
            zh="输入端不加位置向量：词序信息在注意力内部引入（旋转位置编码、ALiBi、相对位置偏置），"
            "若都没有则模型不感知词序。",
        )
