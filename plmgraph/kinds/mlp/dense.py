"""Dense MLP: two linear layers with an activation between, ``down(act(up(x)))`` (BERT, GPT-2, T5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import ACTIVATIONS, Activation, Aspect, Attrs, Kind, Shape, Strict, mm, onoff, register


class DenseMLP(Strict):
    """Two linear layers with an activation between: W2 act(W1 x)."""

    kind: Literal["dense"] = "dense"
    activation: Activation = Field("gelu", description="Activation between the two projections.")
    bias: bool = Field(True, description="Both projections carry a bias.")
    ffn: PositiveInt | None = Field(None, description="Inner width. Default: sizes.ffn.")


def projections(hidden: int, ffn: int, up_rows: int, bias: bool) -> dict[str, Shape]:
    """The ``up`` / ``down`` projections of one MLP whose ``up`` has `up_rows` output rows."""
    p: dict[str, Shape] = {"up.weight": (up_rows, hidden), "down.weight": (hidden, ffn)}
    if bias:
        p["up.bias"] = (up_rows,)
        p["down.bias"] = (hidden,)
    return p


@register
class DenseKind(Kind):
    """Attrs: ``hidden``, ``ffn``, ``activation``, ``bias``."""

    name = "mlp/dense"
    spec = DenseMLP

    def params(self, a: Attrs) -> dict[str, Shape]:
        return projections(a["hidden"], a["ffn"], a["ffn"], a["bias"])

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return mm(params, "up.weight", "down.weight")

    def words(self, a: Attrs) -> str:
        return ACTIVATIONS.get(a["activation"], a["activation"])

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("MLP", self.words(a), (self.name, a["activation"], None, None)),
                Aspect("MLP bias", onoff(a["bias"]), a["bias"])]

    def label(self, a: Attrs) -> tuple[str, str]:
        return f"{self.words(a)} MLP", f"{a['hidden']}→{a['ffn']}→{a['hidden']}"

    #: The torch module in plmgraph/compile/mlp.py (the gated kind reuses every other facet).
    torch_class = "DenseMLP"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile import mlp

        return getattr(mlp, self.torch_class)(node["hidden"], node["ffn"], node["activation"], node["bias"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.up)
        rule.linear(module.down, residual=True)  # writes into the residual stream

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Position-wise feed-forward network: `FFN(x) = φ(x·W₁ + b₁)·W₂ + b₂`, width d → d_ff → d (d_ff "
            "is usually 4d), applied to every token alone; φ is ReLU (Transformer) or GELU, `GELU(x) = "
            "x·Φ(x)` (BERT, GPT-2 use its tanh approximation).",
            zh="逐位置前馈网络：`FFN(x) = φ(x·W₁ + b₁)·W₂ + b₂`，维度 d → d_ff → d（d_ff 通常为 4d），对每个 "
            "token 单独作用；φ 为 ReLU（Transformer）或 GELU，`GELU(x) = x·Φ(x)`（BERT、GPT-2 用其 tanh "
            "近似）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import dense

        return dense(a)
