"""Prefix tuning (Li & Liang 2021): trainable key/value prefixes in every self-attention layer.

The torch half is plmgraph/tuning/prefix.py (the prefix encoder and the hooks that hand each layer
its prefix, widen the mask and shift the positions); PEFT's PREFIX_TUNING layout is in
plmgraph/tuning/prefix.py too (`peft_config`, `peft_tensors`, `load_peft_tensors`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from ..base import Attrs, Strict, register
from ._shared import TuningKind, make_plan

#: Positions whose signal the prefix can share: the prefix takes positions 0 .. P-1 and the text
#: starts at P (as in PEFT).  Score biases (ALiBi, T5 buckets) and GLM's 2D positions would need
#: a bias or a position for each prefix column, which nothing computes yet.
POSITIONS = ("learned", "sinusoidal", "rope", "none")

#: Where the encoder lives in the compiled model (``prefix_tuning.embedding.weight``, ...).
MODULE = "prefix_tuning"


class PrefixTuning(Strict):
    """Trainable key/value prefixes in every self-attention layer (Li & Liang 2021)."""

    kind: Literal["prefix"] = "prefix"
    length: PositiveInt = Field(16, description="Number of prefix positions P (virtual tokens).")
    projection: PositiveInt | None = Field(
        512, description="Inner width of the reparameterisation MLP (Li & Liang; PEFT's prefix_projection with "
        "encoder_hidden_size): an embedding [P, hidden] -> Linear -> tanh -> Linear gives every layer's keys and "
        "values. null: learn the prefixes directly (PEFT's default).")


@register
class PrefixKind(TuningKind):
    name = "tuning/prefix"
    spec = PrefixTuning
    title = "prefix tuning"

    def check(self, graph: Any, a: Attrs) -> list[tuple[str, str]]:
        why = _unsupported(graph)
        if why:
            return [("kind", f"prefix tuning is not compiled for {why}")]
        P, limit = a["length"], graph.spec.sizes.max_positions
        if limit is not None and P >= limit:
            return [("length", f"prefix tuning: length {P} leaves no position for the text ({graph.name} has "
                               f"max_positions {limit}, and the prefix takes positions 0 .. {P - 1}); choose a "
                               f"length below {limit}")]
        return []

    def plan(self, graph: Any, a: Attrs) -> Any:
        self.checked(graph, a)
        spec = graph.spec
        P, m = a["length"], a["projection"]
        stack = next(iter(graph.stacks()))
        at = graph.node(f"{stack}.layers.0.attn")["attrs"]
        layers = graph.stacks()[stack]["layers"]
        kv, d, H = at["kv_heads"], at["head_dim"], spec.sizes.hidden
        width = layers * 2 * kv * d
        added = {f"{MODULE}.embedding.weight": (P, H if m else width)}
        if m:
            added.update({f"{MODULE}.transform.0.weight": (m, H), f"{MODULE}.transform.0.bias": (m,),
                          f"{MODULE}.transform.2.weight": (width, m), f"{MODULE}.transform.2.bias": (width,)})
        # each token's query meets P more keys in every layer (scores + weighted sum, stats' convention);
        # the MLP runs once per forward, not per token
        flops = layers * 4 * at["heads"] * d * P
        return make_plan(self, graph, a, added=added, flops=flops,
                         sites={"module": MODULE, "stack": stack, "layers": layers, "kv_heads": kv, "head_dim": d,
                                "hidden": H, "init_std": getattr(spec.init, "std", 0.02)})

    def attach(self, model: Any, plan: Any, generator: Any) -> None:
        from ...tuning.prefix import PrefixEncoder, attach

        s, a = plan.sites, plan.attrs
        ref = next(model.parameters())
        enc = PrefixEncoder(length=a["length"], layers=s["layers"], kv_heads=s["kv_heads"], head_dim=s["head_dim"],
                            hidden=s["hidden"], projection=a["projection"], device=ref.device, dtype=ref.dtype)
        if ref.device.type != "meta":
            enc.reset(1.0, generator)
        model.add_module(s["module"], enc)
        attach(model, enc)

    #: The PEFT adapter type this kind reads and writes (plmgraph/tuning/peft.py dispatches on it).
    peft_type = "PREFIX_TUNING"

    def from_peft(self, graph: Any, spec: Any, cfg: dict[str, Any], tensors: dict[str, Any],
                  source: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A PEFT PREFIX_TUNING adapter -> (the spec's ``tuning``, the prefix encoder's tensors)."""
        from ...tuning import TuningError
        from ...tuning.prefix import peft_tuning

        why = _unsupported(graph)
        if why:
            raise TuningError(f"{source}: a prefix-tuning adapter, but prefix tuning is not compiled for {why}")
        try:
            return peft_tuning(cfg, tensors, graph)
        except TuningError as e:
            raise TuningError(f"{source}: {e}") from None

    def to_peft(self, model: Any, plan: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """PEFT's PREFIX_TUNING adapter: (``adapter_config.json`` as a dict, tensors by name)."""
        from ...tuning.prefix import peft_adapter

        return peft_adapter(model, plan)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Prefix tuning (Li & Liang 2021): learn l virtual key and value vectors per layer, put in front "
            "of each attention's keys and values, `Attn(q, [P_k; K], [P_v; V])`, with `[P_k; P_v] = "
            "MLP(E)` (a reparameterisation that steadies training); the model itself stays frozen, and the "
            "text's positions start after the prefix.",
            zh="前缀微调（Li 和 Liang 2021）：每层学习 l 个虚拟的键、值向量，拼在注意力的键和值前面：`Attn(q, "
            "[P_k; K], [P_v; V])`，其中 `[P_k; P_v] = MLP(E)`（重参数化，使训练更稳定）；模型本身保持冻结，"
            "文本的位置从前缀之后开始。",
        )


def _unsupported(graph: Any) -> str | None:
    """What about this model prefix tuning cannot do yet (None: it can)."""
    spec = graph.spec
    if len(graph.stacks()) > 1:
        return "encoder-decoder models (the cross-attention would need prefixes of its own); one-stack models only"
    stack = next(iter(graph.stacks()))
    if graph.stacks()[stack]["patches"] is not None:
        return "image models (patch inputs)"
    attn = graph.node(f"{stack}.layers.0.attn")
    if attn["kind"] != "attention/self":
        return f"{attn['kind']} (relative attention); plain self-attention only"
    if spec.position.kind not in POSITIONS:
        return f"{spec.position.kind} positions (the prefix columns would need their own bias); " \
               f"{', '.join(POSITIONS)} only"
    if getattr(spec, "relative_position", None) is not None:  # MPNet's T5 bias next to learned positions
        return f"a {spec.relative_position.kind} relative_position (the prefix columns would need their own bias)"
    layers = graph.stacks()[stack]["layers"]
    if any(graph.node(f"{stack}.layers.{i}.attn")["group"] != f"{stack}.layers.{i}.attn" for i in range(layers)):
        return "shared layers (ALBERT): each depth needs its own prefix but runs the same attention module"
    return None
