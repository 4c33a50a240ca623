"""``t5``: T5 (Raffel et al. 2020), pre-RMSNorm encoder-decoder with relative position buckets."""

from __future__ import annotations

import re
from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, bare, cfg_value, classifier, lm, need, num_labels, question_answering
from .weights import QKV, R

#: The architectures that run the encoder stack alone (no decoder).
ENCODER_ONLY = ("T5EncoderModel", "T5ForTokenClassification")


def _token_classifier(c: Cfg) -> dict[str, Any]:
    """T5ForTokenClassification: T5EncoderModel + dropout (classifier_dropout) + a linear ``classifier``."""
    return {"heads": [{"kind": "token_classification", "labels": num_labels(c)}]}


def _sequence_classifier(c: Cfg) -> dict[str, Any]:
    """T5ForSequenceClassification: the decoder state at input_ids' last eos (pool/eos), T5ClassificationHead's
    dense + tanh (the pooler), then its out_proj (the classifier)."""
    return {"heads": [classifier("sequence_classification", c)],
            "pooler": {"kind": "eos", "eos_id": int(cfg_value(c, "eos_token_id", 1)), "dense": True,
                       "activation": "tanh"}}


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    if (cfg.get("architectures") or [None])[0] in ENCODER_ONLY:  # the encoder stack alone
        d["family"] = "encoder"
        d.pop("decoder", None)
    proj = cfg_value(cfg, "feed_forward_proj", "relu")
    m = re.fullmatch(r"(gated-)?(\w+)", proj)
    act = m.group(2) if m else proj
    if act == "gelu" and m and m.group(1):
        act = "gelu_new"  # T5Config maps "gated-gelu" to gelu_new for backwards compatibility
    act = cfg.get("dense_act_fn") or act
    mlp = {"kind": "gated" if (m and m.group(1)) else "dense", "bias": False,
           "activation": F("dense_act_fn", "", values=ACT).to_spec(act)}
    d["block"]["mlp"] = mlp
    if not any(h["kind"] == "lm" for h in d["heads"]):
        return  # the task heads read the states unscaled; tying and scaling are the lm head's
    tie = bool(cfg.get("tie_word_embeddings", True))
    scale = bool(cfg.get("scale_decoder_outputs", tie))
    if scale and not tie:
        raise ConversionError(
            "config.json: scale_decoder_outputs = true with tie_word_embeddings = false: plmgraph's lm head "
            "scales only a tied projection (heads[].scale_tied)"
        )
    if d["heads"]:
        d["heads"][0]["scale_tied"] = scale


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    mlp = spec.block.mlp
    need(mlp.kind in ("dense", "gated"), "t5", f"mlp kind {mlp.kind!r} (its MLP is dense or gated)")
    act = F("dense_act_fn", "", values=ACT).to_hf(mlp.activation)
    cfg["dense_act_fn"] = act
    cfg["is_gated_act"] = mlp.kind == "gated"
    cfg["feed_forward_proj"] = ("gated-" if mlp.kind == "gated" else "") + act
    # d_kv is required; a spec that leaves head_dim to be derived has it only in its resolved stacks.
    cfg.setdefault("d_kv", next(iter(spec.stacks.values())).block.attention.head_dim)
    if spec.pooler is not None and spec.pooler.kind == "eos" and spec.heads:
        cfg["eos_token_id"] = spec.pooler.eos_id
    lm_heads = [h for h in spec.heads if h.kind == "lm"]
    cfg["scale_decoder_outputs"] = lm_heads[0].scale_tied if lm_heads else True


def _names() -> dict[str, Any]:
    B = "{stack}.block.{layer}.layer"
    t: dict[str, Any] = {
        "token": R("shared.{p}"),
        "position": R("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.{p}"),
        "attn_norm": R(f"{B}.0.layer_norm.{{p}}"),
        "attn.qkv": QKV(B + ".0.SelfAttention.{x}.{p}", "q", "k", "v"),
        "attn.out": R(f"{B}.0.SelfAttention.o.{{p}}"),
        "cross_norm": R(f"{B}.1.layer_norm.{{p}}"),
        "cross.q": R(f"{B}.1.EncDecAttention.q.{{p}}"),
        "cross.kv": R(f"{B}.1.EncDecAttention.k.{{p}}", f"{B}.1.EncDecAttention.v.{{p}}", split="kv"),
        "cross.out": R(f"{B}.1.EncDecAttention.o.{{p}}"),
        "final_norm": R("{stack}.final_layer_norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "pooler.dense": R("classification_head.dense.{p}"),
        "head/sequence_classification": R("classification_head.out_proj.{p}"),
    }
    # The MLP is sublayer 1 of an encoder block and 2 of a decoder block (after cross-attention).
    for stack, i in (("encoder", 1), ("decoder", 2)):
        t[f"{stack}:mlp_norm"] = R(f"{B}.{i}.layer_norm.{{p}}")
        t[f"{stack}:mlp.up"] = [R(f"{B}.{i}.DenseReluDense.wi.{{p}}", only="mlp/dense"),
                                R(f"{B}.{i}.DenseReluDense.wi_0.{{p}}", f"{B}.{i}.DenseReluDense.wi_1.{{p}}",
                                  split="halves", only="mlp/gated")]
        t[f"{stack}:mlp.down"] = R(f"{B}.{i}.DenseReluDense.wo.{{p}}")
    return t


FAMILY = Family(
    model_type="t5",
    base={"family": "encoder-decoder", "embeddings": {"share_across_stacks": True},
          "position": {"kind": "t5_relative"},
          "block": {"placement": "pre", "norm": {"kind": "rmsnorm"},
                    "attention": {"kind": "self", "qkv_bias": False, "out_bias": False, "scale": 1.0}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("d_model", "sizes.hidden"),
        F("num_layers", "sizes.layers"),
        F("num_layers", "encoder.layers"),
        F("num_decoder_layers", "decoder.layers", lambda c: c["num_layers"]),
        F("num_heads", "sizes.heads"),
        F("d_ff", "sizes.ffn"),
        F("d_kv", "block.attention.head_dim"),
        F("layer_norm_epsilon", "block.norm.eps", 1e-6),
        F("relative_attention_num_buckets", "position.buckets", 32),
        F("relative_attention_max_distance", "position.max_distance", 128),
        F("dropout_rate", "block.dropout", 0.1),
        F("dropout_rate", "embeddings.dropout", 0.1),
    ),
    # T5ForQuestionAnswering: qa_outputs on the decoder's states (HF's default decoder_input_ids, the
    # input shifted right, is the caller's to pass here).  T5ForTokenClassification keeps the encoder
    # under `transformer.` (renamed), as T5ForSequenceClassification keeps T5Model.
    archs={"T5ForConditionalGeneration": lm(True), "T5Model": bare, "T5EncoderModel": bare,
           "T5ForQuestionAnswering": question_answering, "T5ForTokenClassification": _token_classifier,
           "T5ForSequenceClassification": _sequence_classifier},
    names=_names(),
    ignored=(r"^(transformer\.)?(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
    renamed={"T5ForTokenClassification": "transformer", "T5ForSequenceClassification": "transformer"},
    init={"kind": "fan_in"},  # T5PreTrainedModel._init_weights (initializer_factor scales it; 1.0 here)
    hook=_hook,
    unhook=_unhook,
    extra_hf={"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1},
)
