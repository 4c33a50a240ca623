"""Next-sentence prediction: is B the sentence after A (BERT)?"""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register
from . import rules


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

    def contradiction(self, obj: NSP, spec: Any) -> str | None:
        return rules.needs_family("nsp", "classifies sentence pairs", spec, "encoder")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Next sentence prediction (BERT): half of the pairs are (A, the sentence that follows A), half "
            "(A, a random sentence); binary cross-entropy on the [CLS] classifier.",
            zh="下一句预测（BERT）：一半样本是（A，A 的真实下一句），一半是（A，随机句子）；在 [CLS] "
            "分类器上用二分类交叉熵训练。",
        )
