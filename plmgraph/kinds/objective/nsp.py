"""Next-sentence prediction: is B the sentence after A (BERT)?"""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register


class NSP(Strict):
    """Next-sentence prediction: is B the sentence after A (BERT)?"""

    kind: Literal["nsp"] = "nsp"


@register
class NSPKind(Kind):
    name = "objective/nsp"
    spec = NSP

    def words(self, a: Attrs) -> str:
        return 'next-sentence prediction'

    def train(self, obj: NSP, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import SentencePairObjective

        return SentencePairObjective(obj)
