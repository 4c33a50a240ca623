"""T5's scheme: each linear weight ~ N(0, fan_in**-0.5), embeddings ~ N(0, 1); with unscaled"""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Kind, Strict, register


class FanInInit(Strict):
    """T5's scheme: each linear weight ~ N(0, fan_in**-0.5), embeddings ~ N(0, 1); with unscaled
    attention scores (scale 1.0) the query projection also gets head_dim**-0.5."""

    kind: Literal["fan_in"] = "fan_in"


@register
class FanInInitKind(Kind):
    name = "init/fan_in"
    spec = FanInInit
    # The scheme is applied per block kind (each kind's `init` facet, through compile/init.py's
    # InitRule); this kind names it.

    def words(self, a: Attrs) -> str:
        return "N(0, fan_in^-0.5)"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Fan-in init (T5, Mesh TensorFlow): each weight `W ~ N(0, 1/fan_in)`, i.e. std `fan_in^(−1/2)`, "
            "so every projection keeps unit variance; embeddings `N(0, 1)`.",
            zh="按输入维度初始化（T5、Mesh TensorFlow）：每个权重 `W ~ N(0, 1/fan_in)`，即标准差 "
            "`fan_in^(−1/2)`，使每个投影保持单位方差；嵌入为 `N(0, 1)`。",
        )
