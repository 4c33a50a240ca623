"""XLNet's mask token: one learned [1, 1, dim] vector, the query stream's input (Yang et al. 2019).

Attrs: ``dim``.
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, register


@register
class MaskTokenKind(Kind):
    name = "embedding/mask_token"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (1, 1, a["dim"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a vector read, no multiply

    def words(self, a: Attrs) -> str:
        return "mask-token embedding (query stream)"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return []  # its width echoes `dims`; its presence is the fact

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Mask token", "query stream"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.embedding import MaskToken

        return MaskToken(node["dim"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import mask_token

        return mask_token(a)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="XLNet's mask embedding: one learned vector `w` that starts the query stream, `g⁽⁰⁾ = w`, so a "
            "position being predicted knows where it is but not which token it holds.",
            zh="XLNet 的掩码嵌入：一个可学习向量 `w`，作为查询流的初始状态 `g⁽⁰⁾ = w`，"
            "使被预测的位置知道自己在哪，却看不到自己的内容。",
        )
