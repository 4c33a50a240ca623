"""Causal language modelling: predict each next token (GPT)."""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register


class CLM(Strict):
    """Causal language modelling: predict each next token (GPT)."""

    kind: Literal["clm"] = "clm"


@register
class CLMKind(Kind):
    name = "objective/clm"
    spec = CLM

    def words(self, a: Attrs) -> str:
        return 'causal LM'

    def train(self, obj: CLM, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import CLMObjective

        return CLMObjective(obj)
