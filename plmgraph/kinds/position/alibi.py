"""ALiBi (Press et al. 2021): a per-head linear distance penalty added to attention scores (BLOOM, MPT)."""

from __future__ import annotations

from typing import Any, Literal

from ..base import Aspect, Attrs, Shape, Strict, num, register
from .common import AttentionPosition, PositionSite


class AlibiPosition(Strict):
    """ALiBi: a per-head linear distance penalty added to attention scores (Press et al. 2021)."""

    kind: Literal["alibi"] = "alibi"


@register
class AlibiPositionKind(AttentionPosition):
    name = "position/alibi"
    spec = AlibiPosition
    edge_label = "score bias"

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        # bidirectional stacks penalise |k - q|, causal ones the signed distance
        return {"heads": site.heads, "bidirectional": site.bidirectional}

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # slopes are computed from the head count in forward, no weights

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # an element-wise score bias: ignored by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "ALiBi"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("position", self.words(a), self.variant), Aspect("alibi heads", num(a["heads"]))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "ALiBi", f"{a.get('heads')} head slopes"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.position import Alibi

        return Alibi(node["heads"], node["bidirectional"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no weights

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="ALiBi (Press et al. 2022): no position embeddings; each head adds a linear distance penalty to "
            "its attention scores, `softmax(qᵢ·kⱼ/√d − m_h·(i − j))`, with slopes `m_h = 2^(−8h/H)`; it "
            "extrapolates to sequences longer than those seen in training.",
            zh="ALiBi（Press 等 2022）：不用位置嵌入，每个头在注意力分数上加一个与距离成正比的惩罚："
            "`softmax(qᵢ·kⱼ/√d − m_h·(i − j))`，斜率 `m_h = 2^(−8h/H)`；能外推到比训练时更长的序列。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import alibi

        return alibi(a)
