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
