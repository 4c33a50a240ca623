"""T5's learned relative position bias (Raffel et al. 2020): log-spaced distance buckets, one
learned scalar per (bucket, head), added to every layer's attention scores."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import Aspect, Attrs, Shape, Strict, register
from .common import AttentionPosition, PositionSite


class T5RelativePosition(Strict):
    """T5's learned relative position bias: log-spaced distance buckets, one bias per head."""

    kind: Literal["t5_relative"] = "t5_relative"
    buckets: Annotated[int, Field(ge=4)] = Field(
        32, description="Number of distance buckets (at least 4: a bidirectional stack gives half to each "
        "direction, and half of those are exact)."
    )
    max_distance: PositiveInt = Field(128, description="Distances beyond this share the last bucket.")

    @model_validator(mode="after")
    def _log_range(self) -> T5RelativePosition:
        # the log-spaced buckets span max_exact .. max_distance; an empty span divides by log(1) = 0
        exact = self.buckets // 2
        if self.max_distance <= exact:
            raise ValueError(f"max_distance ({self.max_distance}) must exceed half the buckets ({exact}): "
                             "the log-spaced buckets cover the distances between them")
        return self


@register
class T5RelativePositionKind(AttentionPosition):
    name = "position/t5_relative"
    spec = T5RelativePosition
    edge_label = "score bias"

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        # a bidirectional stack gives half its buckets to keys after the query
        return {"bidirectional": site.bidirectional, "heads": site.heads}

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["buckets"], a["heads"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a table look-up added to the scores: free by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "T5 relative bias"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("position", self.words(a), self.variant),
                Aspect("relative buckets", f"{a['buckets']} buckets, max distance {a['max_distance']}")]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Relative position bias", f"{a.get('buckets')} buckets · max {a.get('max_distance')}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.position import T5RelativeBias

        buckets, heads = node.params["weight"]
        return T5RelativeBias(buckets, heads, node["max_distance"], node["bidirectional"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.extra(module.weight)  # N(0, hidden^-0.5) with fan_in init (T5), else N(0, std)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="T5 relative position bias: a learned scalar per head for each bucket of the relative distance "
            "`j − i`, added to the attention logits: `softmax(q·kᵀ + b_h(bucket(j − i)))`. Buckets are exact "
            "for short distances and logarithmic up to `max_distance`; the bias is computed once and shared "
            "by every layer.",
            zh="T5 相对位置偏置：对相对距离 `j − i` 分桶，每个头为每个桶学习一个标量，加到注意力分数上："
            "`softmax(q·kᵀ + b_h(bucket(j − i)))`。近距离的桶是精确的，远距离按对数分桶直到 `max_distance`；"
            "偏置只算一次，所有层共享。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import t5_relative

        return t5_relative(a)
