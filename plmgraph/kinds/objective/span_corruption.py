"""T5's span corruption: replace spans with sentinels, decode the spans."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt

from ..base import Attrs, Kind, Strict, register
from . import rules


class SpanCorruption(Strict):
    """T5's span corruption: replace spans with sentinels, decode the spans."""

    kind: Literal["span_corruption"] = "span_corruption"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens corrupted.")
    mean_span: Annotated[float, Field(ge=1.0)] = Field(3.0, description="Mean span length.")
    sentinels: PositiveInt = Field(100, description="Number of sentinel tokens.")


@register
class SpanCorruptionKind(Kind):
    name = "objective/span_corruption"
    spec = SpanCorruption

    def words(self, a: Attrs) -> str:
        return 'span corruption'

    def train(self, obj: SpanCorruption, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import SpanCorruptionObjective

        return SpanCorruptionObjective(obj)

    def contradiction(self, obj: SpanCorruption, spec: Any) -> str | None:
        return rules.needs_family("span_corruption", "decodes the corrupted spans", spec, "encoder-decoder")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Span corruption (T5): drop 15 % of the tokens in spans (mean length 3), replace each span by "
            "one sentinel `<extra_id_i>` in the input; the target is the sentinels, each followed by the "
            "span it replaced.",
            zh="片段破坏（T5）：以片段为单位（平均长度 3）去掉 15% 的 token，输入中每个片段换成一个哨兵 "
            "`<extra_id_i>`；目标序列是各哨兵后接它所替换的片段。",
        )
