"""``qwen3_moe``: Qwen3-MoE (Qwen team 2025), Qwen3's attention (per-head RMSNorm on queries and keys)
with Mixtral's sparse mixture of SwiGLU experts, whose top-k weights are renormalised only when
``norm_topk_prob`` (HF's default: off).

Every layer is a mixture (``decoder_sparse_step: 1``, ``mlp_only_layers: []``); a dense MLP on some
layers is refused, since the spec's MLP is one kind in every layer.  ``intermediate_size`` (the width
of those dense layers) round-trips through ``sizes.ffn``; ``moe_intermediate_size`` is each expert's.
As in Mixtral, the load-balancing loss counts only with ``output_router_logits``.
"""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed
from .llama import LAYER, LLAMA_FIELDS, decoder_archs, qa_renamed
from .qwen3 import FAMILY as QWEN3
from .rope import rope_hook, rope_unhook
from .weights import R

MLP = f"{LAYER}.mlp"
_rope_hook, _rope_unhook = rope_hook(10000.0), rope_unhook(False)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    _rope_hook(cfg, d)
    if not cfg.get("output_router_logits", False):
        d["block"]["mlp"]["aux_loss"] = 0.0
    if cfg.get("use_sliding_window") and cfg.get("sliding_window") is not None:
        d["block"]["attention"]["window"] = int(cfg["sliding_window"])


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    mlp = spec.block.mlp
    cfg["output_router_logits"] = mlp.kind == "moe" and mlp.aux_loss > 0
    w = spec.block.attention.window
    cfg["use_sliding_window"] = w is not None
    cfg["sliding_window"] = w


FAMILY = Family(
    model_type="qwen3_moe",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "rmsnorm"},
                    "attention": {"kind": "self", "mask": "causal", "qk_norm": True},
                    "mlp": {"kind": "moe", "router_bias": False, "expert": {"kind": "gated", "bias": False}}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf != "head_dim"),
            F("head_dim", "block.attention.head_dim", lambda c: c["hidden_size"] // c["num_attention_heads"]),
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            # transformers 5 saves num_experts under its attribute-map name num_local_experts
            F("num_experts", "block.mlp.experts", lambda c: c.get("num_local_experts") or 128),
            F("num_experts_per_tok", "block.mlp.top_k", 8),
            F("norm_topk_prob", "block.mlp.normalize_top_k", False),
            F("router_aux_loss_coef", "block.mlp.aux_loss", 0.001),
            F("moe_intermediate_size", "block.mlp.expert.ffn", 768),
            F("hidden_act", "block.mlp.expert.activation", "silu", ACT)),
    fixed=(Fixed("decoder_sparse_step", (1, None), "a dense MLP on some layers: the spec's MLP is the same "
                 "kind in every layer"),
           Fixed("mlp_only_layers", ([], None), "a dense MLP on the listed layers: the spec's MLP is the same "
                 "kind in every layer")),
    archs=decoder_archs("Qwen3Moe", qa=True),
    renamed=qa_renamed("Qwen3Moe"),
    bare=("Qwen3MoeModel",),
    base_prefix="model",
    names={k: v for k, v in QWEN3.names.items() if not k.startswith("mlp.")} | {
        "mlp.router": R(f"{MLP}.gate.{{p}}"),
        # save_pretrained writes one tensor per expert (the 4.x layout); the fused 5.x names are also read
        "mlp.experts.up_weight": [
            R(f"{MLP}.experts.{{expert}}.gate_proj.weight", f"{MLP}.experts.{{expert}}.up_proj.weight",
              split="halves", experts=True),
            R(f"{MLP}.experts.gate_up_proj")],
        "mlp.experts.down_weight": [R(f"{MLP}.experts.{{expert}}.down_proj.weight", experts=True),
                                    R(f"{MLP}.experts.down_proj")],
    },
    ignored=QWEN3.ignored,
    hook=_hook,
    unhook=_unhook,
)
