"""``phi3``: Phi-3 (Abdin et al. 2024), LLaMA's function with fused HF tensors: one ``qkv_proj``
(rows q, k, v: plmgraph's own ``qkv`` layout) and one ``gate_up_proj`` (gate rows, then up: the
gated MLP's ``up``); an optional sliding window.  ``longrope`` scaling (the 128k models) is refused
by the rotary table."""

from __future__ import annotations

from .base import ACT, F, Family, then, unhooks
from .llama import FAMILY as LLAMA
from .llama import LAYER, LLAMA_FIELDS, decoder_archs, llama_names, window_hook, window_unhook
from .rope import rope_hook, rope_unhook
from .weights import R

FAMILY = Family(
    model_type="phi3",
    base=LLAMA.base | {"block": {**LLAMA.base["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf != "rms_norm_eps"),
            F("rms_norm_eps", "block.norm.eps", 1e-5),
            F("resid_pdrop", "block.dropout", 0.0),
            F("embd_pdrop", "embeddings.dropout", 0.0),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs=decoder_archs("Phi3"),
    bare=("Phi3Model",),
    base_prefix="model",
    names=llama_names({"mlp.up": R(f"{LAYER}.mlp.gate_up_proj.{{p}}"), "mlp.down": R(f"{LAYER}.mlp.down_proj.{{p}}")})
    | {"attn.qkv": R(f"{LAYER}.self_attn.qkv_proj.{{p}}")},
    ignored=LLAMA.ignored,
    # Phi3Config defaults pad_token_id to 32000, an embedding row only for its own vocabulary.
    extra_hf={"pad_token_id": None},
    hook=then(rope_hook(10000.0), window_hook(None)),
    unhook=unhooks(rope_unhook(False), window_unhook(False)),
)
