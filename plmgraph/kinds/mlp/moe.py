"""Sparse mixture of experts (Shazeer et al. 2017; Mixtral): a linear router sends each token to
its top-k of E expert MLPs (each a dense or gated MLP kind).

The experts are stored stacked (``experts.up_weight [E, up_rows, H]``, ``experts.down_weight
[E, H, ffn]``); their shapes, words and inner kind come from the expert's own kind. The
load-balancing loss (``aux_loss``) is not compiled yet: a spec that sets it validates, shows,
diffs and draws, but `build` refuses it rather than silently training without it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import KINDS, Aspect, Attrs, Kind, NotCompiledYet, Shape, Strict, mm, num, onoff, register
from .dense import DenseMLP
from .gated import GatedMLP


class MoEMLP(Strict):
    """Sparse mixture of experts: a linear router picks top_k of `experts` expert MLPs per token."""

    kind: Literal["moe"] = "moe"
    experts: Annotated[int, Field(ge=2)] = Field(description="Number of experts.")
    top_k: PositiveInt = Field(2, description="Experts each token is routed to.")
    expert: DenseMLP | GatedMLP = Field(
        default_factory=GatedMLP, discriminator="kind", description="The MLP every expert is."
    )
    router_bias: bool = Field(False, description="The router projection carries a bias.")
    normalize_top_k: bool = Field(True, description="Renormalise the top-k router weights to sum to 1.")
    aux_loss: float = Field(0.0, ge=0.0, description="Weight of the load-balancing loss.")
    shared_ffn: PositiveInt | None = Field(
        None, description="Inner width of a shared expert every token also runs (an MLP of the experts' kind; "
        "Qwen2-MoE, DeepSeekMoE). Default: none.")
    shared_gate: bool = Field(False, description="Scale the shared expert's output by sigmoid(x·w_g), one gate "
                              "per token (Qwen2-MoE). Needs shared_ffn.")

    @model_validator(mode="after")
    def _shared(self) -> MoEMLP:
        if self.shared_gate and self.shared_ffn is None:
            raise ValueError("shared_gate gates the shared expert; set shared_ffn (its width) too")
        return self


def _expert(a: Attrs) -> tuple[Kind, Attrs]:
    """The expert's kind and the attrs one expert would have as a node of its own."""
    return KINDS[f"mlp/{a['expert_kind']}"], {"hidden": a["hidden"], "ffn": a["expert_ffn"],
                                              "activation": a["expert_activation"], "bias": a["expert_bias"]}


def _shared(a: Attrs) -> tuple[Kind, Attrs] | None:
    """The shared expert's kind and attrs (an MLP of the experts' kind, `shared_ffn` wide), if any."""
    if not a.get("shared_ffn"):
        return None
    kind, one = _expert(a)
    return kind, {**one, "ffn": a["shared_ffn"]}


@register
class MoEKind(Kind):
    """Attrs: ``hidden``, ``experts``, ``top_k``, ``router_bias``, ``normalize_top_k``, ``aux_loss``,
    and the expert's as ``expert_kind``, ``expert_ffn``, ``expert_activation``, ``expert_bias``."""

    name = "mlp/moe"
    spec = MoEMLP
    refused = {"aux_loss": "the load-balancing loss (aux_loss > 0) is not compiled yet: the MoE forward does not "
                           "compute it; the spec validates, shows and diffs, but `build` would train without it "
                           "(set block.mlp.aux_loss=0 to build the model without the loss)"}

    def params(self, a: Attrs) -> dict[str, Shape]:
        params: dict[str, Shape] = {"router.weight": (a["experts"], a["hidden"])}
        if a["router_bias"]:
            params["router.bias"] = (a["experts"],)
        kind, one = _expert(a)
        params.update({f"experts.{k.replace('.', '_')}": (a["experts"], *v) for k, v in kind.params(one).items()})
        if (sh := _shared(a)) is not None:
            params.update({f"shared.{k}": v for k, v in sh[0].params(sh[1]).items()})
            if a.get("shared_gate"):
                params["shared_gate.weight"] = (1, a["hidden"])
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        e = a["experts"]  # each token runs the router and top_k of the e experts
        shared = mm(params, "shared.up.weight", "shared.down.weight", "shared_gate.weight")  # 0 without one
        return (mm(params, "router.weight") + a["top_k"] * mm(params, "experts.up_weight", "experts.down_weight") // e
                + shared)

    def inner(self, a: Attrs) -> str:
        """One expert in words ("SwiGLU")."""
        return KINDS[f"mlp/{a['expert_kind']}"].words({"activation": a["expert_activation"]})

    def words(self, a: Attrs) -> str:
        shared = f" + shared {a['shared_ffn']}" if a.get("shared_ffn") else ""
        return f"MoE {a['experts']}×{self.inner(a)}, top-{a['top_k']}{shared}"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [
            Aspect("MLP", self.words(a), (self.name, None, a["expert_kind"], a["expert_activation"])),
            Aspect("MLP bias", onoff(a["expert_bias"]), a["expert_bias"]),
            Aspect("router bias", onoff(a["router_bias"]), a["router_bias"]),
            Aspect("top-k renormalisation", onoff(a["normalize_top_k"]), a["normalize_top_k"]),
            Aspect("load-balancing loss", num(a["aux_loss"])),
            Aspect("shared expert", f"{a['shared_ffn']} wide" + (", gated" if a.get("shared_gate") else "")
                   if a.get("shared_ffn") else "none", (a.get("shared_ffn"), a.get("shared_gate", False))),
        ]

    def label(self, a: Attrs) -> tuple[str, str]:
        return (f"MoE: {a['experts']} × {self.inner(a)} experts",
                f"top-{a['top_k']} · {a['hidden']}→{a['expert_ffn']}→{a['hidden']}")

    def build(self, node):  # noqa: ANN001, ANN201
        a = node.attrs
        if a["aux_loss"] > 0:
            raise NotCompiledYet(f"{node.id}: block kind {self.name!r}, field aux_loss = {num(a['aux_loss'])}: "
                                 f"{self.refused['aux_loss']}")
        from ...compile.mlp import Experts, MoE

        experts = Experts(a["experts"], a["hidden"], a["expert_ffn"], a["expert_activation"],
                          a["expert_kind"] == "gated", a["expert_bias"])
        shared = None
        if _shared(a) is not None:
            from ...compile.mlp import DenseMLP, GatedMLP

            cls = GatedMLP if a["expert_kind"] == "gated" else DenseMLP
            shared = cls(a["hidden"], a["shared_ffn"], a["expert_activation"], a["expert_bias"])
        return MoE(a["hidden"], experts, a["experts"], a["top_k"], a["normalize_top_k"], a.get("router_bias", False),
                   shared=shared, shared_gate=bool(a.get("shared_gate")))

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.router)
        ex = module.experts
        rule.weight(ex.up_weight, ex.up_weight.shape[-1])
        rule.weight(ex.down_weight, ex.down_weight.shape[-1], residual=True)  # writes into the residual stream
        if ex.bias:
            rule.zeros(ex.up_bias)
            rule.zeros(ex.down_bias)
        if getattr(module, "shared", None) is not None:
            rule.linear(module.shared.up)
            rule.linear(module.shared.down, residual=True)
            if module.shared_gate is not None:
                rule.linear(module.shared_gate)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Mixture of experts (Shazeer et al. 2017; Mixtral): a router scores the experts, `p = "
            "softmax(x·W_r)`, each token goes to its top-k experts and their outputs are mixed, `y = "
            "Σ_(i∈top-k) pᵢ·Eᵢ(x)` (weights renormalised over the k chosen). Parameters grow with the number "
            "of experts, compute per token only with k; an auxiliary load-balancing loss keeps the experts "
            "evenly used.",
            zh="混合专家（Shazeer 等 2017；Mixtral）：路由器给各专家打分 `p = softmax(x·W_r)`，每个 token "
            "只送往得分最高的 k 个专家，输出按权重混合：`y = Σ_(i∈top-k) pᵢ·Eᵢ(x)`（权重在选中的 k "
            "个上重新归一化）。参数量随专家数增长，每个 token 的计算量只随 k 增长；"
            "辅助的负载均衡损失让各专家被均匀使用。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        if a.get("shared_ffn"):
            raise NotCompiledYet(f"block kind {self.name!r}, field shared_ffn = {a['shared_ffn']}: a shared expert "
                                 "cannot be ejected yet (the ejected MoE has routed experts only)")
        from ...eject.pieces import moe

        return moe(a)
