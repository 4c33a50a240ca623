"""``mixtral``: Mixtral (Jiang et al. 2024), LLaMA's layout with a sparse mixture of SwiGLU experts."""

from __future__ import annotations

import copy

from .base import ACT, F, Family, Fixed, lm
from .llama import DECODER_BASE, LAYER, LLAMA_FIELDS, llama_names
from .rope import rope_hook, rope_unhook
from .weights import R

MOE = f"{LAYER}.block_sparse_moe"
MOE_V5 = f"{LAYER}.mlp"  # transformers 5 module layout (fused experts)

FAMILY = Family(
    model_type="mixtral",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False},
        "mlp": {"kind": "moe", "router_bias": False, "normalize_top_k": True,
                "expert": {"kind": "gated", "bias": False}}}},
    fields=(*LLAMA_FIELDS,
            F("num_local_experts", "block.mlp.experts", 8),
            F("num_experts_per_tok", "block.mlp.top_k", 2),
            F("router_aux_loss_coef", "block.mlp.aux_loss", 0.001),
            F("intermediate_size", "block.mlp.expert.ffn"),
            F("hidden_act", "block.mlp.expert.activation", "silu", ACT),
            F("sliding_window", "block.attention.window", None)),
    fixed=(Fixed("router_jitter_noise", (0.0, 0), "plmgraph's router adds no training-time jitter"),),
    archs={"MixtralForCausalLM": lm(False)},
    names=llama_names({
        "mlp.router": [R(f"{MOE}.gate.{{p}}"), R(f"{MOE_V5}.gate.{{p}}")],
        "mlp.experts.up_weight": [
            R(f"{MOE}.experts.{{expert}}.w1.weight", f"{MOE}.experts.{{expert}}.w3.weight", split="halves",
              experts=True),
            R(f"{MOE_V5}.experts.gate_up_proj"),
        ],
        "mlp.experts.down_weight": [R(f"{MOE}.experts.{{expert}}.w2.weight", experts=True),
                                    R(f"{MOE_V5}.experts.down_proj")],
    }),
    ignored=(r"^lm_head\.weight$",),
    hook=rope_hook(1e6),
    unhook=rope_unhook(False),
)
