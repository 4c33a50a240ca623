"""GLM's autoregressive blank infilling: spans are removed and generated in random order."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register


class BlankInfilling(Strict):
    """GLM's autoregressive blank infilling: spans are removed and generated in random order."""

    kind: Literal["blank_infilling"] = "blank_infilling"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens blanked.")
    poisson_lambda: Annotated[float, Field(gt=0.0)] = Field(3.0, description="Mean span length.")


@register
class BlankInfillingKind(Kind):
    name = "objective/blank_infilling"
    spec = BlankInfilling
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'blank infilling'
