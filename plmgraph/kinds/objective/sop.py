"""Sentence-order prediction: are A and B swapped (ALBERT)?"""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register


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
