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
