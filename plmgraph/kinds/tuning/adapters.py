"""Bottleneck adapters after each sublayer (Houlsby et al. 2019). Not compiled yet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Strict, register
from ._shared import NotCompiledTuning


class Adapters(Strict):
    """Bottleneck adapters after each sublayer (Houlsby et al. 2019)."""

    kind: Literal["adapters"] = "adapters"
    bottleneck: PositiveInt = Field(64, description="Adapter inner width.")


@register
class AdaptersKind(NotCompiledTuning):
    name = "tuning/adapters"
    spec = Adapters
    title = "adapters"
    trains = "the bottleneck adapters"
    refused_too = ("params", "flops")  # the adapters are not graph nodes yet

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Adapters (Houlsby et al. 2019): a small bottleneck inside each layer, `h ← h + "
            "W_up·φ(W_down·h)`; only the adapters (and usually the norms and head) train.",
            zh="适配器（Houlsby 等 2019）：在每层中插入一个小的瓶颈结构 `h ← h + W_up·φ(W_down·h)`；"
            "只训练适配器（通常还有归一化层和输出头）。",
        )
