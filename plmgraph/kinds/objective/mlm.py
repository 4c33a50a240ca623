"""Masked language modelling (BERT): corrupt `rate` of the tokens, predict the originals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..base import Attrs, Kind, Probability, Strict, register


class MLM(Strict):
    """Masked language modelling (BERT): corrupt `rate` of the tokens, predict the originals."""

    kind: Literal["mlm"] = "mlm"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens selected.")
    mask: Probability = Field(0.8, description="Of those, fraction replaced by [MASK].")
    random: Probability = Field(0.1, description="Of those, fraction replaced by a random token.")
    keep: Probability = Field(0.1, description="Of those, fraction left unchanged.")
    dynamic: bool = Field(False, description="Draw a new mask every time a sequence is seen (RoBERTa).")
    unit: Literal["token", "whole_word", "phrase", "entity"] = Field(
        "token", description="What is masked together: tokens, whole words, phrases or entities (ERNIE)."
    )

    @model_validator(mode="after")
    def _sum(self) -> MLM:
        total = self.mask + self.random + self.keep
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"mask ({self.mask}) + random ({self.random}) + keep ({self.keep}) must sum to 1, got {total:g}"
            )
        return self


@register
class MLMKind(Kind):
    name = "objective/mlm"
    spec = MLM

    def words(self, a: Attrs) -> str:
        return 'masked LM'

    def train(self, obj: MLM, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import MLMObjective

        return MLMObjective(obj)
