"""``qwen2_moe``: Qwen1.5-MoE / Qwen2-MoE (Qwen team 2024), Qwen2's attention (biases on q, k, v) with a
mixture of SwiGLU experts plus a shared SwiGLU expert every token runs, scaled by a per-token sigmoid
gate (``block.mlp.shared_ffn``, ``block.mlp.shared_gate``).

As for Qwen3-MoE, every layer must be a mixture (``decoder_sparse_step: 1``, ``mlp_only_layers: []``),
``intermediate_size`` round-trips through ``sizes.ffn`` and the load-balancing loss counts only with
``output_router_logits``.
"""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, need
from .llama import LAYER, LLAMA_FIELDS, decoder_archs, window_hook, window_unhook
from .qwen2 import FAMILY as QWEN2
from .qwen3_moe import FAMILY as QWEN3_MOE
from .rope import rope_hook, rope_unhook
from .weights import R

MLP = f"{LAYER}.mlp"
_rope_hook, _rope_unhook = rope_hook(10000.0), rope_unhook(False)
_window_hook, _window_unhook = window_hook(4096), window_unhook(True)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    _rope_hook(cfg, d)
    _window_hook(cfg, d)
    if not cfg.get("output_router_logits", False):
        d["block"]["mlp"]["aux_loss"] = 0.0


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    _window_unhook(spec, cfg)
    mlp = spec.block.mlp
    need(mlp.kind == "moe" and mlp.shared_gate, "qwen2_moe", "a mixture without a gated shared expert")
    cfg["output_router_logits"] = mlp.aux_loss > 0


FAMILY = Family(
    model_type="qwen2_moe",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "rmsnorm"},
                    "attention": {"kind": "self", "mask": "causal", "out_bias": False},
                    "mlp": {"kind": "moe", "router_bias": False, "shared_gate": True,
                            "expert": {"kind": "gated", "bias": False}}}},
    fields=(*LLAMA_FIELDS,
            F("qkv_bias", "block.attention.qkv_bias", True),
            F("num_experts", "block.mlp.experts", lambda c: c.get("num_local_experts") or 60),
            F("num_experts_per_tok", "block.mlp.top_k", 4),
            F("norm_topk_prob", "block.mlp.normalize_top_k", False),
            F("router_aux_loss_coef", "block.mlp.aux_loss", 0.001),
            F("moe_intermediate_size", "block.mlp.expert.ffn", 1408),
            F("shared_expert_intermediate_size", "block.mlp.shared_ffn", 5632),
            F("hidden_act", "block.mlp.expert.activation", "silu", ACT)),
    fixed=QWEN3_MOE.fixed,
    archs=decoder_archs("Qwen2Moe", qa=True),
    bare=("Qwen2MoeModel",),
    base_prefix="model",
    names={k: v for k, v in QWEN2.names.items() if not k.startswith("mlp.")} | {
        k: v for k, v in QWEN3_MOE.names.items() if k.startswith("mlp.")} | {
        "mlp.shared.up": R(f"{MLP}.shared_expert.gate_proj.{{p}}", f"{MLP}.shared_expert.up_proj.{{p}}",
                           split="halves"),
        "mlp.shared.down": R(f"{MLP}.shared_expert.down_proj.{{p}}"),
        "mlp.shared_gate": R(f"{MLP}.shared_expert_gate.{{p}}"),
    },
    ignored=QWEN2.ignored,
    hook=_hook,
    unhook=_unhook,
)
