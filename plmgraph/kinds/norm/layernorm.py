"""LayerNorm (Ba et al. 2016): (x - mean) / sqrt(var + eps) * gamma (+ beta)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from ..base import Aspect, Attrs, Kind, Shape, Strict, num, register


class LayerNorm(Strict):
    """LayerNorm (Ba et al. 2016): normalise by mean and variance, then scale (and shift)."""

    kind: Literal["layernorm"] = "layernorm"
    eps: PositiveFloat = Field(1e-5, description="Added to the variance for numerical stability.")
    bias: bool = Field(True, description="Learn a shift (beta); false for bias-free LayerNorm.")


@register
class LayerNormKind(Kind):
    name = "norm/layernorm"
    spec = LayerNorm

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["width"],), **({"bias": (a["width"],)} if a["bias"] else {})}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # element-wise: ignored by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "LayerNorm" + ("" if a.get("bias", True) else " (no bias)")

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("norm", self.words(a), self.words(a)), Aspect("norm eps", num(a["eps"]))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.words(a), f"eps {a['eps']:g}"

    def build(self, node):  # noqa: ANN001, ANN201
        from torch import nn

        return nn.LayerNorm(node["width"], eps=node["eps"], bias=node["bias"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.ones(module.weight)
        if module.bias is not None:
            rule.zeros(module.bias)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Layer normalisation (Ba et al. 2016) over the hidden dimension: `LN(x) = (x − μ) / √(σ² + ε) · "
            "γ + β`, with μ and σ² the mean and variance of the d features of one token; γ and β are "
            "learned.",
            zh="层归一化（Ba 等 2016），在隐藏维度上做：`LN(x) = (x − μ) / √(σ² + ε) · γ + β`，μ、σ² 是同一个 "
            "token 的 d 个特征的均值和方差，γ、β 可学习。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import layernorm

        return layernorm(a)
