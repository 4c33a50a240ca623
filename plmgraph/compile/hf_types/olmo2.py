"""``olmo2``: OLMo 2 (OLMo et al. 2024, "2 OLMo 2 Furious"), LLaMA's layout with the norms moved onto the
sublayer outputs inside the residual, ``h = x + norm(attn(x))``, ``out = h + norm(mlp(h))``, and no norm on
the sublayer inputs (``block.placement: output``; HF's ``post_attention_layernorm`` /
``post_feedforward_layernorm``), and an RMSNorm over the whole query and key projections before they split
into heads (``block.attention.qk_norm`` with ``qk_norm_scope: projection``: widths heads * head_dim and
kv_heads * head_dim). No biases unless ``attention_bias``; ``head_dim`` is hidden / heads (Olmo2Config has
no head_dim of its own); RMSNorm eps 1e-5."""

from __future__ import annotations

from .base import ACT, F, Family, bare, last_token_classifier, lm
from .llama import FAMILY as LLAMA
from .llama import LAYER, LLAMA_FIELDS
from .rope import rope_hook, rope_unhook
from .weights import R

FAMILY = Family(
    model_type="olmo2",
    base=LLAMA.base | {"block": {**LLAMA.base["block"], "placement": "output", "attention": {
        "kind": "self", "mask": "causal", "qk_norm": True, "qk_norm_scope": "projection"}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf not in ("head_dim", "rms_norm_eps")),
            F("rms_norm_eps", "block.norm.eps", 1e-5),
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs={"Olmo2ForCausalLM": lm(False), "Olmo2Model": bare,
           "Olmo2ForSequenceClassification": last_token_classifier},
    bare=("Olmo2Model",),
    base_prefix="model",
    names={k: v for k, v in LLAMA.names.items() if k not in ("attn_norm", "mlp_norm")} | {
        "attn_post_norm": R(f"{LAYER}.post_attention_layernorm.{{p}}"),
        "mlp_post_norm": R(f"{LAYER}.post_feedforward_layernorm.{{p}}"),
        "attn.q_norm": R(f"{LAYER}.self_attn.q_norm.{{p}}"),
        "attn.k_norm": R(f"{LAYER}.self_attn.k_norm.{{p}}"),
        "mlp.up": LLAMA.names["mlp.up"],
        "mlp.down": LLAMA.names["mlp.down"],
    },
    ignored=LLAMA.ignored,
    hook=rope_hook(10000.0),
    unhook=rope_unhook(False),
)
