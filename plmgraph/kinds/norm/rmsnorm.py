"""RMSNorm (Zhang & Sennrich 2019): x / rms(x) * (offset + gamma); no centring, no shift."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from ..base import Aspect, Attrs, Kind, Shape, Strict, num, register


class RMSNorm(Strict):
    """RMSNorm (Zhang & Sennrich 2019): scale by the root mean square, no centring, no shift."""

    kind: Literal["rmsnorm"] = "rmsnorm"
    eps: PositiveFloat = Field(1e-6, description="Added to the mean square for numerical stability.")
    offset: float = Field(
        0.0, description="Weight offset: scale is (offset + weight); 1.0 for Gemma-style zero-init weights."
    )


@register
class RMSNormKind(Kind):
    name = "norm/rmsnorm"
    spec = RMSNorm

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["width"],)}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0

    def words(self, a: Attrs) -> str:
        return "RMSNorm" + (f" (offset {a['offset']:g})" if a.get("offset") else "")

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("norm", self.words(a), self.words(a)), Aspect("norm eps", num(a["eps"]))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.words(a), f"eps {a['eps']:g}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.norm import RMSNorm as TorchRMSNorm

        return TorchRMSNorm(node["width"], node["eps"], node["offset"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.constant(module.weight, 1.0 - module.offset)  # the effective scale starts at 1

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="RMSNorm (Zhang & Sennrich 2019): `RMSNorm(x) = x / rms(x) · γ`, `rms(x) = √(mean(x²) + ε)`; no "
            "mean subtraction and no shift β, so it is cheaper than LayerNorm and works as well (T5, LLaMA).",
            zh="RMSNorm（Zhang 和 Sennrich 2019）：`RMSNorm(x) = x / rms(x) · γ`，`rms(x) = √(mean(x²) + ε)`；"
            "不减均值、没有平移项 β，比 LayerNorm 更省计算，效果相当（T5、LLaMA）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import rmsnorm

        return rmsnorm(a)
