"""``phi``: Phi-1, Phi-1.5, Phi-2 (Microsoft 2023), attention and a GELU MLP in parallel on one shared
LayerNorm (GPT-J's block), partial rotary in the rotate-half layout (``partial_rotary_factor``, 0.5
by default), biases on every projection and on the LM head, and optionally a LayerNorm on queries and
keys shared by the heads (``qk_layernorm``: ``block.attention.qk_norm``)."""

from __future__ import annotations

from .base import ACT, F, Family, bare, last_token_classifier, lm, token_classifier
from .llama import LAYER, LLAMA_FIELDS
from .rope import rope_hook, rope_unhook
from .weights import QKV, R

FAMILY = Family(
    model_type="phi",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "residual": {"kind": "parallel", "shared_norm": True},
                    "attention": {"kind": "self", "mask": "causal", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf not in ("rms_norm_eps",)),
            F("layer_norm_eps", "block.norm.eps", 1e-5),
            F("qk_layernorm", "block.attention.qk_norm", False),
            F("resid_pdrop", "block.dropout", 0.0),
            F("embd_pdrop", "embeddings.dropout", 0.0),
            F("hidden_act", "block.mlp.activation", "gelu_new", ACT)),
    archs={"PhiForCausalLM": lm(False, bias=True), "PhiModel": bare,
           "PhiForSequenceClassification": last_token_classifier, "PhiForTokenClassification": token_classifier},
    bare=("PhiModel",),
    base_prefix="model",
    names={
        "token": R("model.embed_tokens.{p}"),
        "attn_norm": R(f"{LAYER}.input_layernorm.{{p}}"),
        "attn.qkv": QKV(LAYER + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{LAYER}.self_attn.dense.{{p}}"),
        "attn.q_norm": R(f"{LAYER}.self_attn.q_layernorm.{{p}}"),
        "attn.k_norm": R(f"{LAYER}.self_attn.k_layernorm.{{p}}"),
        "mlp.up": R(f"{LAYER}.mlp.fc1.{{p}}"),
        "mlp.down": R(f"{LAYER}.mlp.fc2.{{p}}"),
        "final_norm": R("model.final_layernorm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/lm.bias": R("lm_head.bias"),
        "head/sequence_classification": R("score.{p}"),
        "head/token_classification": R("score.{p}"),
    },
    ignored=(),
    hook=rope_hook(10000.0, default_fraction=0.5),
    unhook=rope_unhook(True),
)
