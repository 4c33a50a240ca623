"""``xlnet``: XLNet (Yang et al. 2019), two-stream attention over Transformer-XL relative positions."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, bare, classifier, lm, question_answering
from .weights import QKV, R

#: XLNetSequenceSummary with summary_type "last", summary_use_proj and summary_activation tanh: the
#: last position (whatever the mask: XLNet pads on the left), dense + tanh.
SUMMARY = {"kind": "last", "by_mask": False, "dense": True, "activation": "tanh"}


def _refused(c: Cfg) -> dict[str, Any]:
    raise ConversionError("config.json: architectures[0] = 'XLNetForQuestionAnswering' (the beam-search start/end "
                          "head: start_logits, end_logits, cls_logits over top-k candidates) is not supported; "
                          "supported: XLNetForQuestionAnsweringSimple (a linear qa_outputs on every token)")


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    clamp = cfg.get("clamp_len", -1)
    if clamp is not None and clamp > 0:  # HF: -1 (or 0) is no clamp
        d["position"]["clamp"] = clamp


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["clamp_len"] = getattr(spec.position, "clamp", None) or -1
    cfg["mem_len"] = cfg.get("mem_len") or None


_L = "transformer.layer.{layer}.rel_attn"
_FF = "transformer.layer.{layer}.ff"

FAMILY = Family(
    model_type="xlnet",
    base={"family": "decoder", "embeddings": {"mask_token": True}, "position": {"kind": "xl_relative"},
          "block": {"placement": "post", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "two_stream", "mask": "bidirectional", "qkv_bias": False,
                                  "out_bias": False},
                    "mlp": {"kind": "dense", "bias": True}},
          "decoder": {"final_norm": False}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("d_model", "sizes.hidden"),
        F("n_layer", "sizes.layers"),
        F("n_head", "sizes.heads"),
        F("d_inner", "sizes.ffn"),
        F("d_head", "block.attention.head_dim", lambda c: c["d_model"] // c["n_head"]),
        F("ff_activation", "block.mlp.activation", "gelu", ACT),
        F("layer_norm_eps", "block.norm.eps", 1e-12),
        F("mem_len", "block.attention.memory", None),  # None: keep every state (HF cache_mem)
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("dropout", "block.attention.dropout", 0.1),
    ),
    fixed=(
        Fixed("attn_type", ("bi",), "HF XLNet supports only bidirectional attention"),
        Fixed("bi_data", (False,), "bidirectional data pipelines (doubled batch) are not supported"),
        Fixed("same_length", (False,), "same-length attention windows are not supported"),
        Fixed("reuse_len", (None, 0), "partial memory reuse (pretraining only) is not supported"),
        # XLNetSequenceSummary (sequence classification, multiple choice): the last position, dense, tanh
        Fixed("summary_type", ("last",), "the sequence summary takes the last position only"),
        Fixed("summary_use_proj", (True,), "the sequence summary has its dense layer"),
        Fixed("summary_activation", ("tanh",), "the sequence summary's activation is tanh"),
        Fixed("summary_proj_to_labels", (False,), "a summary projecting to the labels is not supported"),
    ),
    archs={"XLNetLMHeadModel": lm(True, bias=True), "XLNetModel": bare,
           "XLNetForSequenceClassification": lambda c: {"heads": [classifier("sequence_classification", c)],
                                                         "pooler": SUMMARY},
           "XLNetForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
           "XLNetForQuestionAnsweringSimple": question_answering,
           "XLNetForMultipleChoice": lambda c: {"heads": [{"kind": "multiple_choice"}], "pooler": SUMMARY},
           "XLNetForQuestionAnswering": _refused},
    bare=("XLNetModel",),
    base_prefix="transformer",
    names={
        "token": R("transformer.word_embedding.{p}"),
        "mask_token": R("transformer.mask_emb"),
        # q, k, v, r are einsum weights "ibh,hnd->ibnd" [H, n, d]; o is "ibnd,hnd->ibh" [H, n, d]
        "attn.qkv": QKV(_L + ".{x}", "q", "k", "v", t=True, heads=True),
        "attn.r": R(f"{_L}.r", t=True, heads=True),
        "attn.out": R(f"{_L}.o", heads=True),
        "attn.r_w_bias": R(f"{_L}.r_w_bias"),
        "attn.r_r_bias": R(f"{_L}.r_r_bias"),
        "attn.r_s_bias": R(f"{_L}.r_s_bias"),
        "attn.seg_embed": R(f"{_L}.seg_embed"),
        "attn_norm": R(f"{_L}.layer_norm.{{p}}"),
        "mlp.up": R(f"{_FF}.layer_1.{{p}}"),
        "mlp.down": R(f"{_FF}.layer_2.{{p}}"),
        "mlp_norm": R(f"{_FF}.layer_norm.{{p}}"),
        "head/lm.bias": R("lm_loss.bias"),
        "head/lm.proj": R("lm_loss.{p}"),
        "pooler.dense": R("sequence_summary.summary.{p}"),
        "head/sequence_classification": R("logits_proj.{p}"),
        "head/multiple_choice": R("logits_proj.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
    },
    ignored=(r"^lm_loss\.weight$",),
    hook=_hook,
    unhook=_unhook,
)
