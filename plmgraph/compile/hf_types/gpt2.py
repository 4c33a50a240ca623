"""``gpt2``: GPT-2 (Radford et al. 2019), GPT's layout made pre-norm with a final LayerNorm."""

from __future__ import annotations

import copy

from .base import ACT, F, Family, Fixed, bare, last_token_classifier, lm, question_answering, token_classifier
from .openai_gpt import GPT_BASE, GPT_FIELDS, gpt_names
from .weights import R

FAMILY = Family(
    model_type="gpt2",
    base=copy.deepcopy(GPT_BASE) | {"block": {**GPT_BASE["block"], "placement": "pre"}},
    fields=(*GPT_FIELDS, F("n_inner", "sizes.ffn", lambda c: 4 * c["n_embd"]),
            F("activation_function", "block.mlp.activation", "gelu_new", ACT)),
    fixed=(
        Fixed("scale_attn_weights", (True,), "unscaled attention is not supported"),
        Fixed("scale_attn_by_inverse_layer_idx", (False,), "per-layer attention scaling is not supported"),
        Fixed("add_cross_attention", (False,), "a cross-attending GPT-2 is not supported"),
        Fixed("reorder_and_upcast_attn", (False, True), "fp32 upcast only; same function"),
    ),
    archs={"GPT2LMHeadModel": lm(True), "GPT2Model": bare, "GPT2ForSequenceClassification": last_token_classifier,
           "GPT2ForTokenClassification": token_classifier, "GPT2ForQuestionAnswering": question_answering},
    refused={"GPT2DoubleHeadsModel": "its multiple-choice head summarises each candidate at mc_token_ids, a token "
             "index given per row, which no plmgraph pooler reads (its LM head alone: GPT2LMHeadModel)"},
    bare=("GPT2Model",),
    base_prefix="transformer",
    names=gpt_names("wte", "wpe", "ln_f") | {"head/token_classification": R("classifier.{p}"),
                                             "head/question_answering": R("qa_outputs.{p}")},
    ignored=(r"^lm_head\.weight$", r"\.attn\.(bias|masked_bias)$"),
    init={"kind": "normal", "scaled_residual": True},  # c_proj ~ std / sqrt(2 * n_layer)
)
