"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021): a small residual MLP after sublayers.

``variant: houlsby`` puts one after every sublayer of every layer (self-attention, cross-attention
in a decoder that has it, MLP); ``variant: pfeiffer`` after the MLP only.  Each adapter rewrites the
sublayer's output before the residual add, ``y <- y + W_up·φ(W_down·y)``; ``W_up`` starts at zero, so
an adapted model starts as the model it adapts.  The torch half is plmgraph/tuning/adapters.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from ..base import ACTIVATIONS, Activation, Attrs, Strict, register
from ._shared import TuningKind, layer_sites, make_plan

#: The sublayers each variant adapts (by node role).
SUBLAYERS = {"houlsby": ("attn", "cross", "mlp"), "pfeiffer": ("mlp",)}


class Adapters(Strict):
    """Bottleneck adapters after sublayers (Houlsby et al. 2019; Pfeiffer et al. 2021)."""

    kind: Literal["adapters"] = "adapters"
    bottleneck: PositiveInt = Field(64, description="Adapter inner width (at most hidden).")
    variant: Literal["houlsby", "pfeiffer"] = Field(
        "houlsby", description="houlsby: an adapter after the attention and after the MLP of every layer (and after "
        "the cross-attention of a decoder that has one); pfeiffer: after the MLP only.")
    activation: Activation = Field("relu", description="The adapter's nonlinearity φ.")
    train_norms: bool = Field(False, description="Train the layer norms too (Houlsby et al. do).")


@register
class AdaptersKind(TuningKind):
    name = "tuning/adapters"
    spec = Adapters
    title = "adapters"

    def check(self, graph: Any, a: Attrs) -> list[tuple[str, str]]:
        H, b = graph.spec.sizes.hidden, a["bottleneck"]
        if b > H:
            return [("bottleneck", f"adapters: bottleneck {b} is wider than the model's hidden size {H}; a "
                                   f"bottleneck must be at most {H} (typically hidden/16 .. hidden/4)")]
        return []

    def plan(self, graph: Any, a: Attrs) -> Any:
        self.checked(graph, a)
        H, b = graph.spec.sizes.hidden, a["bottleneck"]
        added: dict[str, tuple[int, ...]] = {}
        hosts: list[str] = []
        flops = 0
        for site in layer_sites(graph):
            runs = _runs(graph, site)
            for role in SUBLAYERS[a["variant"]]:
                if role not in site:
                    continue
                host = site[role]
                hosts.append(host)
                added.update({f"{host}.adapter.down.weight": (b, H), f"{host}.adapter.down.bias": (b,),
                              f"{host}.adapter.up.weight": (H, b), f"{host}.adapter.up.bias": (H,)})
                flops += runs * 2 * (2 * H * b)
        kept: tuple[str, ...] = ()
        if a["train_norms"]:
            kept = tuple(f"{n}.{p}" for n in graph.owners() if graph.node(n)["axis"] == "norm"
                         for p in graph.node(n)["params"])
        return make_plan(self, graph, a, added=added, kept=kept, flops=flops,
                         sites={"hosts": hosts, "hidden": H, "init_std": 1e-2})

    def attach(self, model: Any, plan: Any, generator: Any) -> None:
        from ...tuning.adapters import attach

        attach(model, plan, generator)

    def words(self, a: Attrs) -> str:
        v = "Houlsby" if a["variant"] == "houlsby" else "Pfeiffer"
        norms = ", norms train" if a["train_norms"] else ""
        return f"{v} adapters (bottleneck {a['bottleneck']}, {ACTIVATIONS[a['activation']]}{norms})"

    def label(self, a: Attrs) -> tuple[str, str]:
        where = "after attention and MLP" if a["variant"] == "houlsby" else "after MLP"
        return "adapters", f"{a['variant']} · bottleneck {a['bottleneck']} · {where}"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Adapters (Houlsby et al. 2019): a small bottleneck after a sublayer, `h ← h + W_up·φ(W_down·h)`, "
            "`W_down ∈ ℝ^(m×d)`, m ≪ d, `W_up` starting at zero; Houlsby puts one after the attention and one "
            "after the MLP of every layer, Pfeiffer (2021) only after the MLP; only the adapters (and, as an "
            "option, the layer norms) train.",
            zh="适配器（Houlsby 等 2019）：在子层之后插入一个小的瓶颈结构 `h ← h + W_up·φ(W_down·h)`，"
            "`W_down ∈ ℝ^(m×d)`，m ≪ d，`W_up` 初始化为零；Houlsby 在每层的注意力和 MLP 之后各放一个，"
            "Pfeiffer（2021）只放在 MLP 之后；只训练适配器（可选地再加上层归一化）。",
        )


def _runs(graph: Any, site: dict[str, Any]) -> int:
    """How many depths run this layer's modules (ALBERT: every layer of its group)."""
    stack, owner = site["stack"], site["module"]
    layers = graph.stacks()[stack]["layers"]
    return sum(graph.node(f"{stack}.layers.{i}.attn")["group"] == f"{owner}.attn" for i in range(layers))
