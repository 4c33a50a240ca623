"""Sentence-order prediction: are A and B swapped (ALBERT)?"""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class SOP(Strict):
    """Sentence-order prediction: are A and B swapped (ALBERT)?"""

    kind: Literal["sop"] = "sop"


@register
class SOPKind(Kind):
    name = "objective/sop"
    spec = SOP
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'sentence-order prediction'
