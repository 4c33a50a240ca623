"""Hugging Face ``config.json`` <-> plmgraph spec, one table per ``model_type``.

Each `Family` is data: a constant spec skeleton (`base`), a list of `F` entries mapping one
config field onto one spec field (with the HF default, and a value table where the two
vocabularies differ), `Fixed` config values plmgraph requires (anything else is a
`ConversionError`, never a silently different model), the architectures it knows
(``config.architectures[0]`` -> heads and pooler), and, for the few fields that are not a
one-to-one copy (rotary parameters, T5's ``feed_forward_proj``, ALBERT's layer groups,
RoBERTa's position offset), a pair of small functions.

`config_to_spec` reads the table forwards; `spec_to_config` reads it backwards, and
`find_family` picks the (family, architecture) whose table reproduces a given spec, so
``to_hf`` needs no hint and refuses a spec no HF class can express.

This module never imports torch or transformers.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConversionError
from ..spec import ModelSpec, SpecError, validate
from ..spec.extends import Merged

REQUIRED = object()
Cfg = dict[str, Any]
Hook = Callable[[Cfg, dict[str, Any]], None]
Unhook = Callable[[ModelSpec, Cfg], None]

# HF activation names (transformers.activations.ACT2CLS) -> spec activations.
ACT: dict[str, str] = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "quick_gelu": "quick_gelu",
}
# OpenAI GPT's own table (modeling_openai.ACT_FNS): its "gelu" is the tanh approximation.
OPENAI_ACT = {"gelu": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}


@dataclass(frozen=True)
class F:
    """One config field copied onto one spec field (dotted path), with HF's default."""

    hf: str
    path: str
    default: Any = REQUIRED
    values: Mapping[Any, Any] | None = None  # HF value -> spec value, when they differ

    def to_spec(self, v: Any) -> Any:
        if self.values is None:
            return v
        if v not in self.values:
            raise ConversionError(
                f"config.json: {self.hf} = {v!r} has no plmgraph equivalent; supported: "
                f"{', '.join(repr(k) for k in self.values)}"
            )
        return self.values[v]

    def to_hf(self, v: Any) -> Any:
        if self.values is None:
            return v
        for k, s in self.values.items():
            if s == v:
                return k
        raise ConversionError(f"spec field {self.path} = {v!r} has no {self.hf!r} value in Hugging Face")


@dataclass(frozen=True)
class Fixed:
    """A config field whose value plmgraph requires (`values`: the accepted ones, first is written)."""

    hf: str
    values: tuple[Any, ...]
    why: str


@dataclass(frozen=True)
class Family:
    model_type: str
    base: dict[str, Any]
    fields: tuple[F, ...]
    archs: Mapping[str, Callable[[Cfg], dict[str, Any]]]
    fixed: tuple[Fixed, ...] = ()
    hook: Hook | None = None
    unhook: Unhook | None = None
    extra_hf: dict[str, Any] = field(default_factory=dict)  # written on export (ids HF needs)


# --------------------------------------------------------------------------- helpers


def _get(d: dict[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = d
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def _cfg(cfg: Cfg, key: str, default: Any = REQUIRED) -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if default is REQUIRED:
        raise ConversionError(f"config.json ({cfg.get('model_type')}) has no {key!r}, which plmgraph needs")
    return default(cfg) if callable(default) else default


def num_labels(cfg: Cfg) -> int:
    if cfg.get("id2label"):
        return len(cfg["id2label"])
    return int(cfg.get("num_labels") or 2)


def _tie(default: bool = True) -> Callable[[Cfg], bool]:
    return lambda c: bool(c.get("tie_word_embeddings", default))


# ----------------------------------------------------------------- head tables
# Each architecture -> {"heads": [...], "pooler": {...} | None}; `c` is the config.


def _mlm(c: Cfg, act_key: str = "hidden_act", act: Mapping[str, str] = ACT) -> dict[str, Any]:
    return {"kind": "mlm", "tie_embeddings": _tie()(c), "bias": True,
            "transform": {"activation": F(act_key, "", values=act).to_spec(_cfg(c, act_key, "gelu")), "norm": True}}


def _cls(kind: str, c: Cfg) -> dict[str, Any]:
    return {"kind": kind, "labels": num_labels(c)}


TANH_POOLER = {"kind": "cls", "dense": True, "activation": "tanh"}
BERT_ARCHS: dict[str, Callable[[Cfg], dict[str, Any]]] = {
    "ForPreTraining": lambda c: {"heads": [_mlm(c), {"kind": "nsp"}], "pooler": TANH_POOLER},
    "ForMaskedLM": lambda c: {"heads": [_mlm(c)]},
    "ForSequenceClassification": lambda c: {"heads": [_cls("sequence_classification", c)], "pooler": TANH_POOLER},
    "ForTokenClassification": lambda c: {"heads": [_cls("token_classification", c)]},
}


def _archs(prefix: str, table: Mapping[str, Callable[[Cfg], dict[str, Any]]]) -> dict[str, Any]:
    return {prefix + k: v for k, v in table.items()}


def _lm(tie_default: bool, bias: bool = False) -> Callable[[Cfg], dict[str, Any]]:
    return lambda c: {"heads": [{"kind": "lm", "tie_embeddings": _tie(tie_default)(c), "bias": bias}]}


def _last_token_classifier(c: Cfg) -> dict[str, Any]:
    return {"heads": [{"kind": "sequence_classification", "labels": num_labels(c), "bias": False}],
            "pooler": {"kind": "last"}}


# ------------------------------------------------------------------ irregular fields


def _rope_hook(default_theta: float, default_fraction: float = 1.0, interleaved: bool = False) -> Hook:
    """rope_parameters (transformers 5) or rope_theta + rope_scaling (4.x) -> position."""

    def hook(cfg: Cfg, d: dict[str, Any]) -> None:
        rp = dict(cfg.get("rope_scaling") or {})
        rp.update(cfg.get("rope_parameters") or {})
        theta = rp.pop("rope_theta", cfg.get("rope_theta", default_theta))
        fraction = rp.pop("partial_rotary_factor", cfg.get("partial_rotary_factor", default_fraction))
        kind = rp.pop("rope_type", None) or rp.pop("type", None) or "default"
        rp.pop("type", None)
        pos: dict[str, Any] = {"kind": "rope", "theta": float(theta), "fraction": float(fraction),
                               "interleaved": interleaved}
        allowed = {
            "default": {},
            "linear": {"factor": "factor"},
            "dynamic": {"factor": "factor", "original_max_position_embeddings": "original_max_positions"},
            "llama3": {"factor": "factor", "low_freq_factor": "low_freq_factor",
                       "high_freq_factor": "high_freq_factor",
                       "original_max_position_embeddings": "original_max_positions"},
            "yarn": {"factor": "factor", "original_max_position_embeddings": "original_max_positions"},
        }
        if kind not in allowed:
            raise ConversionError(
                f"config.json: rope type {kind!r} has no plmgraph equivalent; supported: {', '.join(allowed)}"
            )
        # YaRN knobs plmgraph does not model are accepted only at HF's defaults.
        yarn_defaults = {"beta_fast": 32.0, "beta_slow": 1.0, "mscale": None, "mscale_all_dim": None,
                         "attention_factor": None, "truncate": True}
        unknown = {}
        for k, v in rp.items():
            if k in allowed[kind]:
                continue
            if kind == "yarn" and k in yarn_defaults and v == yarn_defaults[k]:
                continue
            unknown[k] = v
        if unknown:
            raise ConversionError(
                f"config.json: rope ({kind}) parameters {unknown} have no plmgraph equivalent; "
                f"supported: {', '.join(['rope_theta', 'partial_rotary_factor', *allowed[kind]])}"
            )
        if kind != "default":
            sc: dict[str, Any] = {"kind": kind}
            for k, s in allowed[kind].items():
                if k in rp:
                    sc[s] = rp[k]
            if kind == "dynamic":
                # HF's dynamic NTK rescales beyond max_position_embeddings (its
                # original_max_position_embeddings is unused there), and accepts any length: the spec
                # keeps that as the original context and allows factor times more positions.
                mp = int(_cfg(cfg, "max_position_embeddings"))
                sc["original_max_positions"] = mp
                d["sizes"]["max_positions"] = int(mp * sc["factor"])
            pos["scaling"] = sc
        d["position"] = pos

    return hook


def _rope_unhook(cfg: Cfg, spec: ModelSpec, fraction_key: bool) -> None:
    pos = spec.position
    rp: dict[str, Any] = {"rope_theta": pos.theta, "rope_type": "default"}
    if fraction_key or pos.fraction != 1.0:
        rp["partial_rotary_factor"] = pos.fraction
    if pos.scaling is not None:
        sc = pos.scaling
        rp["rope_type"] = sc.kind
        rp["factor"] = sc.factor
        for hf, name in (("original_max_position_embeddings", "original_max_positions"),
                         ("low_freq_factor", "low_freq_factor"), ("high_freq_factor", "high_freq_factor")):
            if getattr(sc, name) is not None:
                rp[hf] = getattr(sc, name)
    if pos.scaling is not None and pos.scaling.kind == "dynamic":
        cfg["max_position_embeddings"] = pos.scaling.original_max_positions
        rp.pop("original_max_position_embeddings", None)
    cfg["rope_parameters"] = rp


def _t5_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    proj = _cfg(cfg, "feed_forward_proj", "relu")
    m = re.fullmatch(r"(gated-)?(\w+)", proj)
    act = m.group(2) if m else proj
    if act == "gelu" and m and m.group(1):
        act = "gelu_new"  # T5Config maps "gated-gelu" to gelu_new for backwards compatibility
    act = cfg.get("dense_act_fn") or act
    mlp = {"kind": "gated" if (m and m.group(1)) else "dense", "bias": False,
           "activation": F("dense_act_fn", "", values=ACT).to_spec(act)}
    d["block"]["mlp"] = mlp
    tie = bool(cfg.get("tie_word_embeddings", True))
    scale = bool(cfg.get("scale_decoder_outputs", tie))
    if scale and not tie:
        raise ConversionError(
            "config.json: scale_decoder_outputs = true with tie_word_embeddings = false: plmgraph's lm head "
            "scales only a tied projection (heads[].scale_tied)"
        )
    d["heads"][0]["scale_tied"] = scale


def _t5_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    mlp = spec.block.mlp
    act = F("dense_act_fn", "", values=ACT).to_hf(mlp.activation)
    cfg["dense_act_fn"] = act
    cfg["is_gated_act"] = mlp.kind == "gated"
    cfg["feed_forward_proj"] = ("gated-" if mlp.kind == "gated" else "") + act
    cfg["scale_decoder_outputs"] = spec.heads[0].scale_tied if spec.heads else True


def _albert_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    layers, groups = _cfg(cfg, "num_hidden_layers"), _cfg(cfg, "num_hidden_groups", 1)
    if _cfg(cfg, "inner_group_num", 1) != 1:
        raise ConversionError(
            f"config.json: inner_group_num = {cfg['inner_group_num']}: plmgraph shares whole layers, "
            "so only inner_group_num = 1 is supported"
        )
    if groups == 1:
        d["sharing"] = {"kind": "all"}
    elif groups != layers:
        d["sharing"] = {"kind": "groups", "groups": groups}
    for h in d.get("heads", []):
        if h["kind"] == "mlm" and not h["tie_embeddings"]:
            raise ConversionError("config.json: ALBERT with tie_word_embeddings = false: its decoder reads "
                                  "embedding_size, which an untied plmgraph mlm head cannot express")


def _albert_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    sh = spec.sharing
    cfg["num_hidden_groups"] = {"all": 1, "none": spec.sizes.layers}.get(sh.kind, sh.groups)
    cfg["inner_group_num"] = 1


def _roberta_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    offset = int(_cfg(cfg, "pad_token_id", 1)) + 1  # positions start after the padding index
    d["position"] = {"kind": "learned", "offset": offset, "padding_aware": True}
    d["sizes"]["max_positions"] = _cfg(cfg, "max_position_embeddings", 514) - offset


def _roberta_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["pad_token_id"] = spec.position.offset - 1
    cfg["max_position_embeddings"] = spec.sizes.max_positions + spec.position.offset


def _ernie_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    if cfg.get("use_task_id"):
        d["embeddings"]["task_types"] = _cfg(cfg, "task_type_vocab_size", 3)


def _ernie_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["use_task_id"] = bool(spec.embeddings.task_types)
    if spec.embeddings.task_types:
        cfg["task_type_vocab_size"] = spec.embeddings.task_types


def _vit_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    p = d["embeddings"]["patches"]
    d["sizes"]["max_positions"] = (p["image_size"] // p["patch_size"]) ** 2 + 1


def _bart_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    heads = {_cfg(cfg, "encoder_attention_heads", 12), _cfg(cfg, "decoder_attention_heads", 12)}
    if len(heads) > 1:
        raise ConversionError(
            f"config.json: encoder_attention_heads ({cfg['encoder_attention_heads']}) != decoder_attention_heads "
            f"({cfg['decoder_attention_heads']}); plmgraph has one sizes.heads"
        )
    d["sizes"]["heads"] = heads.pop()
    d["sizes"]["layers"] = d["encoder"]["layers"]
    d["sizes"]["ffn"] = d["encoder"]["block"]["mlp"]["ffn"]


def _bart_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["encoder_attention_heads"] = cfg["decoder_attention_heads"] = spec.sizes.heads
    if "initializer_range" in cfg:  # BART calls it init_std
        cfg["init_std"] = cfg.pop("initializer_range")


def _xlnet_hook(cfg: Cfg, d: dict[str, Any]) -> None:
    clamp = cfg.get("clamp_len", -1)
    if clamp is not None and clamp > 0:  # HF: -1 (or 0) is no clamp
        d["position"]["clamp"] = clamp


def _xlnet_unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["clamp_len"] = getattr(spec.position, "clamp", None) or -1
    cfg["mem_len"] = cfg.get("mem_len") or None


def _rope_unhook_fn(fraction_key: bool) -> Unhook:
    return lambda spec, cfg: _rope_unhook(cfg, spec, fraction_key)


# --------------------------------------------------------------------------- tables


def _bert_like(model_type: str, prefix: str, hook: Hook | None = None, unhook: Unhook | None = None,
               extra_fields: tuple[F, ...] = (), archs: Mapping[str, Any] | None = None) -> Family:
    return Family(
        model_type=model_type,
        base={"family": "encoder", "embeddings": {"norm": True}, "position": {"kind": "learned"},
              "block": {"placement": "post", "norm": {"kind": "layernorm"},
                        "attention": {"kind": "self", "mask": "bidirectional", "qkv_bias": True, "out_bias": True},
                        "mlp": {"kind": "dense", "bias": True}}},
        fields=(
            F("vocab_size", "sizes.vocab"),
            F("hidden_size", "sizes.hidden"),
            F("num_hidden_layers", "sizes.layers"),
            F("num_attention_heads", "sizes.heads"),
            F("intermediate_size", "sizes.ffn"),
            F("max_position_embeddings", "sizes.max_positions", 512),
            F("type_vocab_size", "embeddings.segments", 2),
            F("layer_norm_eps", "block.norm.eps", 1e-12),
            F("hidden_act", "block.mlp.activation", "gelu", ACT),
            F("hidden_dropout_prob", "block.dropout", 0.1),
            F("hidden_dropout_prob", "embeddings.dropout", 0.1),
            F("attention_probs_dropout_prob", "block.attention.dropout", 0.1),
            *extra_fields,
        ),
        fixed=(
            Fixed("position_embedding_type", ("absolute",), "relative_key positions are not in the BERT family"),
            Fixed("is_decoder", (False,), "a causal BERT is not supported"),
            Fixed("add_cross_attention", (False,), "a cross-attending BERT is not supported"),
        ),
        archs=archs or _archs(prefix, BERT_ARCHS),
        hook=_then(_needs_segments, hook),
        unhook=unhook,
    )


def _needs_segments(cfg: Cfg, d: dict[str, Any]) -> None:
    # HF's BERT family always looks token_type_ids up (zeros by default): no table, no model.
    if d["embeddings"].get("segments", 0) < 1:
        raise ConversionError(f"config.json: type_vocab_size = {d['embeddings'].get('segments')}; "
                              f"{cfg.get('model_type')} needs at least 1")


def _then(a: Hook, b: Hook | None) -> Hook:
    def both(cfg: Cfg, d: dict[str, Any]) -> None:
        a(cfg, d)
        if b is not None:
            b(cfg, d)

    return both


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

FAMILIES: dict[str, Family] = {}


def _register(f: Family) -> None:
    FAMILIES[f.model_type] = f


_register(_bert_like("bert", "Bert"))
_register(_bert_like("ernie", "Ernie", _ernie_hook, _ernie_unhook))
_register(_bert_like(
    "roberta", "Roberta", _roberta_hook, _roberta_unhook,
    archs={
        # RobertaLMHead applies gelu whatever hidden_act says.
        "RobertaForMaskedLM": lambda c: {"heads": [_mlm({**c, "hidden_act": "gelu"})]},
        "RobertaForSequenceClassification":
            lambda c: {"heads": [_cls("sequence_classification", c)], "pooler": TANH_POOLER},
        "RobertaForTokenClassification": lambda c: {"heads": [_cls("token_classification", c)]},
    },
))
_register(_bert_like(
    "albert", "Albert", _albert_hook, _albert_unhook,
    extra_fields=(F("embedding_size", "embeddings.size", 128),),
    archs={
        "AlbertForPreTraining": lambda c: {"heads": [_mlm(c), {"kind": "sop"}], "pooler": TANH_POOLER},
        "AlbertForMaskedLM": lambda c: {"heads": [_mlm(c)]},
        "AlbertForSequenceClassification":
            lambda c: {"heads": [_cls("sequence_classification", c)], "pooler": TANH_POOLER},
        "AlbertForTokenClassification": lambda c: {"heads": [_cls("token_classification", c)]},
    },
))
_register(Family(
    model_type="distilbert",
    base={"family": "encoder", "embeddings": {"norm": True}, "position": {"kind": "learned"},
          "block": {"placement": "post", "norm": {"kind": "layernorm", "eps": 1e-12},
                    "attention": {"kind": "self", "mask": "bidirectional", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("dim", "sizes.hidden"),
        F("n_layers", "sizes.layers"),
        F("n_heads", "sizes.heads"),
        F("hidden_dim", "sizes.ffn"),
        F("max_position_embeddings", "sizes.max_positions", 512),
        F("activation", "block.mlp.activation", "gelu", ACT),
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("attention_dropout", "block.attention.dropout", 0.1),
    ),
    archs={
        "DistilBertForMaskedLM": lambda c: {"heads": [_mlm(c, "activation")]},
        "DistilBertForSequenceClassification": lambda c: {
            "heads": [_cls("sequence_classification", c)],
            "pooler": {"kind": "cls", "dense": True, "activation": "relu"}},
        "DistilBertForTokenClassification": lambda c: {"heads": [_cls("token_classification", c)]},
    },
))
_GPT_FIELDS = (
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
_GPT_BASE = {"family": "decoder", "position": {"kind": "learned"},
             "block": {"norm": {"kind": "layernorm"},
                       "attention": {"kind": "self", "mask": "causal", "qkv_bias": True, "out_bias": True},
                       "mlp": {"kind": "dense", "bias": True}}}
_register(Family(
    model_type="openai-gpt",
    base=copy.deepcopy(_GPT_BASE) | {"block": {**_GPT_BASE["block"], "placement": "post"}},
    fields=(*_GPT_FIELDS, F("afn", "block.mlp.activation", "gelu", OPENAI_ACT)),  # ffn is 4 * n_embd
    archs={"OpenAIGPTLMHeadModel": _lm(True)},
))
_register(Family(
    model_type="gpt2",
    base=copy.deepcopy(_GPT_BASE) | {"block": {**_GPT_BASE["block"], "placement": "pre"}},
    fields=(*_GPT_FIELDS, F("n_inner", "sizes.ffn", lambda c: 4 * c["n_embd"]),
            F("activation_function", "block.mlp.activation", "gelu_new", ACT)),
    fixed=(
        Fixed("scale_attn_weights", (True,), "unscaled attention is not supported"),
        Fixed("scale_attn_by_inverse_layer_idx", (False,), "per-layer attention scaling is not supported"),
        Fixed("add_cross_attention", (False,), "a cross-attending GPT-2 is not supported"),
        Fixed("reorder_and_upcast_attn", (False, True), "fp32 upcast only; same function"),
    ),
    archs={"GPT2LMHeadModel": _lm(True), "GPT2ForSequenceClassification": _last_token_classifier},
))
_register(Family(
    model_type="t5",
    base={"family": "encoder-decoder", "embeddings": {"share_across_stacks": True},
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
    archs={"T5ForConditionalGeneration": _lm(True)},
    hook=_t5_hook,
    unhook=_t5_unhook,
    extra_hf={"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1},
))
FAMILIES["t5"].base["position"] = {"kind": "t5_relative"}
_register(Family(
    model_type="bart",
    base={"family": "encoder-decoder", "embeddings": {"share_across_stacks": True, "norm": True},
          "position": {"kind": "learned", "offset": 2},
          "block": {"placement": "post", "norm": {"kind": "layernorm", "eps": 1e-5},
                    "attention": {"kind": "self", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("d_model", "sizes.hidden"),
        F("encoder_layers", "encoder.layers", 12),
        F("decoder_layers", "decoder.layers", 12),
        F("encoder_ffn_dim", "encoder.block.mlp.ffn", 4096),
        F("decoder_ffn_dim", "decoder.block.mlp.ffn", 4096),
        F("max_position_embeddings", "sizes.max_positions", 1024),
        F("activation_function", "block.mlp.activation", "gelu", ACT),
        F("scale_embedding", "embeddings.scale", False),
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("attention_dropout", "block.attention.dropout", 0.0),
    ),
    # final_logits_bias (a persistent buffer, zeros in a fresh model) is the lm head's bias, so a
    # fine-tuned nonzero one is kept exactly; plmgraph trains it, HF does not.
    archs={"BartForConditionalGeneration": _lm(True, bias=True)},
    hook=_bart_hook,
    unhook=_bart_unhook,
    extra_hf={"decoder_start_token_id": 2, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
              "forced_eos_token_id": 2},
))
_register(Family(
    model_type="llama",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "mlp": {"kind": "gated"}}},
    fields=(*LLAMA_FIELDS,
            F("attention_bias", "block.attention.qkv_bias", False),
            F("attention_bias", "block.attention.out_bias", False),
            F("mlp_bias", "block.mlp.bias", False),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    fixed=(Fixed("pretraining_tp", (1, None), "tensor-parallel emulation changes the numerics"),),
    archs={"LlamaForCausalLM": _lm(False), "LlamaForSequenceClassification": _last_token_classifier},
    hook=_rope_hook(10000.0),
    unhook=_rope_unhook_fn(False),
))
_register(Family(
    model_type="mixtral",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "attention": {
        "kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False},
        "mlp": {"kind": "moe", "router_bias": False, "normalize_top_k": True,
                "expert": {"kind": "gated", "bias": False}}}},
    fields=(*LLAMA_FIELDS,
            F("num_local_experts", "block.mlp.experts", 8),
            F("num_experts_per_tok", "block.mlp.top_k", 2),
            F("router_aux_loss_coef", "block.mlp.aux_loss", 0.001),
            F("intermediate_size", "block.mlp.expert.ffn"),
            F("hidden_act", "block.mlp.expert.activation", "silu", ACT),
            F("sliding_window", "block.attention.window", None)),
    fixed=(Fixed("router_jitter_noise", (0.0, 0), "plmgraph's router adds no training-time jitter"),),
    archs={"MixtralForCausalLM": _lm(False)},
    hook=_rope_hook(1e6),
    unhook=_rope_unhook_fn(False),
))
_register(Family(
    model_type="glm",
    base=copy.deepcopy(DECODER_BASE) | {"block": {**DECODER_BASE["block"], "attention": {
        "kind": "self", "mask": "causal", "out_bias": False}, "mlp": {"kind": "gated", "bias": False}}},
    fields=(*LLAMA_FIELDS,
            F("attention_bias", "block.attention.qkv_bias", True),
            F("hidden_act", "block.mlp.activation", "silu", ACT)),
    archs={"GlmForCausalLM": _lm(False)},
    hook=_rope_hook(10000.0, 0.5, interleaved=True),
    unhook=_rope_unhook_fn(True),
    extra_hf={"pad_token_id": 0, "eos_token_id": 1},
))
_register(Family(
    model_type="vit",
    base={"family": "encoder", "embeddings": {"patches": {"cls_token": True}}, "position": {"kind": "learned"},
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "bidirectional", "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("intermediate_size", "sizes.ffn"),
        F("image_size", "embeddings.patches.image_size", 224),
        F("patch_size", "embeddings.patches.patch_size", 16),
        F("num_channels", "embeddings.patches.channels", 3),
        F("layer_norm_eps", "block.norm.eps", 1e-12),
        F("hidden_act", "block.mlp.activation", "gelu", ACT),
        F("qkv_bias", "block.attention.qkv_bias", True),
        F("hidden_dropout_prob", "block.dropout", 0.0),
        F("hidden_dropout_prob", "embeddings.dropout", 0.0),
        F("attention_probs_dropout_prob", "block.attention.dropout", 0.0),
    ),
    archs={"ViTForImageClassification": lambda c: {"heads": [_cls("image_classification", c)],
                                                   "pooler": {"kind": "cls", "dense": False}}},
    hook=_vit_hook,
))
_register(Family(
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
    ),
    archs={"XLNetLMHeadModel": _lm(True, bias=True)},
    hook=_xlnet_hook,
    unhook=_xlnet_unhook,
))


# ------------------------------------------------------------------------ forwards


def family_of(cfg: Cfg) -> Family:
    mt = cfg.get("model_type")
    if mt not in FAMILIES:
        raise ConversionError(
            f"config.json: model_type {mt!r} is not supported; supported: {', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[mt]


def architecture_of(cfg: Cfg, fam: Family) -> str:
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else None
    if arch not in fam.archs:
        raise ConversionError(
            f"config.json: architectures[0] = {arch!r} is not supported for model_type {fam.model_type!r}; "
            f"supported: {', '.join(fam.archs)}"
        )
    return arch


#: How each family's HF `_init_weights` draws a fresh model, as a spec `init`; `normal` takes its
#: std from the config (`initializer_range`, BART's `init_std`).  Absent: plain N(0, std).
INIT: dict[str, dict[str, Any]] = {
    "gpt2": {"kind": "normal", "scaled_residual": True},  # c_proj ~ std / sqrt(2 * n_layer)
    "t5": {"kind": "fan_in"},  # T5PreTrainedModel._init_weights (initializer_factor scales it; 1.0 here)
}
INIT_STD_KEYS = ("initializer_range", "init_std")


def config_to_dict(cfg: Cfg, name: str = "hf-model") -> dict[str, Any]:
    """A HF config -> the (unvalidated) spec mapping; raises `ConversionError` for what has no equivalent."""
    fam = family_of(cfg)
    arch = architecture_of(cfg, fam)
    for fx in fam.fixed:
        if fx.hf in cfg and cfg[fx.hf] not in fx.values:
            raise ConversionError(
                f"config.json: {fx.hf} = {cfg[fx.hf]!r} is not supported ({fx.why}); "
                f"supported: {', '.join(repr(v) for v in fx.values)}"
            )
    d = copy.deepcopy(fam.base)
    d["plmgraph"] = 1
    d["name"] = name
    d["source"] = f"Hugging Face {arch}"
    d.setdefault("sizes", {})
    d.setdefault("embeddings", {})
    for f in fam.fields:
        v = _cfg(cfg, f.hf, f.default)
        if v is None:
            continue
        _set(d, f.path, f.to_spec(v))
    out = fam.archs[arch](cfg)
    d["heads"] = copy.deepcopy(out["heads"])
    if out.get("pooler") is not None:
        d["pooler"] = copy.deepcopy(out["pooler"])
    init = copy.deepcopy(INIT.get(fam.model_type, {"kind": "normal"}))
    std = next((cfg[k] for k in INIT_STD_KEYS if cfg.get(k) is not None), None)
    if init["kind"] == "normal" and std is not None:
        init["std"] = float(std)
    d["init"] = init
    if fam.hook is not None:
        fam.hook(cfg, d)
    return d


def config_to_spec(cfg: Cfg, name: str = "hf-model") -> ModelSpec:
    """A HF config (the parsed ``config.json``) -> validated `ModelSpec`.

    Raises:
        ConversionError: unknown model_type or architecture, or a config value with no spec
            equivalent (named with its value and what is supported).
    """
    d = config_to_dict(cfg, name)
    try:
        return validate(Merged(d, file="config.json"))
    except SpecError as e:
        raise ConversionError(f"config.json converts to an invalid spec: {e}") from None


# ------------------------------------------------------------------------ backwards


def spec_to_config(spec: ModelSpec, model_type: str, arch: str) -> Cfg:
    """The inverse of `config_to_spec` for one family and architecture (checked by `find_family`)."""
    fam = FAMILIES[model_type]
    data = spec.model_dump(mode="json")
    cfg: Cfg = {"model_type": model_type, "architectures": [arch]}
    for fx in fam.fixed:
        cfg[fx.hf] = fx.values[0]
    cfg.update(fam.extra_hf)
    for f in fam.fields:
        v = _get(data, f.path)
        if v is None:
            continue
        cfg.setdefault(f.hf, f.to_hf(v))
    lm = [h for h in spec.heads if h.kind in ("lm", "mlm")]
    cfg["tie_word_embeddings"] = lm[0].tie_embeddings if lm else True
    if lm and lm[0].transform is not None:
        cfg.setdefault("hidden_act", F("hidden_act", "", values=ACT).to_hf(lm[0].transform.activation))
    labels = [h.labels for h in spec.heads if h.kind in ("sequence_classification", "token_classification",
                                                         "image_classification")]
    if labels:
        cfg["num_labels"] = labels[0]
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels[0])}
        cfg["label2id"] = {f"LABEL_{i}": i for i in range(labels[0])}
    if spec.init.kind == "normal":
        cfg.setdefault("initializer_range", spec.init.std)
    if fam.unhook is not None:
        fam.unhook(spec, cfg)
    return cfg


def _comparable(spec: ModelSpec) -> dict[str, Any]:
    # The top-level block is only the template of the stacks, which carry the resolved blocks;
    # objectives, tuning and init say how to train, not what the weights are.
    d = spec.model_dump(mode="json", exclude={"name", "source", "extends", "objectives", "tuning", "init", "block"})
    # Dropout is training-time only; a spec with other rates still exports to the same weights.
    return _strip(d, re.compile(r"dropout"))


def _strip(d: Any, pat: re.Pattern[str]) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v, pat) for k, v in d.items() if not pat.search(k)}
    if isinstance(d, list):
        return [_strip(v, pat) for v in d]
    return d


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}.{k}" if prefix else k).items()}
    if isinstance(d, list):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}[{i}]").items()}
    return {prefix: d}


def find_family(spec: ModelSpec) -> tuple[str, str, Cfg]:
    """The (model_type, architecture, config) whose table reproduces `spec` exactly.

    Raises:
        ConversionError: no supported Hugging Face class has this architecture (the message
            names the closest one and the spec fields it cannot reproduce).
    """
    want = _flat(_comparable(spec))
    closest: tuple[int, str, list[str]] | None = None
    for mt, fam in FAMILIES.items():
        for arch in fam.archs:
            try:
                cfg = spec_to_config(spec, mt, arch)
                back = _flat(_comparable(config_to_spec(cfg, spec.name)))
            except (ConversionError, KeyError, TypeError, AttributeError):
                continue
            if back == want:
                return mt, arch, cfg
            diffs = [f"{k} ({want.get(k)!r} would become {back.get(k)!r})" for k in sorted(set(want) | set(back))
                     if want.get(k) != back.get(k)]
            if closest is None or len(diffs) < closest[0]:
                closest = (len(diffs), arch, diffs)
    hint = ""
    if closest is not None:
        hint = f"; closest is {closest[1]}, which cannot express: {', '.join(closest[2][:6])}"
    raise ConversionError(f"spec {spec.name!r} matches no supported Hugging Face architecture{hint}")
