"""BitFit (Ben Zaken et al. 2022): only the bias terms train; nothing is added."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Attrs, Strict, register
from ._shared import TuningKind, make_plan


class BitFit(Strict):
    """Only the biases train (Ben Zaken et al. 2022)."""

    kind: Literal["bitfit"] = "bitfit"
    heads: bool = Field(False, description="Train the output heads' weights too (the paper's task head).")


@register
class BitFitKind(TuningKind):
    name = "tuning/bitfit"
    spec = BitFit
    title = "BitFit"

    def words(self, a: Attrs) -> str:
        return "BitFit (biases" + (" and heads)" if a.get("heads") else " only)")

    def check(self, graph, a: Attrs) -> list[tuple[str, str]]:  # noqa: ANN001
        if not _kept(graph, a):
            return [("kind", f"BitFit: {graph.name} has no biases to train (its projections and norms are "
                             "bias-free); use LoRA or IA³, or bitfit with heads: true")]
        return []

    def plan(self, graph, a: Attrs):  # noqa: ANN001, ANN201
        self.checked(graph, a)
        return make_plan(self, graph, a, kept=tuple(_kept(graph, a)))

    def attach(self, model, plan, generator) -> None:  # noqa: ANN001
        pass  # adds nothing: the core keeps plan.kept (the biases) trainable and freezes the rest

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="BitFit (Ben Zaken et al. 2022): train only the bias terms (and the task head), under 0.1 % of "
            "the parameters.",
            zh="BitFit（Ben Zaken 等 2022）：只训练偏置项（以及任务输出头），不到 0.1% 的参数。",
        )


def _kept(graph, a: Attrs) -> list[str]:  # noqa: ANN001
    """The base parameters BitFit trains: every bias (and the heads' weights with ``heads: true``)."""
    names = list(graph.param_shapes())
    kept = [n for n in names if n.rsplit(".", 1)[-1] == "bias" or n.endswith("_bias")]
    if a.get("heads"):
        kept += [n for n in names if n.startswith("heads.") and n not in kept]
    return kept
