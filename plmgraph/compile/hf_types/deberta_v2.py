"""``deberta-v2``: DeBERTa-v2 and v3 (He et al. 2021, 2023), a post-norm encoder with disentangled
attention over a shared, log-bucketed relative position table (attention kind ``disentangled``,
position kind ``disentangled``).

``position_biased_input: false`` (every published v2/v3 checkpoint) has no absolute positions: the
relative table is the spec's `position`.  With ``true`` (HF's default) learned absolute positions
are added to the embeddings and the table is the spec's `relative_position`.  Refused, by name:
``relative_attention: false``, ``conv_kernel_size > 0`` (the v2-xlarge convolution beside the first
layer), ``embedding_size != hidden_size`` (HF projects before its embedding LayerNorm),
``pooler_hidden_size != hidden_size``, a ``pos_att_type`` entry other than c2p / p2c, and
``norm_rel_ebd`` other than none / layer_norm.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, bare, cfg_value, classifier, mlm, need, question_answering
from .weights import QKV, R

_L = "deberta.encoder.layer.{layer}"


def _pooler(c: Cfg) -> dict[str, Any]:
    """ContextPooler: dense + pooler_hidden_act on the first token (its dropout comes first: 0 at eval)."""
    return {"kind": "cls", "dense": True,
            "activation": F("pooler_hidden_act", "", values=ACT).to_spec(cfg_value(c, "pooler_hidden_act", "gelu"))}


def _masked_lm(c: Cfg) -> dict[str, Any]:
    # legacy (HF's default): cls.predictions, tied unless tie_word_embeddings is false; the newer head
    # (legacy: false) always multiplies by the word embeddings
    head = mlm(c)
    if not c.get("legacy", True):
        head["tie_embeddings"] = True
    return {"heads": [head]}


ARCHS = {
    "DebertaV2Model": bare,
    "DebertaV2ForMaskedLM": _masked_lm,
    "DebertaV2ForSequenceClassification": lambda c: {"heads": [classifier("sequence_classification", c)],
                                                     "pooler": _pooler(c)},
    "DebertaV2ForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
    "DebertaV2ForQuestionAnswering": question_answering,
    "DebertaV2ForMultipleChoice": lambda c: {"heads": [{"kind": "multiple_choice"}], "pooler": _pooler(c)},
}


def _terms(cfg: Cfg) -> list[str]:
    raw = cfg.get("pos_att_type") or []
    terms = [x.strip() for x in raw.lower().split("|")] if isinstance(raw, str) else list(raw)
    bad = [t for t in terms if t not in ("c2p", "p2c")]
    if bad:
        raise ConversionError(f"config.json: pos_att_type = {raw!r} has {bad[0]!r}, which DeBERTa-v2 does not "
                              "compute; supported entries: 'c2p', 'p2c'")
    if not terms:
        raise ConversionError(f"config.json: pos_att_type = {raw!r}: relative attention with neither c2p nor p2c "
                              "never reads its relative embeddings; supported: ['c2p'], ['p2c'] or ['p2c', 'c2p']")
    return terms


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    if not cfg.get("relative_attention", False):
        raise ConversionError(f"config.json: relative_attention = {cfg.get('relative_attention', False)!r} (DeBERTa "
                              "without disentangled attention) is not supported; supported: true")
    if (cfg.get("conv_kernel_size") or 0) > 0:
        raise ConversionError(f"config.json: conv_kernel_size = {cfg['conv_kernel_size']!r}: DeBERTa-v2's "
                              "convolution beside the first layer is not supported; supported: 0 (no conv layer)")
    hidden = cfg_value(cfg, "hidden_size")
    for key in ("embedding_size", "pooler_hidden_size"):
        if cfg.get(key) is not None and cfg[key] != hidden:
            raise ConversionError(f"config.json: {key} = {cfg[key]!r} differs from hidden_size ({hidden}); "
                                  f"supported: {key} = hidden_size")
    terms = _terms(cfg)
    eps = float(cfg_value(cfg, "layer_norm_eps", 1e-7))
    norm_rel = [x.strip() for x in str(cfg.get("norm_rel_ebd") or "none").lower().split("|")]
    if any(x not in ("none", "layer_norm") for x in norm_rel):
        raise ConversionError(f"config.json: norm_rel_ebd = {cfg.get('norm_rel_ebd')!r} is not supported; "
                              "supported: 'none', 'layer_norm'")
    buckets = int(cfg.get("position_buckets", -1) or -1)
    max_rel = int(cfg.get("max_relative_positions", -1) or -1)
    rel = {"kind": "disentangled", "buckets": buckets if buckets > 0 else None,
           "max_distance": max_rel if max_rel >= 1 else int(cfg_value(cfg, "max_position_embeddings", 512)),
           "norm": {"kind": "layernorm", "eps": eps} if "layer_norm" in norm_rel else None}
    att = d["block"]["attention"]
    att.update(c2p="c2p" in terms, p2c="p2c" in terms, share_keys=bool(cfg.get("share_att_key", False)))
    if cfg.get("position_biased_input", True):
        d["position"] = {"kind": "learned"}
        d["relative_position"] = rel
    else:
        d["position"] = rel


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    at = spec.encoder.block.attention if spec.encoder is not None else None
    need(at is not None and at.kind == "disentangled", "deberta-v2", "attention other than 'disentangled'")
    pos, rel = spec.position, spec.relative_position
    if pos.kind == "disentangled" and rel is None:
        cfg["position_biased_input"] = False
        rel = pos
    else:
        need(pos.kind == "learned" and pos.offset == 0 and not pos.padding_aware and rel is not None
             and rel.kind == "disentangled", "deberta-v2",
             f"position kind {pos.kind!r} (its absolute positions are learned, from 0, every token counted)")
        cfg["position_biased_input"] = True
    eps = spec.encoder.block.norm.eps
    need(rel.norm is None or (rel.norm.eps == eps and rel.norm.bias), "deberta-v2",
         "a relative-table norm other than a LayerNorm with the layers' eps")
    cfg["relative_attention"] = True
    cfg["pos_att_type"] = [t for t in ("p2c", "c2p") if getattr(at, t)]
    cfg["share_att_key"] = at.share_keys
    cfg["position_buckets"] = rel.buckets or -1
    cfg["max_relative_positions"] = rel.max_distance
    cfg["norm_rel_ebd"] = "layer_norm" if rel.norm is not None else "none"
    cfg["pooler_hidden_size"] = spec.sizes.hidden
    pooler = spec.pooler
    if pooler is not None and pooler.dense:
        cfg["pooler_hidden_act"] = F("pooler_hidden_act", "", values=ACT).to_hf(pooler.activation)
    cfg["legacy"] = True


FAMILY = Family(
    model_type="deberta-v2",
    base={"family": "encoder", "embeddings": {"norm": True},
          "block": {"placement": "post", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "disentangled", "mask": "bidirectional", "qkv_bias": True,
                                  "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("intermediate_size", "sizes.ffn"),
        F("attention_head_size", "block.attention.head_dim", None),
        F("max_position_embeddings", "sizes.max_positions", 512),
        F("type_vocab_size", "embeddings.segments", 0),
        F("layer_norm_eps", "block.norm.eps", 1e-7),
        F("hidden_act", "block.mlp.activation", "gelu", ACT),
        F("hidden_dropout_prob", "block.dropout", 0.1),
        F("hidden_dropout_prob", "embeddings.dropout", 0.1),
        F("attention_probs_dropout_prob", "block.attention.dropout", 0.1),
        F("hidden_dropout_prob", "block.attention.position_dropout", 0.1),  # each layer's pos_dropout
    ),
    archs=ARCHS,
    names={
        "token": R("deberta.embeddings.word_embeddings.{p}"),
        "position": [R("deberta.embeddings.position_embeddings.{p}", only="position/learned"),
                     R("deberta.encoder.rel_embeddings.{p}", only="position/disentangled")],
        "position.norm": R("deberta.encoder.LayerNorm.{p}"),
        # position_biased_input: the table is the relative_position beside the learned positions
        "relative_position": R("deberta.encoder.rel_embeddings.{p}"),
        "relative_position.norm": R("deberta.encoder.LayerNorm.{p}"),
        "segment": R("deberta.embeddings.token_type_embeddings.{p}"),
        "embed_norm": R("deberta.embeddings.LayerNorm.{p}"),
        "attn.qkv": QKV(_L + ".attention.self.{x}.{p}", "query_proj", "key_proj", "value_proj"),
        "attn.pos_k": R(f"{_L}.attention.self.pos_key_proj.{{p}}"),
        "attn.pos_q": R(f"{_L}.attention.self.pos_query_proj.{{p}}"),
        "attn.out": R(f"{_L}.attention.output.dense.{{p}}"),
        "attn_norm": R(f"{_L}.attention.output.LayerNorm.{{p}}"),
        "mlp.up": R(f"{_L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{_L}.output.dense.{{p}}"),
        "mlp_norm": R(f"{_L}.output.LayerNorm.{{p}}"),
        # legacy MLM head (HF's default) first: what export writes; the newer lm_predictions head second
        "head/mlm.transform": [R("cls.predictions.transform.dense.{p}"), R("lm_predictions.lm_head.dense.{p}")],
        "head/mlm.norm": [R("cls.predictions.transform.LayerNorm.{p}"), R("lm_predictions.lm_head.LayerNorm.{p}")],
        "head/mlm.bias": [R("cls.predictions.decoder.bias", also=("cls.predictions.bias",)),
                          R("cls.predictions.bias"), R("lm_predictions.lm_head.bias")],
        "head/mlm.proj": R("cls.predictions.decoder.{p}"),
        "pooler.dense": R("pooler.dense.{p}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/multiple_choice": R("classifier.{p}"),
    },
    ignored=(r"^cls\.predictions\.decoder\.weight$", r"^mask_predictions\."),
    bare=("DebertaV2Model",),
    base_prefix="deberta",
    hook=_hook,
    unhook=_unhook,
)
