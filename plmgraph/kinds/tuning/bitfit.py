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

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="BitFit (Ben Zaken et al. 2022): train only the bias terms (and the task head), under 0.1 % of "
            "the parameters.",
            zh="BitFit（Ben Zaken 等 2022）：只训练偏置项（以及任务输出头），不到 0.1% 的参数。",
        )
