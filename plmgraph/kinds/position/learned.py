"""Learned absolute position embeddings added to the token embeddings (BERT, GPT-2, RoBERTa, ViT)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..base import Aspect, Attrs, Shape, Strict, num, register
from .common import InputPosition, PositionSite

NonNegInt = Annotated[int, Field(ge=0)]


class LearnedPosition(Strict):
    """Learned absolute position embeddings added to the token embeddings (BERT, GPT-2)."""

    kind: Literal["learned"] = "learned"
    offset: NonNegInt = Field(
        0,
        description="First position id; the table has max_positions + offset rows "
        "(RoBERTa and BART start at 2 because of their padding index).",
    )
    padding_aware: bool = Field(
        False,
        description="Count positions over non-padding tokens only, padding reading row offset - 1 "
        "(RoBERTa); otherwise position i is row offset + i whatever the mask (BART, GPT-2).",
    )


@register
class LearnedPositionKind(InputPosition):
    name = "position/learned"
    spec = LearnedPosition

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        # max_positions + offset rows; an image model has one row per patch (+ CLS)
        return {"rows": site.patches if site.patches is not None else (site.max_positions or 0) + p.offset}

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["rows"], a["dim"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a table look-up: free by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "learned"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        ids = "count non-padding tokens" if a["padding_aware"] else "count every token"
        return [Aspect("position", self.words(a), self.variant), Aspect("position offset", num(a["offset"])),
                Aspect("position ids", ids, a["padding_aware"])]

    def label(self, a: Attrs) -> tuple[str, str]:
        off = f" · offset {a['offset']}" if a.get("offset") else ""
        return "Learned positions", f"{a['rows']} × {a['dim']}{off}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.position import LearnedPosition as TorchLearnedPosition

        rows, dim = node.params["weight"]
        return TorchLearnedPosition(rows, dim, node.get("offset", 0), node.get("max_positions"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Learned absolute positions: a table `P ∈ ℝ^(L×d)` trained with the model, `x_i = E[t_i] + P[i]` "
            "(BERT, GPT-2); it cannot go beyond `L = max_positions`.",
            zh="可学习的绝对位置嵌入：一张随模型训练的表 `P ∈ ℝ^(L×d)`，`x_i = E[t_i] + P[i]`（BERT、GPT-2）；"
            "长度不能超过 `L = max_positions`。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import learned

        return learned(a)
