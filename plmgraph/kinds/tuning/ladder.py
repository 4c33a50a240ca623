"""Ladder Side Tuning (Sung et al. 2022): a small side network on the frozen model's hidden states.

The side network is the model's own layer design at ``hidden / reduction`` (the same heads and
kv heads, head_dim, ffn and expert widths divided by the reduction), one side layer per backbone
layer.  Its input is the downsampled embedding output; before side layer ``i`` a learned gate mixes
the downsampled output of backbone layer ``i`` into the side stream:

    s_0 = D_0 h_0,    s_{i+1} = side_i( μ_i · D_{i+1} h_{i+1} + (1 − μ_i) · s_i ),  μ_i = σ(α_i / T)

and the side's (normed) output is upsampled onto the backbone's output, ``h ← h_L + U·norm(s_L)``,
``U`` starting at zero so the tuned model starts as the frozen one.  The backbone runs under
``torch.no_grad()`` and only detached states reach the side network, so backward never enters the
backbone: no activation of it is kept for backward, which is the memory LST saves over LoRA or
adapters (tools/bench_ladder.py).  The torch half is plmgraph/tuning/ladder.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt

from ..base import Attrs, Strict, register
from ._shared import TuningKind, make_plan

#: Where the side network lives in the compiled model (``ladder.down.0.weight``, ``ladder.layers.0...``).
MODULE = "ladder"


class Ladder(Strict):
    """A small side network fed by the frozen backbone's hidden states (Sung et al. 2022)."""

    kind: Literal["ladder"] = "ladder"
    reduction: PositiveInt = Field(8, description="Reduction factor r: the side network is hidden / r wide "
                                   "(it must divide hidden, and hidden / r must split into the model's heads).")
    gate_temperature: Annotated[float, Field(gt=0.0)] = Field(
        0.1, description="Temperature T of the ladder gates μ = sigmoid(α / T) (α starts at 0: μ = 0.5).")


def side_spec_data(spec: Any, r: int) -> dict[str, Any]:
    """The side network's spec as data: `spec` with every width divided by `r` (torch-free)."""
    data = spec.model_dump(mode="json")
    data["name"] = f"{spec.name}-ladder-side"
    for key in ("extends", "source"):
        data.pop(key, None)
    data["tuning"] = {"kind": "full"}
    s = data["sizes"]
    s["hidden"] //= r
    if s.get("ffn"):
        s["ffn"] = max(1, s["ffn"] // r)
    data["embeddings"]["size"] = None  # the side reads D_0 h_0, never the token matrix
    blocks = [data["block"]] + [st["block"] for st in (data.get("encoder"), data.get("decoder"))
                                if isinstance(st, dict) and st.get("block")]
    for b in blocks:
        at, mlp = b["attention"], b["mlp"]
        if at.get("head_dim"):
            at["head_dim"] //= r
        if mlp.get("ffn"):
            mlp["ffn"] = max(1, mlp["ffn"] // r)
        if isinstance(mlp.get("expert"), dict) and mlp["expert"].get("ffn"):
            mlp["expert"]["ffn"] = max(1, mlp["expert"]["ffn"] // r)
    return data


@register
class LadderKind(TuningKind):
    name = "tuning/ladder"
    spec = Ladder
    title = "ladder side tuning"

    def check(self, graph: Any, a: Attrs) -> list[tuple[str, str]]:
        from ...errors import SpecError
        from ...spec import validate
        from ...spec.extends import Merged

        spec, r = graph.spec, a["reduction"]
        if len(graph.stacks()) > 1:
            return [("kind", "ladder side tuning is not compiled for encoder-decoder models (the side decoder "
                             "would need a side encoder to attend to); one-stack models only")]
        stack = next(iter(graph.stacks()))
        attn = graph.node(f"{stack}.layers.0.attn")
        if attn["kind"] != "attention/self":
            return [("kind", f"ladder side tuning is not compiled for {attn['kind']} (relative attention); plain "
                             "self-attention only")]
        H, d, heads = spec.sizes.hidden, attn["attrs"]["head_dim"], attn["attrs"]["heads"]
        if H % r:
            divisors = [k for k in range(2, min(H, 64) + 1) if H % k == 0][:8]
            return [("reduction", f"ladder: reduction {r} does not divide hidden {H}; the side network is hidden / "
                                  f"reduction wide; allowed: a divisor of {H} such as {', '.join(map(str, divisors))}")]
        if r > 1 and d % r:
            return [("reduction", f"ladder: reduction {r} does not divide the head width {d}: the side network "
                                  f"keeps the {heads} heads, each head_dim / reduction wide; choose a reduction that "
                                  f"divides {d}")]
        try:
            validate(Merged(side_spec_data(spec, r), file=f"ladder side of {spec.name}"))
        except SpecError as e:
            return [("reduction", f"ladder: reduction {r} gives a side network that is not a valid model: "
                                  f"{str(e).splitlines()[0]}")]
        return []

    def plan(self, graph: Any, a: Attrs) -> Any:
        from ...graph.arch import resolve
        from ...spec import validate
        from ...spec.extends import Merged

        self.checked(graph, a)
        spec, r = graph.spec, a["reduction"]
        stack = next(iter(graph.stacks()))
        H = spec.sizes.hidden
        side = resolve(validate(Merged(side_spec_data(spec, r), file=f"ladder side of {spec.name}")))
        S, L = H // r, graph.stacks()[stack]["layers"]
        added: dict[str, tuple[int, ...]] = {}
        for i in range(L + 1):
            added[f"{MODULE}.down.{i}.weight"] = (S, H)
            added[f"{MODULE}.down.{i}.bias"] = (S,)
        added[f"{MODULE}.gates"] = (L,)
        flops = 2 * (L + 1) * S * H + 2 * S * H
        for name, shape in side.param_shapes().items():
            for part in ("layers.", "final_norm."):
                if name.startswith(f"{stack}.{part}"):
                    added[f"{MODULE}.{name.removeprefix(stack + '.')}"] = tuple(shape)
        for n, dd in side.items():
            if n.startswith(f"{stack}.layers.") or n == f"{stack}.final_norm":
                params = side.node(dd["group"])["params"]
                from ..base import KINDS

                flops += KINDS[dd["kind"]].flops(dd["attrs"], params, spec.sizes.max_positions or 2048)
        added[f"{MODULE}.up.weight"] = (H, S)
        added[f"{MODULE}.up.bias"] = (H,)
        return make_plan(self, graph, a, added=added, flops=flops,
                         sites={"module": MODULE, "stack": stack, "side": side_spec_data(spec, r), "hidden": H,
                                "side_hidden": S, "layers": L, "init_std": getattr(spec.init, "std", 0.02)})

    def attach(self, model: Any, plan: Any, generator: Any) -> None:
        from ...tuning.ladder import attach

        attach(model, plan, generator)

    def words(self, a: Attrs) -> str:
        return f"ladder side tuning (side network 1/{a['reduction']} wide, gate temperature {a['gate_temperature']:g})"

    def label(self, a: Attrs) -> tuple[str, str]:
        return "ladder side tuning", f"side network hidden/{a['reduction']} · gates σ(α/{a['gate_temperature']:g})"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Ladder Side Tuning (Sung et al. 2022): a small side network, r times narrower, reads the frozen "
            "model's downsampled hidden states through learned gates, `s_(i+1) = f_i(μ_i·D_i·h_i + (1−μ_i)·s_i)`, "
            "`μ_i = σ(α_i/T)`, and its output is added back, `h ← h_L + U·s_L`; the backbone runs without "
            "gradients, so backward never enters it and its activations need not be kept.",
            zh="梯子侧调（Ladder Side Tuning，Sung 等 2022）：一个窄 r 倍的小侧网络，通过可学习的门读取冻结模型"
            "降维后的隐藏状态：`s_(i+1) = f_i(μ_i·D_i·h_i + (1−μ_i)·s_i)`，`μ_i = σ(α_i/T)`，其输出再加回主干："
            "`h ← h_L + U·s_L`；主干在无梯度模式下运行，反向传播不经过主干，因此无需保存它的激活值。",
        )
