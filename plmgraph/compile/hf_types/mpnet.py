"""``mpnet``: MPNet (Song et al. 2020), a post-norm BERT-like encoder with learned absolute positions
(RoBERTa's padding offset: HF's padding_idx is 1, so positions start at 2) *and* a T5-style
bidirectional relative position bias computed once and shared by every layer: the spec's
`position` (learned) plus `relative_position` (t5_relative).

HF's MPNet buckets distances with 32 buckets and max distance 128 whatever the config says (its
``compute_position_bias`` never passes ``relative_attention_num_buckets`` on), so a config with
another bucket count is refused rather than imported into a model that would bucket differently.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import (
    ACT,
    TANH_POOLER,
    Cfg,
    F,
    Family,
    bare,
    cfg_value,
    classifier,
    mlm,
    multiple_choice,
    need,
    question_answering,
)
from .weights import QKV, R

_L = "mpnet.encoder.layer.{layer}"
OFFSET = 2  # MPNetEmbeddings.padding_idx (1, fixed) + 1
BUCKETS, MAX_DISTANCE = 32, 128  # MPNetEncoder.compute_position_bias / relative_position_bucket defaults


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    buckets = cfg_value(cfg, "relative_attention_num_buckets", BUCKETS)
    if buckets != BUCKETS:
        raise ConversionError(f"config.json: relative_attention_num_buckets = {buckets!r}: HF's MPNet buckets "
                              f"distances into {BUCKETS} whatever the config says (its table would not match); "
                              f"supported: {BUCKETS}")
    d["position"] = {"kind": "learned", "offset": OFFSET, "padding_aware": True}
    d["relative_position"] = {"kind": "t5_relative", "buckets": BUCKETS, "max_distance": MAX_DISTANCE}
    d["sizes"]["max_positions"] = cfg_value(cfg, "max_position_embeddings", 514) - OFFSET


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    pos, rel = spec.position, spec.relative_position
    need(pos.kind == "learned" and pos.offset == OFFSET and pos.padding_aware, "mpnet",
         f"position kind {pos.kind!r} (its positions are learned, from {OFFSET}, over non-padding tokens)")
    need(rel is not None and rel.kind == "t5_relative" and rel.buckets == BUCKETS and rel.max_distance == MAX_DISTANCE,
         "mpnet", f"a relative position other than a T5 bias of {BUCKETS} buckets, max distance {MAX_DISTANCE}")
    need(spec.sizes.max_positions is not None, "mpnet", "a spec without sizes.max_positions")
    at = spec.encoder.block.attention
    need(at.kind == "self", "mpnet", f"attention kind {at.kind!r}")
    cfg["max_position_embeddings"] = spec.sizes.max_positions + OFFSET
    cfg["relative_attention_num_buckets"] = BUCKETS
    cfg["pad_token_id"] = OFFSET - 1


FAMILY = Family(
    model_type="mpnet",
    base={"family": "encoder", "embeddings": {"norm": True},
          "block": {"placement": "post", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "bidirectional", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("intermediate_size", "sizes.ffn"),
        F("layer_norm_eps", "block.norm.eps", 1e-12),
        F("hidden_act", "block.mlp.activation", "gelu", ACT),
        F("hidden_dropout_prob", "block.dropout", 0.1),
        F("hidden_dropout_prob", "embeddings.dropout", 0.1),
        F("attention_probs_dropout_prob", "block.attention.dropout", 0.1),
    ),
    archs={
        "MPNetModel": bare,
        # MPNetLMHead applies gelu whatever hidden_act says
        "MPNetForMaskedLM": lambda c: {"heads": [mlm({**c, "hidden_act": "gelu"})]},
        # MPNetClassificationHead: dense + tanh on <s>, then out_proj == a dense tanh pooler + classifier
        "MPNetForSequenceClassification": lambda c: {"heads": [classifier("sequence_classification", c)],
                                                     "pooler": TANH_POOLER},
        "MPNetForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
        "MPNetForQuestionAnswering": question_answering,
        "MPNetForMultipleChoice": multiple_choice,  # MPNetModel's own tanh pooler + a linear classifier
    },
    names={
        "token": R("mpnet.embeddings.word_embeddings.{p}"),
        "position": R("mpnet.embeddings.position_embeddings.{p}"),
        "relative_position": R("mpnet.encoder.relative_attention_bias.{p}"),
        "embed_norm": R("mpnet.embeddings.LayerNorm.{p}"),
        "attn.qkv": QKV(_L + ".attention.attn.{x}.{p}", "q", "k", "v"),
        "attn.out": R(f"{_L}.attention.attn.o.{{p}}"),
        "attn_norm": R(f"{_L}.attention.LayerNorm.{{p}}"),
        "mlp.up": R(f"{_L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{_L}.output.dense.{{p}}"),
        "mlp_norm": R(f"{_L}.output.LayerNorm.{{p}}"),
        "head/mlm.transform": R("lm_head.dense.{p}"),
        "head/mlm.norm": R("lm_head.layer_norm.{p}"),
        "head/mlm.bias": [R("lm_head.decoder.bias", also=("lm_head.bias",)), R("lm_head.bias")],
        "head/mlm.proj": R("lm_head.decoder.{p}"),
        "pooler.dense": [R("mpnet.pooler.dense.{p}", when=("heads.multiple_choice",)), R("classifier.dense.{p}")],
        "head/sequence_classification": R("classifier.out_proj.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/multiple_choice": R("classifier.{p}"),
    },
    # the tied word embeddings' second name; the bare model's pooler (nothing here reads pooler_output)
    ignored=(r"^lm_head\.decoder\.weight$", r"^pooler\."),
    bare=("MPNetModel",),
    base_prefix="mpnet",
    hook=_hook,
    unhook=_unhook,
)
