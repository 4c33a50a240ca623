"""ALBERT's factorised embedding: a linear projection E -> hidden after the embedding sum.

Attrs: ``dim_in`` (E), ``dim_out`` (hidden).
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, mm, register


@register
class ProjectKind(Kind):
    name = "embedding/project"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["dim_out"], a["dim_in"]), "bias": (a["dim_out"],)}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return mm(params, "weight")

    def words(self, a: Attrs) -> str:
        return f"factorized embedding projection {a.get('dim_in')}→{a.get('dim_out')}"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return []  # both widths echo `dims` (embedding size, hidden)

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Embedding projection", f"{a['dim_in']}→{a['dim_out']}"

    def build(self, node):  # noqa: ANN001, ANN201
        from torch import nn

        return nn.Linear(node["dim_in"], node["dim_out"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Factorised embedding (ALBERT): tokens are embedded in a small width E and lifted to the hidden "
            "width H by a linear map, `x = E[t]·W`, `W ∈ ℝ^(E×H)`: `V·E + E·H` parameters instead of `V·H`.",
            zh="因式分解的嵌入（ALBERT）：token 先嵌入到较小的维度 E，再用线性映射升到隐藏维度 H：`x = E[t]·W`，"
            "`W ∈ ℝ^(E×H)`，参数量从 `V·H` 降为 `V·E + E·H`。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import project

        return project(a)
