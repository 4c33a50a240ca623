"""``qwen2``: Qwen2 / Qwen2.5 (Qwen team 2024), LLaMA's layout with biases on q, k, v (not on o).

A sliding window only on some layers (``max_window_layers`` < layers with ``use_sliding_window``)
is refused: the spec's window is the same in every layer.
"""

from __future__ import annotations

from .base import ACT, F, Family, then, unhooks
from .llama import FAMILY as LLAMA
from .llama import LLAMA_FIELDS, decoder_archs, qa_renamed, window_hook, window_unhook
from .rope import rope_hook, rope_unhook

FAMILY = Family(
    model_type="qwen2",
    base=LLAMA.base | {"block": {**LLAMA.base["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": True, "out_bias": False}}},
    fields=(*LLAMA_FIELDS, F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs=decoder_archs("Qwen2", qa=True),
    renamed=qa_renamed("Qwen2"),
    bare=("Qwen2Model",),
    base_prefix="model",
    names=LLAMA.names,
    ignored=LLAMA.ignored,
    hook=then(rope_hook(10000.0), window_hook(4096)),
    unhook=unhooks(rope_unhook(False), window_unhook(True)),
)
