"""Fixed sinusoidal absolute positions added to the token embeddings (Vaswani et al. 2017)."""

from __future__ import annotations

from typing import Literal

from ..base import Aspect, Attrs, Shape, Strict, register
from .common import InputPosition


class SinusoidalPosition(Strict):
    """Fixed sinusoidal absolute positions added to the token embeddings (Vaswani et al. 2017)."""

    kind: Literal["sinusoidal"] = "sinusoidal"


@register
class SinusoidalPositionKind(InputPosition):
    name = "position/sinusoidal"
    spec = SinusoidalPosition

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # computed from constants in forward, no weights

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # element-wise: ignored by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "sinusoidal"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("position", self.words(a), self.variant)]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Sinusoidal positions", f"{a.get('dim')} dims"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.position import SinusoidalPosition as TorchSinusoidalPosition

        return TorchSinusoidalPosition(node["dim"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no weights

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Sinusoidal positions (Vaswani et al. 2017): `PE(pos, 2i) = sin(pos / 10000^(2i/d))`, `PE(pos, "
            "2i+1) = cos(pos / 10000^(2i/d))`, added to the embeddings; no parameters, and `PE(pos+k)` is a "
            "linear function of `PE(pos)`.",
            zh="正余弦位置编码（Vaswani 等 2017）：`PE(pos, 2i) = sin(pos / 10000^(2i/d))`，`PE(pos, 2i+1) = "
            "cos(pos / 10000^(2i/d))`，加到嵌入上；没有参数，且 `PE(pos+k)` 是 `PE(pos)` 的线性函数。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import sinusoidal

        return sinusoidal(a)
