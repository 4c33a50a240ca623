"""XLNet's permutation language modelling: predict the last 1/K tokens of a random factorisation order."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register


class PermutationLM(Strict):
    """XLNet's permutation language modelling: predict the last 1/K tokens of a random factorisation order."""

    kind: Literal["permutation"] = "permutation"
    predict_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1 / 6, description="Fraction of tokens predicted (1/K, K=6 in XLNet)."
    )


@register
class PermutationLMKind(Kind):
    name = "objective/permutation"
    spec = PermutationLM
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'permutation LM'
