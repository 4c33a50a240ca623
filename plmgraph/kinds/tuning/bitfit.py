"""BitFit (Ben Zaken et al. 2021): only the biases (and heads) train. Not compiled yet."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Shape, Strict, register
from ._shared import NotCompiledTuning


class BitFit(Strict):
    """Only biases (and heads) train (Ben Zaken et al. 2021)."""

    kind: Literal["bitfit"] = "bitfit"


@register
class BitFitKind(NotCompiledTuning):
    name = "tuning/bitfit"
    spec = BitFit
    title = "BitFit"
    trains = "the biases"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # adds no tensors: it only freezes the model's weights

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # adds no computation
