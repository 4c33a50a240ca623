"""Weights ~ N(0, std), biases 0, norm scales 1 (BERT, GPT, LLaMA: HF `initializer_range`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, num, register


class NormalInit(Strict):
    """Weights ~ N(0, std), biases 0, norm scales 1 (BERT, GPT, LLaMA: HF `initializer_range`)."""

    kind: Literal["normal"] = "normal"
    std: Annotated[float, Field(gt=0.0)] = Field(0.02, description="Standard deviation of every weight.")
    scaled_residual: bool = Field(
        False,
        description="Divide the std of the projections that write into the residual stream (attention "
        "output, MLP down) by sqrt(2 * layers), as GPT-2 does.",
    )


@register
class NormalInitKind(Kind):
    name = "init/normal"
    spec = NormalInit
    # The scheme is applied per block kind (each kind's `init` facet, through compile/init.py's
    # InitRule); this kind names it.

    def words(self, a: Attrs) -> str:
        return f"N(0, {num(a['std'])})" + (", residual ÷√(2L)" if a["scaled_residual"] else "")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Random init `W ~ N(0, σ²)` (σ = 0.02 in BERT, GPT-2, LLaMA), biases 0, norm scales 1. GPT-2 "
            "also divides σ by `√(2L)` for the projections that write into the residual stream, so its "
            "variance does not grow with depth.",
            zh="随机初始化 `W ~ N(0, σ²)`（BERT、GPT-2、LLaMA 中 σ = 0.02），偏置为 0，归一化缩放为 1。GPT-2 "
            "还把写入残差流的投影的 σ 再除以 `√(2L)`，使残差流的方差不随深度增长。",
        )
