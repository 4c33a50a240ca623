"""Causal language modelling: predict each next token (GPT)."""

from __future__ import annotations

from typing import Any, Literal

from ..base import Attrs, Kind, Strict, register
from . import rules


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

    def contradiction(self, obj: CLM, spec: Any) -> str | None:
        """A causal decoder predicts each next token; an encoder-decoder predicts the text that follows
        what its encoder read (see `plmgraph.train.objectives`)."""
        if spec.family == "encoder-decoder" or (spec.family == "decoder" and rules.causal(spec)):
            return None
        return (f"objective 'clm' predicts each next token: it needs a decoder with causal attention (or an "
                f"encoder-decoder); {rules.what(spec)}")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Causal language modelling: predict every next token from the ones before it, `L = −Σ_t log "
            "p(x_t | x_<t)`, under a causal mask (GPT); perplexity is `exp(L / T)`.",
            zh="因果语言模型：根据前面的 token 预测下一个 token，`L = −Σ_t log p(x_t | x_<t)`，"
            "配合因果掩码（GPT）；困惑度为 `exp(L / T)`。",
        )
