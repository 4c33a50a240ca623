"""Multiple choice (SWAG, RACE; HF ``*ForMultipleChoice``): each of C candidate sequences is pooled and
scored by one linear layer ``hidden -> 1``; the C scores are the logits.

The model takes ``input_ids`` (and ``attention_mask``, ``token_type_ids``) of shape [B, C, T]: it runs
the B·C sequences as a batch and returns this head's output as [B, C]; ``labels`` [B] (the right
choice) gives HF's cross-entropy.  Attrs: ``hidden``, ``labels`` (1: one score per choice), ``bias``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import HeadName, NotCompiledYet, Strict, register
from .classifier import _Classifier


class ChoiceHead(Strict):
    """One score per candidate sequence: a linear pooled -> 1, the scores of a question's C candidates
    compared by softmax."""

    kind: Literal["multiple_choice"] = Field(description="Multiple choice: one score per candidate sequence.")
    name: HeadName = None
    labels: Literal[1] = Field(1, description="Always 1: one score per candidate.")
    bias: bool = Field(True, description="The scoring layer carries a bias.")

    @property
    def pooled(self) -> bool:
        """Reads one pooled vector per (candidate) sequence."""
        return True


@register
class MultipleChoiceKind(_Classifier):
    """Attrs: ``hidden``, ``labels`` (1), ``bias``; the linear classifier's facets, once per candidate."""

    name = "head/multiple_choice"
    spec = ChoiceHead
    what, title = "multiple-choice head", "Multiple-choice head"

    def label(self, a):  # noqa: ANN001, ANN201
        return self.title, "one score per choice"

    def eject(self, a):  # noqa: ANN001, ANN201
        raise NotCompiledYet(f"block kind {self.name!r} cannot be ejected yet: the ejected forward takes [B, T], "
                             "not the [B, C, T] candidates a multiple-choice model reads")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Multiple-choice head (BERT on SWAG): each candidate (question + answer) is encoded and pooled, "
            "`sᶜ = pooledᶜ·w + b` scores it, and `softmax(s¹ … s^C)` picks the answer; trained with the "
            "cross-entropy of the right choice.",
            zh="多项选择输出头（BERT 用于 SWAG）：每个候选（问题 + 答案）分别编码并池化，`sᶜ = pooledᶜ·w + b` "
            "为其打分，`softmax(s¹ … s^C)` 选出答案；用正确选项的交叉熵训练。",
        )
