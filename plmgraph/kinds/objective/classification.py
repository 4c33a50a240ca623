"""Supervised classification (ViT on ImageNet, fine-tuning)."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class Classification(Strict):
    """Supervised classification (ViT on ImageNet, fine-tuning)."""

    kind: Literal["classification"] = "classification"


@register
class ClassificationKind(Kind):
    name = "objective/classification"
    spec = Classification
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'classification'

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Supervised classification: cross-entropy between the head's logits and the labels, `L = −log "
            "softmax(logits)_y` (ViT on ImageNet).",
            zh="有监督分类：输出头的分数与标签之间的交叉熵 `L = −log softmax(logits)_y`（ViT 在 ImageNet 上）。",
        )
