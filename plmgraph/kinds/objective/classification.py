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
