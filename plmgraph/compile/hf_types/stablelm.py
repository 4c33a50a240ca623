"""``stablelm``: StableLM (Stability AI 2023-24), LLaMA's layout with biased LayerNorms, partial
rotary (``partial_rotary_factor``, 0.25 by default), optional q/k/v biases (``use_qkv_bias``) and an
optional parallel residual on one shared norm (``use_parallel_residual``).  Its ``qk_layernorm``
(a separate LayerNorm per head) has no spec equivalent (the spec's qk-norm is one norm shared by the
heads) and is refused."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, need
from .llama import FAMILY as LLAMA
from .llama import LLAMA_FIELDS, decoder_archs
from .rope import rope_hook, rope_unhook

_rope_hook, _rope_unhook = rope_hook(10000.0, default_fraction=0.25), rope_unhook(True)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    _rope_hook(cfg, d)
    if cfg.get("use_parallel_residual", False):
        d["block"]["residual"] = {"kind": "parallel", "shared_norm": True}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    res = spec.block.residual
    need(res.kind == "sequential" or (res.kind == "parallel" and res.shared_norm), "stablelm",
         "a parallel residual with two norms")
    cfg["use_parallel_residual"] = res.kind == "parallel"


FAMILY = Family(
    model_type="stablelm",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal", "out_bias": False},
                    "mlp": {"kind": "gated", "bias": False}}},
    fields=(*(f for f in LLAMA_FIELDS if f.hf not in ("rms_norm_eps", "head_dim")),
            F("layer_norm_eps", "block.norm.eps", 1e-5),
            F("use_qkv_bias", "block.attention.qkv_bias", False),
            F("hidden_dropout", "block.dropout", 0.0),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    fixed=(Fixed("qk_layernorm", (False,), "a separate LayerNorm per head"),),
    archs=decoder_archs("StableLm"),
    bare=("StableLmModel",),
    base_prefix="model",
    names=LLAMA.names,
    ignored=LLAMA.ignored,
    hook=_hook,
    unhook=_unhook,
)
