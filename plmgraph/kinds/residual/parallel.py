"""Parallel sublayers: x = x + attn(n1(x)) + mlp(n2(x)) (GPT-J: n2 = n1; GPT-NeoX: two norms)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register


class Parallel(Strict):
    """Parallel sublayers: attention and MLP read the same input and are added together (GPT-J, NeoX)."""

    kind: Literal["parallel"] = "parallel"
    shared_norm: bool = Field(
        True, description="Attention and MLP read one shared norm (GPT-J) or two (NeoX)."
    )


@register
class ParallelKind(Kind):
    name = "residual/parallel"
    spec = Parallel

    def words(self, a: Attrs) -> str:
        return "parallel (attention ∥ MLP, " + ("one shared norm)" if a["shared_norm"] else "two norms)")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Parallel sublayers (GPT-J, GPT-NeoX, PaLM): attention and MLP read the same input and are added "
            "together, `x = x + Attn(LN₁(x)) + MLP(LN₂(x))` (one shared LN in GPT-J); the two matrix "
            "multiplies can run together, about 15 % faster at scale.",
            zh="并行子层（GPT-J、GPT-NeoX、PaLM）：注意力和 MLP 读同一个输入，结果一起加回：`x = x + "
            "Attn(LN₁(x)) + MLP(LN₂(x))`（GPT-J 共用一个 LN）；两路矩阵乘法可同时计算，大模型上约快 15%。",
        )
