"""``modernbert``: ModernBERT (Warner et al. 2024), a pre-norm encoder: token embeddings with a
bias-free LayerNorm (``embeddings.norm``), layer 0 without an attention norm (the encoder's
``first_attn_norm: false``), fused ``Wqkv``, a GeGLU MLP with one fused ``Wi`` (``[input; gate]``,
the activation on the first half), a final norm; global attention every
``global_attn_every_n_layers`` layers and bidirectional local attention over ±``local_attention`` / 2
tokens elsewhere (the encoder's ``pattern``; a window of ``local_attention / 2 + 1`` in plmgraph's
``|distance| < window``), with two rotary bases (``global_rope_theta`` as ``position``,
``local_rope_theta`` as the local entries' ``rope``; transformers 5: ``rope_parameters`` per layer
type).  ``ModernBertForMaskedLM``'s head is a dense (``classifier_bias``), ``classifier_activation``,
a LayerNorm, then the tied decoder (``decoder_bias``); the same dense, activation and LayerNorm
(``ModernBertPredictionHead``) is the sequence and multiple-choice classifiers' pooler (cls or mean, by
``classifier_pooling``) and the token classifier's and the QA head's per-token ``transform``
(``classifier_dropout``, training-only, is not read: no classifier dropout is).  Parity needs HF's eager
or SDPA attention (flash attention unpads)."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, bare, need, num_labels, question_answering, tied, unhooks
from .layer_types import FULL, SLIDING, from_pattern, to_pattern
from .rope import rope_hook, rope_unhook
from .weights import R

L = "model.layers.{layer}"
GLOBAL_THETA, LOCAL_THETA = 160_000.0, 10_000.0


def mlm_head(c: Cfg) -> dict[str, Any]:
    act = F("classifier_activation", "", values=ACT).to_spec(c.get("classifier_activation") or "gelu")
    return {"heads": [{"kind": "mlm", "tie_embeddings": tied(c), "bias": bool(c.get("decoder_bias", True)),
                       "transform": {"activation": act, "norm": True, "bias": bool(c.get("classifier_bias", False))}}]}


def hook(cfg: Cfg, d: dict[str, Any]) -> None:
    n = cfg["num_hidden_layers"]
    every = int(cfg.get("global_attn_every_n_layers") or 3)
    types = list(cfg.get("layer_types") or [FULL if i % every == 0 else SLIDING for i in range(n)])
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and any(isinstance(v, dict) for v in rp.values()):
        unknown = set(rp) - {FULL, SLIDING}
        if unknown:
            raise ConversionError(f"config.json: rope_parameters for layer types {sorted(unknown)} have no "
                                  f"plmgraph equivalent; supported: {FULL}, {SLIDING}")
        full, local = dict(rp.get(FULL) or {}), dict(rp.get(SLIDING) or {})
    else:  # transformers 4.x
        full = {"rope_type": "default", "rope_theta": cfg.get("global_rope_theta", GLOBAL_THETA)}
        local = {"rope_type": "default", "rope_theta": cfg.get("local_rope_theta") or LOCAL_THETA}
    for name, p in (("full_attention", full), ("sliding_attention", local)):
        if (p.get("rope_type") or "default") != "default":
            raise ConversionError(f"config.json: rope_parameters.{name} rope_type {p.get('rope_type')!r} is not "
                                  "supported for modernbert; supported: default")
    g: dict[str, Any] = {"sizes": {}}
    rope_hook(GLOBAL_THETA)({"rope_parameters": full}, g)
    d["position"] = g["position"]
    lt = float(local.get("rope_theta", LOCAL_THETA))
    la = int(cfg.get("local_attention", 128))
    if la % 2:
        raise ConversionError(f"config.json: local_attention = {la} is odd; ModernBERT attends ±local_attention / 2 "
                              "tokens; supported: an even number")
    to_pattern(cfg, d, types, la // 2 + 1, None if lt == d["position"]["theta"] else {"theta": lt})
    d.setdefault("encoder", {})["first_attn_norm"] = False


def unhook(spec: ModelSpec, cfg: Cfg) -> None:
    need(spec.family == "encoder", "modernbert", f"a {spec.family} model (it is an encoder)")
    enc = spec.stacks["encoder"]
    need(not enc.first_attn_norm, "modernbert", "an attention norm in layer 0")
    need(spec.position.kind == "rope" and spec.position.scaling is None, "modernbert", "rope scaling")
    rope_unhook(False)(spec, cfg)
    full = cfg.pop("rope_parameters")
    types, window, rope = from_pattern(spec, cfg, local_rope=True)
    need(window is not None, "modernbert", "no local attention layer")
    need(rope is None or rope.scaling is None, "modernbert", "rope scaling on the local layers")
    cfg["rope_parameters"] = {FULL: full, SLIDING: {"rope_type": "default",
                                                    "rope_theta": full["rope_theta"] if rope is None else rope.theta}}
    cfg["layer_types"], cfg["local_attention"] = types, 2 * (window - 1)
    cfg["global_attn_every_n_layers"] = next((i for i in range(1, len(types)) if types[i] == FULL), len(types))
    # HF's default padding row (50283) exists only in ModernBERT's own 50368-token vocabulary
    cfg["pad_token_id"] = 50283 if spec.sizes.vocab > 50283 else None
    heads = [h for h in spec.heads if h.kind == "mlm"]
    if heads:
        tr = heads[0].transform
        need(tr is not None and tr.norm, "modernbert", "an MLM head without its dense + norm transform")
        cfg["classifier_bias"], cfg["decoder_bias"] = tr.bias, heads[0].bias
        cfg["classifier_activation"] = F("classifier_activation", "", values=ACT).to_hf(tr.activation)
    pooled = [h.kind for h in spec.heads if h.kind in ("sequence_classification", "multiple_choice")]
    if pooled:
        p = spec.pooler
        # HF's sequence classifier pools token 0 ("cls"), its multiple-choice head the first kept token ("first")
        cls = "first" if pooled[0] == "multiple_choice" else "cls"
        need(p is not None and p.kind in (cls, "mean") and p.dense and p.norm, "modernbert",
             f"a {pooled[0]} head without its {cls}/mean pooling and dense + norm head")
        cfg["classifier_pooling"], cfg["classifier_bias"] = "cls" if p.kind == cls else p.kind, p.bias
        cfg["classifier_activation"] = F("classifier_activation", "", values=ACT).to_hf(p.activation)
    for h in spec.heads:
        if h.kind in ("token_classification", "question_answering"):
            tr = h.transform
            need(tr is not None and tr.norm, "modernbert", f"a {h.kind} head without its dense + norm transform")
            cfg["classifier_bias"] = tr.bias
            cfg["classifier_activation"] = F("classifier_activation", "", values=ACT).to_hf(tr.activation)
            if h.kind == "question_answering":
                cfg["num_labels"] = 2


def _pooler(c: Cfg, cls: str = "cls") -> dict[str, Any]:
    """cls (as `cls`: token 0, or the first kept token) or mean pooling, then dense, activation, norm."""
    pooling = c.get("classifier_pooling") or "cls"
    if pooling not in ("cls", "mean"):
        raise ConversionError(f"config.json: classifier_pooling = {pooling!r} has no plmgraph equivalent; "
                              "supported: 'cls', 'mean'")
    act = F("classifier_activation", "", values=ACT).to_spec(c.get("classifier_activation") or "gelu")
    return {"kind": cls if pooling == "cls" else pooling, "dense": True, "activation": act, "norm": True,
            "bias": bool(c.get("classifier_bias", False))}


def _transform(c: Cfg) -> dict[str, Any]:
    """``ModernBertPredictionHead`` on every token: dense (``classifier_bias``), ``classifier_activation``,
    a LayerNorm (the blocks' ``norm_eps`` / ``norm_bias``)."""
    act = F("classifier_activation", "", values=ACT).to_spec(c.get("classifier_activation") or "gelu")
    return {"activation": act, "norm": True, "bias": bool(c.get("classifier_bias", False))}


def sequence_classifier(c: Cfg) -> dict[str, Any]:
    """``ModernBertForSequenceClassification``: cls or mean pooling, the head (dense, activation, norm), then
    a linear ``classifier``."""
    return {"heads": [{"kind": "sequence_classification", "labels": num_labels(c), "bias": True}],
            "pooler": _pooler(c)}


def multiple_choice(c: Cfg) -> dict[str, Any]:
    """``ModernBertForMultipleChoice``: each candidate pooled by its first kept token (HF's cls: the
    ``attention_mask``'s argmax, <cls> under left padding too) or the mean, then dense, activation, norm,
    then a linear ``classifier`` hidden -> 1."""
    return {"heads": [{"kind": "multiple_choice"}], "pooler": _pooler(c, "first")}


def token_classifier(c: Cfg) -> dict[str, Any]:
    """``ModernBertForTokenClassification``: the head (dense, activation, norm) on every token, then a
    linear ``classifier``."""
    return {"heads": [{"kind": "token_classification", "labels": num_labels(c), "bias": True,
                       "transform": _transform(c)}]}


def span_head(c: Cfg) -> dict[str, Any]:
    """``ModernBertForQuestionAnswering``: the head (dense, activation, norm) on every token, then a linear
    ``classifier`` hidden -> (start, end)."""
    out = question_answering(c)
    out["heads"][0]["transform"] = _transform(c)
    return out


FAMILY = Family(
    model_type="modernbert",
    base={"family": "encoder", "embeddings": {"norm": True},
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "bidirectional"}, "mlp": {"kind": "gated"}}},
    fields=(F("vocab_size", "sizes.vocab"),
            F("hidden_size", "sizes.hidden"),
            F("num_hidden_layers", "sizes.layers"),
            F("num_attention_heads", "sizes.heads"),
            F("intermediate_size", "sizes.ffn"),
            F("max_position_embeddings", "sizes.max_positions", 8192),
            F("norm_eps", "block.norm.eps", 1e-5),
            F("norm_bias", "block.norm.bias", False),
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("attention_dropout", "block.attention.dropout", 0.0),
            F("mlp_bias", "block.mlp.bias", False),
            F("hidden_activation", "block.mlp.activation", "gelu", ACT),
            F("embedding_dropout", "embeddings.dropout", 0.0)),
    fixed=(Fixed("sparse_prediction", (False, None), "sparse MLM prediction changes the output shape"),),
    archs={"ModernBertModel": bare, "ModernBertForMaskedLM": mlm_head,
           "ModernBertForSequenceClassification": sequence_classifier,
           "ModernBertForTokenClassification": token_classifier, "ModernBertForQuestionAnswering": span_head,
           "ModernBertForMultipleChoice": multiple_choice},
    bare=("ModernBertModel",),
    base_prefix="model",
    names={
        "token": R("model.embeddings.tok_embeddings.{p}"),
        "embed_norm": R("model.embeddings.norm.{p}"),
        "attn_norm": R(f"{L}.attn_norm.{{p}}"),
        "attn.qkv": R(f"{L}.attn.Wqkv.{{p}}"),
        "attn.out": R(f"{L}.attn.Wo.{{p}}"),
        "mlp_norm": R(f"{L}.mlp_norm.{{p}}"),
        "mlp.up": R(f"{L}.mlp.Wi.{{p}}"),
        "mlp.down": R(f"{L}.mlp.Wo.{{p}}"),
        "final_norm": R("model.final_norm.{p}"),
        "head/mlm.transform": R("head.dense.{p}"),
        "head/mlm.norm": R("head.norm.{p}"),
        "head/mlm.bias": R("decoder.bias"),
        "pooler.dense": R("head.dense.{p}"),
        "pooler.norm": R("head.norm.{p}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/multiple_choice": R("classifier.{p}"),
        "head/token_classification.transform": R("head.dense.{p}"),
        "head/token_classification.norm": R("head.norm.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering.transform": R("head.dense.{p}"),
        "head/question_answering.norm": R("head.norm.{p}"),
        "head/question_answering": R("classifier.{p}"),
    },
    ignored=(r"^decoder\.weight$",),
    hook=hook,
    unhook=unhooks(unhook),
)
