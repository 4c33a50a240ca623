"""``mixtral``: Mixtral (Jiang et al. 2024), LLaMA's layout with a sparse mixture of SwiGLU experts.

HF adds the load-balancing loss (``router_aux_loss_coef``) to the training loss only when
``output_router_logits`` is on, which its default config and the published checkpoints leave
off; so ``block.mlp.aux_loss`` is the coefficient only then, and 0 otherwise (a spec with a
nonzero one exports with ``output_router_logits: true``).
"""

from __future__ import annotations

import copy
from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed
from .llama import DECODER_BASE, LAYER, LLAMA_FIELDS, decoder_archs, llama_names
from .rope import rope_hook, rope_unhook
from .weights import R

MOE = f"{LAYER}.block_sparse_moe"
MOE_V5 = f"{LAYER}.mlp"  # transformers 5 module layout (fused experts)

_rope_hook, _rope_unhook = rope_hook(1e6), rope_unhook(False)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    _rope_hook(cfg, d)
    if not cfg.get("output_router_logits", False):  # HF trains without the load-balancing loss then
        d["block"]["mlp"]["aux_loss"] = 0.0


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    mlp = spec.block.mlp  # (not a mixture: the family's round trip refuses the spec)
    cfg["output_router_logits"] = mlp.kind == "moe" and mlp.aux_loss > 0


FAMILY = Family(
    model_type="mixtral",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False},
        "mlp": {"kind": "moe", "router_bias": False, "normalize_top_k": True,
                "expert": {"kind": "gated", "bias": False}}}},
    fields=(*LLAMA_FIELDS,
            F("num_local_experts", "block.mlp.experts", 8),
            F("num_experts_per_tok", "block.mlp.top_k", 2),
            F("router_aux_loss_coef", "block.mlp.aux_loss", 0.001),
            F("intermediate_size", "block.mlp.expert.ffn"),
            F("hidden_act", "block.mlp.expert.activation", "silu", ACT),
            F("sliding_window", "block.attention.window", None)),
    fixed=(Fixed("router_jitter_noise", (0.0, 0), "plmgraph's router adds no training-time jitter"),),
    archs=decoder_archs("Mixtral", qa=True),
    bare=("MixtralModel",),
    base_prefix="model",
    names=llama_names({
        "mlp.router": [R(f"{MOE}.gate.{{p}}"), R(f"{MOE_V5}.gate.{{p}}")],
        "mlp.experts.up_weight": [
            R(f"{MOE}.experts.{{expert}}.w1.weight", f"{MOE}.experts.{{expert}}.w3.weight", split="halves",
              experts=True),
            R(f"{MOE_V5}.experts.gate_up_proj"),
        ],
        "mlp.experts.down_weight": [R(f"{MOE}.experts.{{expert}}.w2.weight", experts=True),
                                    R(f"{MOE_V5}.experts.down_proj")],
    }),
    ignored=(r"^lm_head\.weight$",),
    hook=_hook,
    unhook=_unhook,
)
