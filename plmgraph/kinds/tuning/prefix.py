"""Prefix tuning (Li & Liang 2021): trainable key/value prefixes in every layer. Not compiled yet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Strict, register
from ._shared import NotCompiledTuning


class PrefixTuning(Strict):
    """Trainable key/value prefixes in every layer (Li & Liang 2021)."""

    kind: Literal["prefix"] = "prefix"
    length: PositiveInt = Field(16, description="Number of prefix positions.")


@register
class PrefixKind(NotCompiledTuning):
    name = "tuning/prefix"
    spec = PrefixTuning
    title = "prefix tuning"
    trains = "the key/value prefixes"
    refused_too = ("params", "flops")  # the prefixes are not graph tensors yet

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Prefix tuning (Li & Liang 2021): learn l virtual key and value vectors per layer, put in front "
            "of each attention's keys and values, `Attn(q, [P_k; K], [P_v; V])`; the model itself stays "
            "frozen.",
            zh="前缀微调（Li 和 Liang 2021）：每层学习 l 个虚拟的键、值向量，拼在注意力的键和值前面：`Attn(q, "
            "[P_k; K], [P_v; V])`；模型本身保持冻结。",
        )
