"""XLNet's permutation language modelling: predict the last 1/K tokens of a random factorisation order."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register
from . import rules


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

    def words(self, a: Attrs) -> str:
        return 'permutation LM'

    def contradiction(self, obj: PermutationLM, spec: Any) -> str | None:
        if rules.attention_kinds(spec) == {"two_stream"}:
            return None
        return (f"objective 'permutation' predicts tokens through XLNet's query stream: it needs attention kind "
                f"'two_stream'; {spec.name}'s is {', '.join(sorted(rules.attention_kinds(spec)))}")

    def train(self, obj: Any, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import PermutationObjective

        return PermutationObjective(obj)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Permutation language modelling (XLNet): sample a factorisation order z of the positions and "
            "maximise `E_z Σ_t log p(x_(z_t) | x_(z<t))`, predicting only the last tokens of each order; "
            "every token learns from context on both sides without a [MASK] token.",
            zh="排列语言模型（XLNet）：随机采样位置的分解顺序 z，最大化 `E_z Σ_t log p(x_(z_t) | x_(z<t))`，"
            "只预测每个顺序中靠后的 token；不用 [MASK] 也能让每个 token 利用两侧的上下文。",
        )
