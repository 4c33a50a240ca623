"""Full fine-tuning: every parameter trains (the default)."""

from __future__ import annotations

from typing import Literal

from ..base import Attrs, Shape, Strict, register
from ._shared import TuningKind, make_plan


class FullTuning(Strict):
    """Every parameter trains."""

    kind: Literal["full"] = "full"


@register
class FullKind(TuningKind):
    name = "tuning/full"
    spec = FullTuning
    title = "full"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # adds no tensors: the model's own parameters train

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # adds no computation

    def plan(self, graph, a: Attrs):  # noqa: ANN001, ANN201
        return make_plan(self, graph, a, kept=tuple(graph.param_shapes()))  # everything trains

    def attach(self, model, plan, generator) -> None:  # noqa: ANN001
        pass  # nothing to add or freeze: the built model trains as it is

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Full fine-tuning: every parameter is trained.",
            zh="全参数微调：所有参数都参与训练。",
        )
