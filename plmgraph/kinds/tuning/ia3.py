"""IA³ (Liu et al. 2022, "Few-shot parameter-efficient fine-tuning is better and cheaper than in-context
learning"): learned vectors that rescale keys, values and the MLP's intermediate activation.

As in PEFT: a target's output rows are multiplied by its vector (``attn.k``, ``attn.v``, any other
projection of `_shared.TARGETS`), except ``mlp.down`` whose *input* (the intermediate activation
``act(up(x))``) is scaled, PEFT's "feed-forward module". Vectors start at 1 (the model unchanged).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Attrs, Strict, register
from ._shared import TARGETS, TuningKind, make_plan, projections

Target = Literal[TARGETS + ("q", "k", "v", "o", "mlp")]  # type: ignore[valid-type]


class IA3(Strict):
    """Learned scaling vectors on keys, values and the MLP's intermediate activation (Liu et al. 2022)."""

    kind: Literal["ia3"] = "ia3"
    targets: list[Target] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["attn.k", "attn.v", "mlp.down"], min_length=1,
        description="Projections whose output is rescaled (mlp.down: its input, the intermediate activation); "
        "the names LoRA takes.")


@register
class IA3Kind(TuningKind):
    name = "tuning/ia3"
    spec = IA3
    title = "IA³"

    def check(self, graph, a: Attrs) -> list[tuple[str, str]]:  # noqa: ANN001
        from ...tuning import TuningError

        try:
            projections(graph, a["targets"], "IA³")
        except TuningError as e:
            return [("targets", str(e))]
        return []

    def plan(self, graph, a: Attrs):  # noqa: ANN001, ANN201
        self.checked(graph, a)
        sites = projections(graph, a["targets"], "IA³")
        added = {}
        for p in sites:
            added[f"{p.host}.ia3.{p.key}"] = (p.fan_in,) if p.target == "mlp.down" else (p.rows,)
        flops = sum(p.runs * (p.fan_in if p.target == "mlp.down" else p.rows) for p in sites)
        return make_plan(self, graph, a, added=added, flops=flops,
                         sites={"projections": [dict(p.__dict__) for p in sites]})

    def attach(self, model, plan, generator) -> None:  # noqa: ANN001
        from ...tuning.modules import attach_ia3

        attach_ia3(model, plan)

    def merge(self, model, plan) -> None:  # noqa: ANN001
        from ...tuning.modules import merge_ia3

        merge_ia3(model, plan, True)

    def unmerge(self, model, plan) -> None:  # noqa: ANN001
        from ...tuning.modules import merge_ia3

        merge_ia3(model, plan, False)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="IA³ (Liu et al. 2022): learn vectors that rescale the keys, the values and the MLP's "
            "intermediate activation, `k ← l_k ⊙ k`, `v ← l_v ⊙ v`, `h ← l_ff ⊙ φ(W_up·x)`; the vectors start "
            "at 1 and are the only parameters that train (about 0.01 %).",
            zh="IA³（Liu 等 2022）：学习几个向量，逐元素缩放键、值和 MLP 的中间激活：`k ← l_k ⊙ k`、`v ← l_v ⊙ v`、"
            "`h ← l_ff ⊙ φ(W_up·x)`；向量初始为 1，只训练这些向量（约 0.01% 的参数）。",
        )
