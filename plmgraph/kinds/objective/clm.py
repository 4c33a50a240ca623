"""Causal language modelling: predict each next token (GPT)."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class CLM(Strict):
    """Causal language modelling: predict each next token (GPT)."""

    kind: Literal["clm"] = "clm"


@register
class CLMKind(Kind):
    name = "objective/clm"
    spec = CLM
    refused = {"train": "training on this objective is not compiled yet (issue 8); the spec validates, "
                        "shows and diffs it"}

    def words(self, a: Attrs) -> str:
        return 'causal LM'
