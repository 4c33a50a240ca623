"""LoRA (Hu et al. 2021): low-rank updates ``W + (alpha/rank) B A`` on chosen projections. Not compiled yet."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from ..base import Probability, Strict, register
from ._shared import NotCompiledTuning


class LoRA(Strict):
    """Low-rank adapters on chosen projections: W + (alpha/rank) B A (Hu et al. 2021)."""

    kind: Literal["lora"] = "lora"
    rank: PositiveInt = Field(8, description="Rank r of the update.")
    alpha: Annotated[float, Field(gt=0.0)] = Field(16.0, description="Scale numerator: update is alpha/r * BA.")
    dropout: Probability = Field(0.0, description="Dropout on the adapter input.")
    targets: list[Literal["q", "k", "v", "o", "mlp"]] = Field(
        default_factory=lambda: ["q", "v"], description="Projections that get an adapter."
    )


@register
class LoRAKind(NotCompiledTuning):
    name = "tuning/lora"
    spec = LoRA
    title = "LoRA"
    trains = "the low-rank adapters"
    refused_too = ("params", "flops")  # the A and B matrices are not graph tensors yet

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="LoRA (Hu et al. 2021): freeze W and learn a low-rank update, `h = W·x + (α/r)·B·A·x`, `A ∈ "
            "ℝ^(r×d_in)`, `B ∈ ℝ^(d_out×r)` (B starts at zero), r ≪ d; after training `W + (α/r)·BA` merges "
            "into one matrix, so inference costs nothing extra.",
            zh="LoRA（Hu 等 2021）：冻结 W，只学习一个低秩增量：`h = W·x + (α/r)·B·A·x`，`A ∈ ℝ^(r×d_in)`、`B ∈ "
            "ℝ^(d_out×r)`（B 初始化为零），r ≪ d；训练后 `W + (α/r)·BA` 合并成一个矩阵，推理没有额外开销。",
        )
