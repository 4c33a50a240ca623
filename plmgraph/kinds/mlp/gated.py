"""Gated MLP (GLU variants, Shazeer 2020): ``down(act(gate(x)) * up(x))``; silu is SwiGLU, gelu GeGLU.

Gate and up are one fused projection: ``up.weight`` is ``[gate; up]``, ``2 * ffn`` rows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Activation, Attrs, Shape, Strict, register
from .dense import DenseKind, projections


class GatedMLP(Strict):
    """Gated linear unit: W2 (act(W1 x) * W3 x); silu gives SwiGLU, gelu gives GeGLU."""

    kind: Literal["gated"] = "gated"
    activation: Activation = Field("silu", description="Activation on the gate branch.")
    bias: bool = Field(False, description="The three projections carry a bias.")
    ffn: PositiveInt | None = Field(None, description="Inner width. Default: sizes.ffn.")


#: A gated MLP by its gate activation, as the papers name it.
GATED = {"silu": "SwiGLU", "gelu": "GeGLU", "gelu_tanh": "GeGLU (tanh)", "relu": "ReGLU", "sigmoid": "GLU"}


@register
class GatedKind(DenseKind):
    """Attrs: ``hidden``, ``ffn``, ``activation``, ``bias``. FLOPs, diff facts, label and init are the
    dense MLP's (the fused [gate; up] projection is one ``up``); shapes, words and torch module differ."""

    name = "mlp/gated"
    spec = GatedMLP
    torch_class = "GatedMLP"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return projections(a["hidden"], a["ffn"], 2 * a["ffn"], a["bias"])

    def words(self, a: Attrs) -> str:
        return GATED.get(a["activation"], f"gated {a['activation']}")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Gated MLP (Shazeer 2020): `FFN(x) = (φ(x·W_gate) ⊙ x·W_up)·W_down`. SwiGLU uses `φ = SiLU(x) = "
            "x·σ(x)` (LLaMA), GeGLU uses GELU. With three matrices instead of two, d_ff is usually about "
            "`⅔·4d` to keep the parameter count (LLaMA-7B: 11008).",
            zh="门控前馈网络（Shazeer 2020）：`FFN(x) = (φ(x·W_gate) ⊙ x·W_up)·W_down`。SwiGLU 取 `φ = SiLU(x) "
            "= x·σ(x)`（LLaMA），GeGLU 取 GELU。因为有三个矩阵，d_ff 通常取约 `⅔·4d` 以保持参数量（LLaMA-7B "
            "为 11008）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import gated

        return gated(a)
