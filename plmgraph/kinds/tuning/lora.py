"""LoRA (Hu et al. 2021): low-rank updates ``W + s·B A`` on chosen projections, ``s = alpha / rank``
(rsLoRA, Kalajdzievski 2023: ``alpha / sqrt(rank)``).

Targets are projections named by node role (see `_shared.TARGETS`): ``attn.qkv`` (the fused
projection, one adapter), ``attn.q`` / ``attn.k`` / ``attn.v`` (one adapter per slice of the fused
qkv, as PEFT puts one on each of LLaMA's ``q_proj`` / ``k_proj`` / ``v_proj``), ``attn.out``,
``cross.*``, ``mlp.up`` / ``mlp.down`` and, on gated MLPs, ``mlp.gate`` / ``mlp.up`` (the two halves
of plmgraph's fused ``up``) or ``mlp.gate_up`` (both). The old short names ``q k v o mlp`` still work.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from ..base import Attrs, Probability, Strict, register
from ._shared import TARGETS, TuningKind, make_plan, projections

Target = Literal[TARGETS + ("q", "k", "v", "o", "mlp")]  # type: ignore[valid-type]


class LoRA(Strict):
    """Low-rank adapters on chosen projections: W + (alpha/rank) B A (Hu et al. 2021)."""

    kind: Literal["lora"] = "lora"
    rank: PositiveInt = Field(8, description="Rank r of the update.")
    alpha: Annotated[float, Field(gt=0.0)] = Field(16.0, description="Scale numerator: update is alpha/r * BA.")
    dropout: Probability = Field(0.0, description="Dropout on the adapter input.")
    targets: list[Target] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["attn.q", "attn.v"], min_length=1,
        description="Projections that get an adapter, by node role: attn.qkv (the fused projection), attn.q, "
        "attn.k, attn.v (its slices), attn.out, cross.q/kv/k/v/out, mlp.up, mlp.down, mlp.gate, mlp.gate_up "
        "(gated MLPs); q, k, v, o, mlp are short names.")
    rslora: bool = Field(False, description="rsLoRA scaling alpha/sqrt(rank) instead of alpha/rank.")


def scaling(a: Attrs) -> float:
    return a["alpha"] / (a["rank"] ** 0.5 if a["rslora"] else a["rank"])


@register
class LoRAKind(TuningKind):
    name = "tuning/lora"
    spec = LoRA
    title = "LoRA"

    def check(self, graph, a: Attrs) -> list[tuple[str, str]]:  # noqa: ANN001
        from ...tuning import TuningError

        try:
            sites = projections(graph, a["targets"], "LoRA")
        except TuningError as e:
            return [("targets", str(e))]
        r = a["rank"]
        for p in sites:
            if r > min(p.fan_in, p.rows):
                return [("rank", f"LoRA rank {r} is larger than {p.target} in {p.host} ({p.fan_in} in, {p.rows} "
                                 f"out); the rank must be at most {min(p.fan_in, p.rows)}")]
        return []

    def plan(self, graph, a: Attrs):  # noqa: ANN001, ANN201
        self.checked(graph, a)
        r = a["rank"]
        sites = projections(graph, a["targets"], "LoRA")
        added, flops = {}, 0
        for p in sites:
            added[f"{p.host}.lora.{p.key}.A"] = (r, p.fan_in)
            added[f"{p.host}.lora.{p.key}.B"] = (p.rows, r)
            flops += p.runs * 2 * r * (p.fan_in + p.rows)
        sites_data = [dict(p.__dict__) for p in sites]
        return make_plan(self, graph, a, added=added, flops=flops,
                         sites={"projections": sites_data, "scaling": scaling(a)})

    def attach(self, model, plan, generator) -> None:  # noqa: ANN001
        from ...tuning.modules import attach_lora

        attach_lora(model, plan, generator)

    def merge(self, model, plan) -> None:  # noqa: ANN001
        from ...tuning.modules import merge_lora

        merge_lora(model, plan, +1)

    def unmerge(self, model, plan) -> None:  # noqa: ANN001
        from ...tuning.modules import merge_lora

        merge_lora(model, plan, -1)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="LoRA (Hu et al. 2021): freeze W and learn a low-rank update, `h = W·x + (α/r)·B·A·x`, `A ∈ "
            "ℝ^(r×d_in)`, `B ∈ ℝ^(d_out×r)` (B starts at zero), r ≪ d; after training `W + (α/r)·BA` merges "
            "into one matrix, so inference costs nothing extra.",
            zh="LoRA（Hu 等 2021）：冻结 W，只学习一个低秩增量：`h = W·x + (α/r)·B·A·x`，`A ∈ ℝ^(r×d_in)`、`B ∈ "
            "ℝ^(d_out×r)`（B 初始化为零），r ≪ d；训练后 `W + (α/r)·BA` 合并成一个矩阵，推理没有额外开销。",
        )
