"""Extractive question answering (BERT's SQuAD head, HF ``*ForQuestionAnswering``): one linear layer
``hidden -> 2`` on every token's state, the start and end logits of the answer span.

The head's output is [B, T, 2]: ``[..., 0]`` is HF's ``start_logits``, ``[..., 1]`` its
``end_logits``.  Its loss (``labels`` [B, 2]: start and end positions) is HF's: the mean of the two
cross-entropies over positions, a position outside the sequence ignored.  Attrs: ``hidden``,
``labels`` (2), ``bias``, and an optional ``transform`` (dense -> activation -> norm on every token
first, ModernBERT's prediction head; then ``norm``, the block's norm).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import HeadName, Strict, register
from .classifier import TRANSFORM, _Classifier, transform_text
from .lm import Transform


class SpanHead(Strict):
    """Answer-span logits: a linear hidden -> (start, end) on every token."""

    kind: Literal["question_answering"] = Field(description="Extractive question answering (span start/end).")
    name: HeadName = None
    labels: Literal[2] = Field(2, description="Always 2: the start and the end logit of each token.")
    bias: bool = Field(True, description="The span projection carries a bias.")
    transform: Transform | None = TRANSFORM()

    @property
    def pooled(self) -> bool:
        """Reads every token's state (not a pooled vector)."""
        return False


@register
class QuestionAnsweringKind(_Classifier):
    """Attrs: ``hidden``, ``labels`` (2), ``bias``; the linear classifier's facets, once per token."""

    name = "head/question_answering"
    spec = SpanHead
    what, title = "span (QA) head", "Span head (QA)"
    pooled = False

    def label(self, a):  # noqa: ANN001, ANN201
        tr = a.get("transform")
        return self.title, (f"{transform_text(tr)} · " if tr else "") + "start / end logits"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Extractive question-answering head (BERT on SQuAD): one linear layer on every token's vector, "
            "`[sᵢ, eᵢ] = hᵢ·W + b`; softmax over the tokens of `s` gives where the answer starts, of `e` where it "
            "ends; trained with the mean of the two cross-entropies.",
            zh="抽取式问答输出头（BERT 用于 SQuAD）：在每个 token 的向量上接一个线性层 `[sᵢ, eᵢ] = hᵢ·W + b`；"
            "对 `s` 在各 token 上做 softmax 得到答案的起点，对 `e` 得到终点；训练用两个交叉熵的平均。",
        )
