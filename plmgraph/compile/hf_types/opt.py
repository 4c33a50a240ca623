"""``opt``: OPT (Zhang et al. 2022), GPT-2's function in BART's ``model.decoder`` naming: learned
positions numbered over the real tokens (the attention mask's running count) and offset by 2,
pre-LayerNorm (``do_layer_norm_before``; post-norm when false, OPT-350m), ReLU MLP, biases
(``enable_bias``), tied embeddings.  ``word_embed_proj_dim`` != ``hidden_size`` (OPT-350m's
project_in/project_out) has no spec equivalent and is refused."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, bare, last_token_classifier, lm, need, question_answering
from .weights import R

OFFSET = 2
L = "model.decoder.layers.{layer}"


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    proj = cfg.get("word_embed_proj_dim")
    if proj is not None and proj != cfg["hidden_size"]:
        raise ConversionError(f"config.json: word_embed_proj_dim = {proj!r} != hidden_size = {cfg['hidden_size']!r} "
                              "(OPT's project_in/project_out) has no plmgraph equivalent; supported: equal to "
                              "hidden_size")
    d["position"] = {"kind": "learned", "offset": OFFSET, "padding_aware": True}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    pos = spec.position
    need(pos.kind == "learned" and pos.offset == OFFSET and pos.padding_aware, "opt",
         f"position {pos.kind!r} (its positions are learned, padding-aware, offset {OFFSET})")
    cfg["word_embed_proj_dim"] = spec.sizes.hidden
    need(spec.decoder.final_norm == (spec.block.placement == "pre"), "opt",
         "a final norm other than its placement's (pre: one, post: none)")


FAMILY = Family(
    model_type="opt",
    base={"family": "decoder",
          "block": {"norm": {"kind": "layernorm", "eps": 1e-5},
                    "attention": {"kind": "self", "mask": "causal"}, "mlp": {"kind": "dense"}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("ffn_dim", "sizes.ffn"),
        F("max_position_embeddings", "sizes.max_positions", 2048),
        F("do_layer_norm_before", "block.placement", True, {True: "pre", False: "post"}),
        F("enable_bias", "block.attention.qkv_bias", True),
        F("enable_bias", "block.attention.out_bias", True),
        F("enable_bias", "block.mlp.bias", True),
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("attention_dropout", "block.attention.dropout", 0.0),
        F("activation_function", "block.mlp.activation", "relu", ACT),
    ),
    fixed=(
        Fixed("_remove_final_layer_norm", (False,), "OPT-350m's removed final norm of an old conversion"),
        Fixed("layer_norm_elementwise_affine", (True,), "a LayerNorm without scale and shift"),
        Fixed("layerdrop", (0.0, 0), "layer drop"),
    ),
    archs={"OPTForQuestionAnswering": question_answering,
           "OPTForCausalLM": lm(True), "OPTModel": bare, "OPTForSequenceClassification": last_token_classifier},
    bare=("OPTModel",),
    base_prefix="model",
    names={
        "token": R("model.decoder.embed_tokens.{p}"),
        "position": R("model.decoder.embed_positions.{p}"),
        "attn.qkv": R(f"{L}.self_attn.q_proj.{{p}}", f"{L}.self_attn.k_proj.{{p}}", f"{L}.self_attn.v_proj.{{p}}",
                      split="qkv"),
        "attn.out": R(f"{L}.self_attn.out_proj.{{p}}"),
        "attn_norm": R(f"{L}.self_attn_layer_norm.{{p}}"),
        "mlp.up": R(f"{L}.fc1.{{p}}"),
        "mlp.down": R(f"{L}.fc2.{{p}}"),
        "mlp_norm": R(f"{L}.final_layer_norm.{{p}}"),
        "final_norm": R("model.decoder.final_layer_norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
    },
    ignored=(r"^lm_head\.weight$",),
    hook=_hook,
    unhook=_unhook,
)
