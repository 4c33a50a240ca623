"""Sequential sublayers: x = x + attn(...), then x = x + mlp(...) (every classic transformer)."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class Sequential(Strict):
    """Sequential sublayers: attention, then (cross-attention, then) the MLP, each with its own residual."""

    kind: Literal["sequential"] = "sequential"


@register
class SequentialKind(Kind):
    name = "residual/sequential"
    spec = Sequential

    def words(self, a: Attrs) -> str:
        return "sequential"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Sequential sublayers: attention, then the MLP, each inside a residual connection. Where the "
            "norm sits matters: post-norm (Transformer, BERT) `x = LN(x + f(x))`; pre-norm (GPT-2, LLaMA) `x "
            "= x + f(LN(x))`, which trains deep stacks more stably and needs a final norm; sandwich `x = x + "
            "LN(f(LN(x)))`.",
            zh="顺序子层：先注意力、后 MLP，各自包在残差连接里。归一化的位置很关键：后归一化（Post-Norm，"
            "Transformer、BERT）`x = LN(x + f(x))`；前归一化（Pre-Norm，GPT-2、LLaMA）`x = x + f(LN(x))`，"
            "深层训练更稳定，最后需要一个归一化层；三明治式 `x = x + LN(f(LN(x)))`。",
        )
