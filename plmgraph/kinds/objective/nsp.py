"""Next-sentence prediction: is B the sentence after A (BERT)?"""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class NSP(Strict):
    """Next-sentence prediction: is B the sentence after A (BERT)?"""

    kind: Literal["nsp"] = "nsp"


@register
class NSPKind(Kind):
    name = "objective/nsp"
    spec = NSP
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'next-sentence prediction'
