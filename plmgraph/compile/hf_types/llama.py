"""``llama``: LLaMA (Touvron et al. 2023), pre-RMSNorm, rotary, SwiGLU, GQA.

`LLAMA_FIELDS`, `DECODER_BASE` and `llama_names` are the layout the later rotary decoders
share (Mixtral, GLM-4, and the Mistral / Qwen2 / Gemma line), so each of those is its
differences from these.
"""

from __future__ import annotations

import copy
from typing import Any

from .base import ACT, F, Family, Fixed, bare, last_token_classifier, lm, question_answering, token_classifier
from .rope import rope_hook, rope_unhook
from .weights import QKV, R

LLAMA_FIELDS = (
    F("vocab_size", "sizes.vocab"),
    F("hidden_size", "sizes.hidden"),
    F("num_hidden_layers", "sizes.layers"),
    F("num_attention_heads", "sizes.heads"),
    F("intermediate_size", "sizes.ffn"),
    F("max_position_embeddings", "sizes.max_positions", 2048),
    F("rms_norm_eps", "block.norm.eps", 1e-6),
    F("num_key_value_heads", "block.attention.kv_heads", lambda c: c["num_attention_heads"]),
    F("head_dim", "block.attention.head_dim", lambda c: c["hidden_size"] // c["num_attention_heads"]),
    F("attention_dropout", "block.attention.dropout", 0.0),
)
DECODER_BASE = {
    "family": "decoder",
    "block": {"placement": "pre", "norm": {"kind": "rmsnorm"},
              "attention": {"kind": "self", "mask": "causal"}},
}
#: One decoder layer of the ``model.layers.<layer>`` layout.
LAYER = "model.layers.{layer}"


def llama_names(mlp: dict[str, Any]) -> dict[str, Any]:
    """LlamaForCausalLM's tensor names, with `mlp` the MLP's rules (the part the rotary decoders vary)."""
    return {
        "token": R("model.embed_tokens.{p}"),
        "attn_norm": R(f"{LAYER}.input_layernorm.{{p}}"),
        "attn.qkv": QKV(LAYER + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{LAYER}.self_attn.o_proj.{{p}}"),
        "mlp_norm": R(f"{LAYER}.post_attention_layernorm.{{p}}"),
        **mlp,
        "final_norm": R("model.norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/token_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
    }


def decoder_archs(prefix: str, tie_default: bool = False, qa: bool = False) -> dict[str, Any]:
    """The architectures every ``model.layers`` decoder of transformers ships: ``<prefix>ForCausalLM``,
    the bare ``<prefix>Model``, sequence classification (last real token) and token classification;
    with `qa`, question answering too (where transformers has ``<prefix>ForQuestionAnswering``)."""
    archs = {f"{prefix}ForCausalLM": lm(tie_default), f"{prefix}Model": bare,
             f"{prefix}ForSequenceClassification": last_token_classifier,
             f"{prefix}ForTokenClassification": token_classifier}
    if qa:
        archs[f"{prefix}ForQuestionAnswering"] = question_answering
    return archs


#: ``<prefix>ForQuestionAnswering`` of LLaMA, Qwen2, Qwen3 and Qwen3-MoE keeps its base model under
#: ``transformer`` (HF's backward compatibility), not ``model``.
def qa_renamed(prefix: str) -> dict[str, str]:
    return {f"{prefix}ForQuestionAnswering": "transformer"}


FAMILY = Family(
    model_type="llama",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "mlp": {"kind": "gated"}}},
    fields=(*LLAMA_FIELDS,
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("mlp_bias", "block.mlp.bias", False),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    fixed=(Fixed("pretraining_tp", (1, None), "tensor-parallel emulation changes the numerics"),),
    archs=decoder_archs("Llama", qa=True),
    bare=("LlamaModel",),
    base_prefix="model",
    renamed=qa_renamed("Llama"),
    names=llama_names({
        "mlp.up": R(f"{LAYER}.mlp.gate_proj.{{p}}", f"{LAYER}.mlp.up_proj.{{p}}", split="halves"),
        "mlp.down": R(f"{LAYER}.mlp.down_proj.{{p}}"),
    }),
    ignored=(r"^lm_head\.weight$",),
    hook=rope_hook(10000.0),
    unhook=rope_unhook(False),
)


def window_hook(default: int | None) -> Any:
    """``sliding_window`` (HF's default `default`), switched by ``use_sliding_window`` and, per layer, by
    ``layer_types`` (Qwen2/3): the spec has one window for every layer, so a mix is refused."""
    from ...errors import ConversionError

    def hook(cfg: dict[str, Any], d: dict[str, Any]) -> None:
        window = cfg["sliding_window"] if "sliding_window" in cfg else default
        if "use_sliding_window" in cfg and not cfg["use_sliding_window"]:
            window = None
        types = set(cfg.get("layer_types") or [])
        if types - {"full_attention", "sliding_attention"}:
            raise ConversionError(f"config.json: layer_types {sorted(types)} has no plmgraph equivalent; "
                                  "supported: full_attention, sliding_attention")
        if len(types) > 1:
            raise ConversionError(
                f"config.json: layer_types mixes full_attention and sliding_attention layers "
                f"(max_window_layers = {cfg.get('max_window_layers')!r}); plmgraph's block.attention.window is "
                "one window for every layer; supported: all layers alike")
        if types == {"full_attention"}:
            window = None
        if window is not None:
            d["block"]["attention"]["window"] = int(window)

    return hook


def window_unhook(switch: bool) -> Any:
    """block.attention.window -> ``sliding_window`` (and, with `switch`, ``use_sliding_window`` and
    ``layer_types``: Qwen2/3)."""

    def unhook(spec: Any, cfg: dict[str, Any]) -> None:
        w = spec.block.attention.window
        cfg["sliding_window"] = w
        if switch:
            cfg["use_sliding_window"] = w is not None
            cfg["max_window_layers"] = 0 if w is not None else spec.sizes.layers
            cfg["layer_types"] = ["sliding_attention" if w is not None else "full_attention"] * spec.sizes.layers

    return unhook
