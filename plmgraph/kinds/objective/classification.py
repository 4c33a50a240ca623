"""Supervised classification (ViT on ImageNet, fine-tuning)."""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register


class Classification(Strict):
    """Supervised classification (ViT on ImageNet, fine-tuning)."""

    kind: Literal["classification"] = "classification"


@register
class ClassificationKind(Kind):
    name = "objective/classification"
    spec = Classification

    def words(self, a: Attrs) -> str:
        return 'classification'

    def contradiction(self, obj: Classification, spec: Any) -> str | None:
        primary = spec.heads[0].kind if spec.heads else None
        if primary == "token_classification" and spec.family == "encoder-decoder":
            return (f"objective 'classification' with a token_classification head trains an encoder or a decoder; "
                    f"{spec.name} is an encoder-decoder")
        if primary in ("sequence_classification", "token_classification", "image_classification"):
            return None
        return (f"objective 'classification' trains the primary (first) head on class labels: it needs a "
                f"sequence_classification, token_classification or image_classification head first; "
                f"{spec.name}'s first head is {primary or 'missing'}")

    def train(self, obj: Any, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import ClassificationObjective

        return ClassificationObjective(obj)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Supervised classification: cross-entropy between the head's logits and the labels, `L = −log "
            "softmax(logits)_y` (ViT on ImageNet).",
            zh="有监督分类：输出头的分数与标签之间的交叉熵 `L = −log softmax(logits)_y`（ViT 在 ImageNet 上）。",
        )
