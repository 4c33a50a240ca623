"""``openai-gpt``: GPT (Radford et al. 2018), post-norm; `GPT_FIELDS`, `GPT_BASE`, `gpt_names` also build GPT-2."""

from __future__ import annotations

import copy
from typing import Any

from .base import OPENAI_ACT, F, Family, bare, last_token_classifier, lm
from .weights import R

GPT_FIELDS = (
    F("vocab_size", "sizes.vocab"),
    F("n_embd", "sizes.hidden"),
    F("n_layer", "sizes.layers"),
    F("n_head", "sizes.heads"),
    F("n_positions", "sizes.max_positions"),
    F("layer_norm_epsilon", "block.norm.eps", 1e-5),
    F("resid_pdrop", "block.dropout", 0.1),
    F("embd_pdrop", "embeddings.dropout", 0.1),
    F("attn_pdrop", "block.attention.dropout", 0.1),
)
GPT_BASE = {"family": "decoder", "position": {"kind": "learned"},
            "block": {"norm": {"kind": "layernorm"},
                      "attention": {"kind": "self", "mask": "causal", "qkv_bias": True, "out_bias": True},
                      "mlp": {"kind": "dense", "bias": True}}}


def gpt_names(token: str, position: str, final_norm: str | None) -> dict[str, Any]:
    """The ``transformer.h.<layer>`` layout of GPT and GPT-2: Conv1D weights stored [in, out]."""
    L = "transformer.h.{layer}"
    t = {
        "token": R(f"transformer.{token}.{{p}}"),
        "position": R(f"transformer.{position}.{{p}}"),
        "attn_norm": R(f"{L}.ln_1.{{p}}"),
        "attn.qkv": R(f"{L}.attn.c_attn.{{p}}", t=True),
        "attn.out": R(f"{L}.attn.c_proj.{{p}}", t=True),
        "mlp_norm": R(f"{L}.ln_2.{{p}}"),
        "mlp.up": R(f"{L}.mlp.c_fc.{{p}}", t=True),
        "mlp.down": R(f"{L}.mlp.c_proj.{{p}}", t=True),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
    }
    if final_norm:
        t["final_norm"] = R(f"transformer.{final_norm}.{{p}}")
    return t


FAMILY = Family(
    model_type="openai-gpt",
    base=copy.deepcopy(GPT_BASE) | {"block": {**GPT_BASE["block"], "placement": "post"}},
    fields=(*GPT_FIELDS, F("afn", "block.mlp.activation", "gelu", OPENAI_ACT)),  # ffn is 4 * n_embd
    archs={"OpenAIGPTLMHeadModel": lm(True), "OpenAIGPTModel": bare,
           "OpenAIGPTForSequenceClassification": last_token_classifier},
    refused={"OpenAIGPTDoubleHeadsModel": "its multiple-choice head summarises each candidate at mc_token_ids, a "
             "token index given per row, which no plmgraph pooler reads (its LM head alone: OpenAIGPTLMHeadModel)"},
    bare=("OpenAIGPTModel",),
    base_prefix="transformer",
    names=gpt_names("tokens_embed", "positions_embed", None),
    ignored=(r"^lm_head\.weight$", r"\.attn\.bias$"),
)
