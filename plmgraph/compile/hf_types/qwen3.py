"""``qwen3``: Qwen3 (Qwen team 2025), LLaMA's layout with per-head RMSNorm on queries and keys
(``block.attention.qk_norm``), no q/k/v bias unless ``attention_bias``, head_dim 128 by default."""

from __future__ import annotations

from .base import ACT, F, Family, then, unhooks
from .llama import FAMILY as LLAMA
from .llama import LAYER, LLAMA_FIELDS, decoder_archs, qa_renamed, window_hook, window_unhook
from .rope import rope_hook, rope_unhook
from .weights import R

FAMILY = Family(
    model_type="qwen3",
    base=LLAMA.base | {"block": {**LLAMA.base["block"], "attention": {
        "kind": "self", "mask": "causal", "qk_norm": True}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf != "head_dim"),
            F("head_dim", "block.attention.head_dim", 128),
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs=decoder_archs("Qwen3", qa=True),
    renamed=qa_renamed("Qwen3"),
    bare=("Qwen3Model",),
    base_prefix="model",
    names=LLAMA.names | {
        "attn.q_norm": R(f"{LAYER}.self_attn.q_norm.{{p}}"),
        "attn.k_norm": R(f"{LAYER}.self_attn.k_norm.{{p}}"),
    },
    ignored=LLAMA.ignored,
    hook=then(rope_hook(10000.0), window_hook(4096)),
    unhook=unhooks(rope_unhook(False), window_unhook(True)),
)
