"""``mistral``: Mistral 7B (Jiang et al. 2023), LLaMA's layout with a sliding attention window."""

from __future__ import annotations

from .base import ACT, F, Family, then, unhooks
from .llama import FAMILY as LLAMA
from .llama import LLAMA_FIELDS, decoder_archs, window_hook, window_unhook
from .rope import rope_hook, rope_unhook

FAMILY = Family(
    model_type="mistral",
    base=LLAMA.base | {"block": {**LLAMA.base["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False}}},
    fields=(*LLAMA_FIELDS, F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs=decoder_archs("Mistral", qa=True),
    bare=("MistralModel",),
    base_prefix="model",
    names=LLAMA.names,
    ignored=LLAMA.ignored,
    hook=then(rope_hook(10000.0), window_hook(4096)),
    unhook=unhooks(rope_unhook(False), window_unhook(False)),
)
