"""Transformer-XL / XLNet relative positions (Dai et al. 2019; Yang et al. 2019): sinusoidal
encodings of the query-key distances, computed once per stack; each layer's relative
attention projects them (its ``r`` weight) and adds its learned u, v biases (compile/relative.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from ..base import Aspect, Attrs, Shape, Strict, register
from .common import AttentionPosition, PositionSite


class XLRelativePosition(Strict):
    """Transformer-XL / XLNet relative positions: sinusoidal distances, projected per layer,
    with learned global content and position biases (u, v)."""

    kind: Literal["xl_relative"] = "xl_relative"
    clamp: PositiveInt | None = Field(
        None, description="Clamp relative distances to [-clamp, clamp] (XLNet clamp_len). Default: no clamp."
    )


@register
class XLRelativePositionKind(AttentionPosition):
    name = "position/xl_relative"
    spec = XLRelativePosition
    edge_label = "relative"

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        return {"hidden": site.hidden}  # the encodings are hidden wide (the layers project them)

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # sinusoidal: no weights (the projections belong to the attention layers)

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # element-wise encodings; their projection is counted in attention (r.weight)

    def words(self, a: Attrs) -> str:
        return "Transformer-XL relative"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("position", self.words(a), self.variant)]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Relative positions (XL)", "sinusoidal distances"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.relative import XLRelative

        return XLRelative(node["hidden"], node.get("clamp"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no weights

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import xl_relative

        return xl_relative(a)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Transformer-XL relative positions (Dai et al. 2019): the score of query i and key j splits into "
            "content and position terms, `A_ij = qᵢ·kⱼ + qᵢ·W_R R_(i−j) + u·kⱼ + v·W_R R_(i−j)`, with "
            "sinusoidal `R`, and global biases `u` and `v` in place of the query's position; it works with "
            "cached memory (XLNet too).",
            zh="Transformer-XL 相对位置编码（Dai 等 2019）：查询 i 与键 j 的打分拆成内容项和位置项：`A_ij = "
            "qᵢ·kⱼ + qᵢ·W_R R_(i−j) + u·kⱼ + v·W_R R_(i−j)`，`R` 为正余弦编码，全局偏置 `u`、`v` "
            "替代查询的位置；可与缓存的记忆一起使用（XLNet 也用它）。",
        )
