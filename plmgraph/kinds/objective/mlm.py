"""Masked language modelling (BERT): corrupt `rate` of the tokens, predict the originals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..base import Attrs, Kind, Probability, Strict, register
from . import rules


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

    def contradiction(self, obj: MLM, spec: Any) -> str | None:
        return rules.needs_family("mlm", "predicts masked tokens from both sides", spec, "encoder")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Masked language modelling (BERT): select 15 % of the tokens; of those, 80 % become [MASK], 10 % "
            "a random token and 10 % stay unchanged (80/10/10); predict the originals, `L = −Σ_(i∈M) log "
            "p(xᵢ | x̃)`. RoBERTa draws a new mask each time (dynamic masking); ERNIE masks whole words, "
            "phrases or entities.",
            zh="掩码语言模型（BERT）：随机选 15% 的 token，其中 80% 换成 [MASK]、10% 换成随机 token、10% "
            "保持不变（80/10/10）；预测原 token：`L = −Σ_(i∈M) log p(xᵢ | x̃)`。RoBERTa "
            "每次重新采样掩码（动态掩码）；ERNIE 按整词、短语或实体掩码。",
        )
