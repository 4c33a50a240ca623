"""The residual add ``x + f(x)`` of a sequential or parallel layer (a graph node, no weights)."""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, num, register


@register
class AddKind(Kind):
    name = "residual/add"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0

    def words(self, a: Attrs) -> str:
        return "residual add"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("residual dropout", num(a.get("dropout")))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "+", ""

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.block import Residual

        return Residual(scale=1.0)

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no weights

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Residual connection (He et al. 2016): `y = x + f(x)`; the identity path lets gradients flow "
            "through deep stacks.",
            zh="残差连接（何恺明等 2016）：`y = x + f(x)`；恒等通路让梯度能穿过很深的网络。",
        )
