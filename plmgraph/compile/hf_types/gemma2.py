"""``gemma2``: Gemma 2 (Gemma team 2024), Gemma's layout with a norm before and after each sublayer
(``placement: sandwich``: input_layernorm / post_attention_layernorm around attention,
pre_feedforward_layernorm / post_feedforward_layernorm around the MLP), scores soft-capped
(``block.attention.softcap``: attn_logit_softcapping), logits soft-capped (the lm head's
``softcap``: final_logit_softcapping), the score scale from ``query_pre_attn_scalar``, and sliding
and global layers alternating (``layer_types`` -> the decoder's ``pattern``)."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, need, then, unhooks
from .gemma import FAMILY as GEMMA
from .layer_types import from_pattern, to_pattern
from .llama import LAYER, LLAMA_FIELDS, decoder_archs
from .rope import rope_hook, rope_unhook
from .weights import R

FIELDS = (*(f for f in LLAMA_FIELDS if f.hf != "head_dim"),
          F("head_dim", "block.attention.head_dim", 256),
          F("attention_bias", "block.attention.qkv_bias", False),
          F("attention_bias", "block.attention.out_bias", False))


def optional(cfg: Cfg, key: str, default: Any) -> Any:
    """``cfg[key]`` where an explicit null means none (unlike `cfg_value`, which falls back to the default)."""
    return cfg[key] if key in cfg else default


def scale_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    """``query_pre_attn_scalar`` q: scores scale by q**-0.5 (none when q is head_dim, the usual 1/sqrt(d))."""
    q = optional(cfg, "query_pre_attn_scalar", 256)
    if q != d["block"]["attention"].get("head_dim", 256):
        d["block"]["attention"]["scale"] = float(q) ** -0.5


def scale_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    at = next(iter(spec.stacks.values())).block.attention
    if at.scale is None:
        cfg["query_pre_attn_scalar"] = at.head_dim
    else:
        q = at.scale ** -2
        cfg["query_pre_attn_scalar"] = round(q) if abs(q - round(q)) < 1e-6 * max(1.0, q) else q


def softcap_hook(attn_default: float | None, final_default: float | None) -> Any:
    """attn_logit_softcapping -> block.attention.softcap; final_logit_softcapping -> the lm head's softcap."""

    def hook(cfg: Cfg, d: dict[str, Any]) -> None:
        attn = optional(cfg, "attn_logit_softcapping", attn_default)
        if attn is not None:
            d["block"]["attention"]["softcap"] = float(attn)
        final = optional(cfg, "final_logit_softcapping", final_default)
        if final is not None:
            for h in d["heads"]:
                if h["kind"] == "lm":
                    h["softcap"] = float(final)

    return hook


def softcap_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["attn_logit_softcapping"] = next(iter(spec.stacks.values())).block.attention.softcap
    lm = [h for h in spec.heads if h.kind == "lm"]
    cfg["final_logit_softcapping"] = lm[0].softcap if lm else None
    need(all(h.kind != "lm" or h.softcap == cfg["final_logit_softcapping"] for h in spec.heads),
         cfg["model_type"], "several lm heads")


def alternating_default(cfg: Cfg) -> list[str]:
    """Gemma 2's default layer_types: sliding, full, sliding, ... (layer 0 slides)."""
    return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(cfg["num_hidden_layers"])]


def pattern_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    to_pattern(cfg, d, list(cfg.get("layer_types") or alternating_default(cfg)), optional(cfg, "sliding_window", 4096))


def pattern_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    types, window, _ = from_pattern(spec, cfg)
    cfg["layer_types"], cfg["sliding_window"] = types, window


NAMES = {k: v for k, v in GEMMA.names.items() if k != "mlp_norm"} | {
    "attn_post_norm": R(f"{LAYER}.post_attention_layernorm.{{p}}"),
    "mlp_norm": R(f"{LAYER}.pre_feedforward_layernorm.{{p}}"),
    "mlp_post_norm": R(f"{LAYER}.post_feedforward_layernorm.{{p}}"),
}

FAMILY = Family(
    model_type="gemma2",
    base=GEMMA.base | {"block": {**GEMMA.base["block"], "placement": "sandwich"}},
    fields=(*FIELDS, F("hidden_activation", "block.mlp.activation", "gelu_pytorch_tanh", ACT)),
    fixed=(Fixed("use_bidirectional_attention", (False, None), "Gemma 2's bidirectional (embedding) variant "
                 "is not supported"),),
    archs=decoder_archs("Gemma2", tie_default=True),
    bare=("Gemma2Model",),
    base_prefix="model",
    names=NAMES,
    ignored=GEMMA.ignored,
    hook=then(then(then(rope_hook(10000.0), scale_hook), softcap_hook(50.0, 30.0)), pattern_hook),
    unhook=unhooks(rope_unhook(False), scale_unhook, softcap_unhook, pattern_unhook),
)
