"""``llama``: LLaMA (Touvron et al. 2023), pre-RMSNorm, rotary, SwiGLU, GQA.

`LLAMA_FIELDS`, `DECODER_BASE` and `llama_names` are the layout the later rotary decoders
share (Mixtral, GLM-4, and the Mistral / Qwen2 / Gemma line), so each of those is its
differences from these.
"""

from __future__ import annotations

import copy
from typing import Any

from .base import ACT, F, Family, Fixed, last_token_classifier, lm
from .rope import rope_hook, rope_unhook
from .weights import QKV, R

LLAMA_FIELDS = (
    F("vocab_size", "sizes.vocab"),
    F("hidden_size", "sizes.hidden"),
    F("num_hidden_layers", "sizes.layers"),
    F("num_attention_heads", "sizes.heads"),
    F("intermediate_size", "sizes.ffn"),
    F("max_position_embeddings", "sizes.max_positions", 2048),
    F("rms_norm_eps", "block.norm.eps", 1e-6),
    F("num_key_value_heads", "block.attention.kv_heads", lambda c: c["num_attention_heads"]),
    F("head_dim", "block.attention.head_dim", lambda c: c["hidden_size"] // c["num_attention_heads"]),
    F("attention_dropout", "block.attention.dropout", 0.0),
)
DECODER_BASE = {
    "family": "decoder",
    "block": {"placement": "pre", "norm": {"kind": "rmsnorm"},
              "attention": {"kind": "self", "mask": "causal"}},
}
#: One decoder layer of the ``model.layers.<layer>`` layout.
LAYER = "model.layers.{layer}"


def llama_names(mlp: dict[str, Any]) -> dict[str, Any]:
    """LlamaForCausalLM's tensor names, with `mlp` the MLP's rules (the part the rotary decoders vary)."""
    return {
        "token": R("model.embed_tokens.{p}"),
        "attn_norm": R(f"{LAYER}.input_layernorm.{{p}}"),
        "attn.qkv": QKV(LAYER + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{LAYER}.self_attn.o_proj.{{p}}"),
        "mlp_norm": R(f"{LAYER}.post_attention_layernorm.{{p}}"),
        **mlp,
        "final_norm": R("model.norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
    }


FAMILY = Family(
    model_type="llama",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "mlp": {"kind": "gated"}}},
    fields=(*LLAMA_FIELDS,
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("mlp_bias", "block.mlp.bias", False),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    fixed=(Fixed("pretraining_tp", (1, None), "tensor-parallel emulation changes the numerics"),),
    archs={"LlamaForCausalLM": lm(False), "LlamaForSequenceClassification": last_token_classifier},
    names=llama_names({
        "mlp.up": R(f"{LAYER}.mlp.gate_proj.{{p}}", f"{LAYER}.mlp.up_proj.{{p}}", split="halves"),
        "mlp.down": R(f"{LAYER}.mlp.down_proj.{{p}}"),
    }),
    ignored=(r"^lm_head\.weight$",),
    hook=rope_hook(10000.0),
    unhook=rope_unhook(False),
)
