"""``starcoder2``: StarCoder2 (Lozhkov et al. 2024), the ``model.layers`` layout with LayerNorms,
biases everywhere (``use_bias``), a plain tanh-GELU MLP (``c_fc``/``c_proj``), GQA, rotary, an
optional sliding window and tied embeddings."""

from __future__ import annotations

from .base import ACT, F, Family, then, unhooks
from .llama import LAYER, LLAMA_FIELDS, decoder_archs, llama_names, window_hook, window_unhook
from .rope import rope_hook, rope_unhook
from .weights import R

FAMILY = Family(
    model_type="starcoder2",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal"}, "mlp": {"kind": "dense"}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf not in ("rms_norm_eps", "head_dim")),
            F("norm_epsilon", "block.norm.eps", 1e-5),
            F("use_bias", "block.attention.qkv_bias", True),
            F("use_bias", "block.attention.out_bias", True),
            F("use_bias", "block.mlp.bias", True),
            F("residual_dropout", "block.dropout", 0.0),
            F("embedding_dropout", "embeddings.dropout", 0.0),
            F("hidden_act", "block.mlp.activation", "gelu_pytorch_tanh", ACT)),
    archs=decoder_archs("Starcoder2", tie_default=True),
    bare=("Starcoder2Model",),
    base_prefix="model",
    names=llama_names({"mlp.up": R(f"{LAYER}.mlp.c_fc.{{p}}"), "mlp.down": R(f"{LAYER}.mlp.c_proj.{{p}}")}),
    ignored=(r"^lm_head\.weight$",),
    hook=then(rope_hook(10000.0), window_hook(None)),
    unhook=unhooks(rope_unhook(False), window_unhook(False)),
)
