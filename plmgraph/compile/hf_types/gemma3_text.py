"""``gemma3_text``: Gemma 3's text decoder (Gemma team 2025; ``Gemma3ForCausalLM`` with a
``Gemma3TextConfig``), Gemma 2's sandwich layout with per-head q/k RMSNorm (``qk_norm``), no
soft-capping by default, and local (sliding) and global layers in a ``layer_types`` pattern (five
local layers, then a global one: the 4.x ``sliding_window_pattern: 6``) with two rotary bases:
``rope_parameters.full_attention`` (the model's ``position``, 1e6, with its scaling) and
``rope_parameters.sliding_attention`` (the local layers' own ``rope`` in the decoder's
``pattern``, 1e4; 4.x: ``rope_local_base_freq``)."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, bare, last_token_classifier, lm, need, then, unhooks
from .gemma2 import FAMILY as GEMMA2
from .gemma2 import FIELDS, NAMES, optional, scale_hook, scale_unhook, softcap_hook, softcap_unhook
from .layer_types import from_pattern, to_pattern
from .llama import LAYER
from .rope import rope_hook, rope_unhook
from .weights import R

GLOBAL_THETA, LOCAL_THETA = 1_000_000.0, 10_000.0


def _rope_of(params: dict[str, Any], default_theta: float) -> dict[str, Any]:
    """One layer type's rope parameters -> a spec ``position`` mapping (via the shared rope hook)."""
    d: dict[str, Any] = {"sizes": {}}
    rope_hook(default_theta)({"rope_parameters": params, "max_position_embeddings": 1}, d)
    return d["position"]


def rope_hook_gemma3(cfg: Cfg, d: dict[str, Any]) -> None:
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and any(isinstance(v, dict) for v in rp.values()):  # per layer type (transformers 5)
        unknown = set(rp) - {"full_attention", "sliding_attention"}
        if unknown:
            raise ConversionError(f"config.json: rope_parameters for layer types {sorted(unknown)} have no "
                                  "plmgraph equivalent; supported: full_attention, sliding_attention")
        full = dict(rp.get("full_attention") or {})
        local = dict(rp.get("sliding_attention") or {})
    else:  # transformers 4.x: rope_theta + rope_scaling (global layers), rope_local_base_freq
        full = dict(cfg.get("rope_scaling") or {}) | (rp or {})
        full.setdefault("rope_theta", cfg.get("rope_theta", GLOBAL_THETA))
        local = {"rope_type": "default", "rope_theta": cfg.get("rope_local_base_freq", LOCAL_THETA)}
    for name, p in (("full_attention", full), ("sliding_attention", local)):
        kind = p.get("rope_type") or p.get("type") or "default"
        if kind == "dynamic":
            raise ConversionError(f"config.json: rope_parameters.{name} rope_type 'dynamic' is not supported "
                                  "with Gemma 3's two rotary bases; supported: default, linear, llama3, yarn")
    sub = {"max_position_embeddings": cfg.get("max_position_embeddings", 131072)}
    d2: dict[str, Any] = {"sizes": {}}
    rope_hook(GLOBAL_THETA)(sub | {"rope_parameters": full}, d2)
    d["position"] = pos = d2["position"]
    lpos = _rope_of(local, LOCAL_THETA)
    local_rope = None
    if (lpos["theta"], lpos.get("scaling")) != (pos["theta"], pos.get("scaling")):
        local_rope = {"theta": lpos["theta"]} | ({"scaling": lpos["scaling"]} if lpos.get("scaling") else {})
    n = cfg["num_hidden_layers"]
    every = cfg.get("sliding_window_pattern", 6)
    types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % every else "full_attention"
                                       for i in range(n)]
    to_pattern(cfg, d, list(types), optional(cfg, "sliding_window", 4096), local_rope)


def rope_unhook_gemma3(spec: ModelSpec, cfg: Cfg) -> None:
    rope_unhook(False)(spec, cfg)
    full = cfg.pop("rope_parameters")
    types, window, rope = from_pattern(spec, cfg, local_rope=True)
    if rope is None:
        local = dict(full)
    else:
        local = {"rope_theta": rope.theta, "rope_type": "default"}
        if rope.scaling is not None:
            sc = rope.scaling
            local |= {"rope_type": sc.kind, "factor": sc.factor}
            for hf, name in (("original_max_position_embeddings", "original_max_positions"),
                             ("low_freq_factor", "low_freq_factor"), ("high_freq_factor", "high_freq_factor")):
                if getattr(sc, name) is not None:
                    local[hf] = getattr(sc, name)
    need(spec.position.scaling is None or spec.position.scaling.kind != "dynamic", cfg["model_type"],
         "dynamic rope scaling")
    cfg["rope_parameters"] = {"full_attention": full, "sliding_attention": local}
    cfg["layer_types"], cfg["sliding_window"] = types, window


FAMILY = Family(
    model_type="gemma3_text",
    base=GEMMA2.base | {"block": {**GEMMA2.base["block"], "attention": {
        "kind": "self", "mask": "causal", "qk_norm": True}}},
    fields=(*FIELDS, F("hidden_activation", "block.mlp.activation", "gelu_pytorch_tanh", ACT)),
    fixed=(Fixed("use_bidirectional_attention", (False, None), "Gemma 3's bidirectional (embedding) variant "
                 "is not supported"),),
    archs={"Gemma3ForCausalLM": lm(True), "Gemma3TextModel": bare,
           "Gemma3TextForSequenceClassification": last_token_classifier},
    bare=("Gemma3TextModel",),
    base_prefix="model",
    names=NAMES | {
        "attn.q_norm": R(f"{LAYER}.self_attn.q_norm.{{p}}"),
        "attn.k_norm": R(f"{LAYER}.self_attn.k_norm.{{p}}"),
    },
    ignored=GEMMA2.ignored,
    hook=then(then(scale_hook, softcap_hook(None, None)), rope_hook_gemma3),
    unhook=unhooks(scale_unhook, softcap_unhook, rope_unhook_gemma3),
)
