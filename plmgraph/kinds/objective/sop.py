"""Sentence-order prediction: are A and B swapped (ALBERT)?"""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register
from . import rules


class SOP(Strict):
    """Sentence-order prediction: are A and B swapped (ALBERT)?"""

    kind: Literal["sop"] = "sop"


@register
class SOPKind(Kind):
    name = "objective/sop"
    spec = SOP

    def words(self, a: Attrs) -> str:
        return 'sentence-order prediction'

    def train(self, obj: SOP, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import SentencePairObjective

        return SentencePairObjective(obj)

    def contradiction(self, obj: SOP, spec: Any) -> str | None:
        return rules.needs_family("sop", "classifies sentence pairs", spec, "encoder")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Sentence order prediction (ALBERT): positives are two consecutive segments in order, negatives "
            "the same two swapped; unlike NSP it cannot be solved by topic alone, so it teaches coherence.",
            zh="句序预测（ALBERT）：正例是按原顺序的两个相邻片段，负例是把它们交换；与 NSP 不同，"
            "仅靠话题无法判断，因而能学到连贯性。",
        )
