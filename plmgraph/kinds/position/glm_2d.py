"""GLM's 2D positions (Du et al. 2022): two learned tables added to the token embeddings, the
position in the corrupted text and the position inside a blank span (see compile/glm.py)."""

from __future__ import annotations

from typing import Literal

from ..base import Aspect, Attrs, Shape, Strict, register
from .common import InputPosition


class GLM2DPosition(Strict):
    """GLM's two learned position tables: position in the text and position inside a blank span."""

    kind: Literal["glm_2d"] = "glm_2d"


@register
class GLM2DPositionKind(InputPosition):
    name = "position/glm_2d"
    spec = GLM2DPosition

    def params(self, a: Attrs) -> dict[str, Shape]:
        rows = a["max_positions"]
        return {"weight": (rows, a["dim"]), "block_weight": (rows, a["dim"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # two table look-ups: free by the FLOP convention

    def model_inputs(self, a: Attrs) -> tuple[str, ...]:
        return ("position_ids",)  # [B, 2, T]: text positions and span positions, made by the data

    def words(self, a: Attrs) -> str:
        return "GLM 2D (learned)"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("position", self.words(a), self.variant)]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "2D positions (GLM)", "text + span position"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.glm import GLM2DPosition as TorchGLM2DPosition

        rows, dim = node.params["weight"]
        return TorchGLM2DPosition(rows, dim)

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)
        rule.table(module.block_weight)

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import glm_2d

        return glm_2d(a)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="GLM 2D positions (Du et al. 2022): every token carries two position ids, its position in the "
            "corrupted text (a span of part B takes the position of its [MASK]) and its position inside the "
            "span (0 in part A); both are embedded and added: `x = E[t] + P₁[p₁] + P₂[p₂]`.",
            zh="GLM 二维位置编码（杜政晓等 2022）：每个 token 有两个位置编号：在被破坏文本中的位置（B "
            "部分的片段取其 [MASK] 的位置），以及在片段内部的位置（A 部分为 0）；两者分别嵌入后相加：`x = "
            "E[t] + P₁[p₁] + P₂[p₂]`。",
        )
