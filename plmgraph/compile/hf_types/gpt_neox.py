"""``gpt_neox``: GPT-NeoX / Pythia (Black et al. 2022; Biderman et al. 2023): pre-LayerNorm,
parallel residual with two norms (``use_parallel_residual``; sequential when false), partial
rotary (``partial_rotary_factor``, 0.25 by default; 4.x configs say ``rotary_pct`` and
``rotary_emb_base``), a dense GELU MLP, and one fused ``query_key_value`` whose rows are per
head [q, k, v] (`Rule.qkv_per_head`)."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, bare, last_token_classifier, lm, question_answering, token_classifier
from .rope import rope_hook, rope_unhook
from .weights import R

L = "gpt_neox.layers.{layer}"
_rope_hook, _rope_unhook = rope_hook(10000.0, default_fraction=0.25), rope_unhook(True)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    legacy = dict(cfg)
    if "rotary_emb_base" in cfg and "rope_theta" not in cfg:
        legacy["rope_theta"] = cfg["rotary_emb_base"]
    if "rotary_pct" in cfg and "partial_rotary_factor" not in cfg:
        legacy["partial_rotary_factor"] = cfg["rotary_pct"]
    _rope_hook(legacy, d)
    if cfg.get("use_parallel_residual", True):
        d["block"]["residual"] = {"kind": "parallel", "shared_norm": False}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    res = spec.block.residual
    if res.kind == "parallel" and res.shared_norm:
        from ...errors import ConversionError

        raise ConversionError("Hugging Face gpt_neox cannot express a parallel residual with one shared norm")
    cfg["use_parallel_residual"] = res.kind == "parallel"


FAMILY = Family(
    model_type="gpt_neox",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal"}, "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("intermediate_size", "sizes.ffn"),
        F("max_position_embeddings", "sizes.max_positions", 2048),
        F("layer_norm_eps", "block.norm.eps", 1e-5),
        F("attention_bias", "block.attention.qkv_bias", True),
        F("attention_bias", "block.attention.out_bias", True),
        F("attention_dropout", "block.attention.dropout", 0.0),
        F("hidden_dropout", "block.dropout", 0.0),
        F("hidden_dropout", "embeddings.dropout", 0.0),
        F("hidden_act", "block.mlp.activation", "gelu", ACT),
    ),
    archs={"GPTNeoXForQuestionAnswering": question_answering,
           "GPTNeoXForCausalLM": lm(False), "GPTNeoXModel": bare,
           "GPTNeoXForSequenceClassification": last_token_classifier,
           "GPTNeoXForTokenClassification": token_classifier},
    bare=("GPTNeoXModel",),
    base_prefix="gpt_neox",
    names={
        "token": R("gpt_neox.embed_in.{p}"),
        "attn_norm": R(f"{L}.input_layernorm.{{p}}"),
        "attn.qkv": R(f"{L}.attention.query_key_value.{{p}}", qkv_per_head=True),
        "attn.out": R(f"{L}.attention.dense.{{p}}"),
        "mlp_norm": R(f"{L}.post_attention_layernorm.{{p}}"),
        "mlp.up": R(f"{L}.mlp.dense_h_to_4h.{{p}}"),
        "mlp.down": R(f"{L}.mlp.dense_4h_to_h.{{p}}"),
        "final_norm": R("gpt_neox.final_layer_norm.{p}"),
        "head/lm.proj": R("embed_out.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/token_classification": R("classifier.{p}"),
    },
    ignored=(r"^embed_out\.weight$", r"\.attention\.(bias|masked_bias)$"),
    hook=_hook,
    unhook=_unhook,
)
