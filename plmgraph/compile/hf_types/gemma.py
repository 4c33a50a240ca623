"""``gemma``: Gemma (Gemma team 2024), LLaMA's layout with RMSNorm scaling by (1 + weight)
(``norm.offset: 1``), token embeddings times sqrt(hidden) (``embeddings.scale``), a tanh-GELU
GeGLU, tied embeddings, and head_dim (256) independent of hidden / heads."""

from __future__ import annotations

from .base import ACT, F, Family, Fixed
from .llama import FAMILY as LLAMA
from .llama import LLAMA_FIELDS, decoder_archs
from .rope import rope_hook, rope_unhook

FAMILY = Family(
    model_type="gemma",
    base={"family": "decoder", "embeddings": {"scale": True},
          "block": {"placement": "pre", "norm": {"kind": "rmsnorm", "offset": 1.0},
                    "attention": {"kind": "self", "mask": "causal"}, "mlp": {"kind": "gated", "bias": False}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf != "head_dim"),
            F("head_dim", "block.attention.head_dim", 256),
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("hidden_act", "block.mlp.activation", "gelu_pytorch_tanh", ACT)),
    fixed=(Fixed("use_bidirectional_attention", (False, None), "Gemma's bidirectional (embedding) variant "
                 "is not supported"),),
    archs=decoder_archs("Gemma", tie_default=True),
    bare=("GemmaModel",),
    base_prefix="model",
    names=LLAMA.names,
    ignored=LLAMA.ignored,
    hook=rope_hook(10000.0),
    unhook=rope_unhook(False),
)
