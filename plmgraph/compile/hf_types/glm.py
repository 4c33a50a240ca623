"""``glm``: GLM-4 in transformers, LLaMA's layout with half-rotary interleaved positions and a fused gate_up."""

from __future__ import annotations

import copy

from .base import ACT, F, Family
from .llama import DECODER_BASE, LAYER, LLAMA_FIELDS, decoder_archs, llama_names
from .rope import rope_hook, rope_unhook
from .weights import R

FAMILY = Family(
    model_type="glm",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "attention": {
        "kind": "self", "mask": "causal", "out_bias": False}, "mlp": {"kind": "gated", "bias": False}}},
    fields=(*LLAMA_FIELDS,
            F("attention_bias", "block.attention.qkv_bias", True),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs=decoder_archs("Glm"),
    bare=("GlmModel",),
    base_prefix="model",
    names=llama_names({
        "mlp.up": R(f"{LAYER}.mlp.gate_up_proj.{{p}}"),
        "mlp.down": R(f"{LAYER}.mlp.down_proj.{{p}}"),
    }),
    ignored=(r"^lm_head\.weight$",),
    hook=rope_hook(10000.0, 0.5, interleaved=True),
    unhook=rope_unhook(True),
    extra_hf={"pad_token_id": 0, "eos_token_id": 1},
)
