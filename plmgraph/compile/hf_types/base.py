"""What every Hugging Face ``model_type`` module is made of, and the two readers of a `Family`.

A `Family` is data: a constant spec skeleton (`base`), a list of `F` entries mapping one
config field onto one spec field (with the HF default, and a value table where the two
vocabularies differ), `Fixed` config values plmgraph requires (anything else is a
`ConversionError`, never a silently different model), the architectures it knows
(``config.architectures[0]`` -> heads and pooler), its weight names (`weights.Rule`
templates per graph role), the checkpoint tensors to ignore, how HF initialises it, and,
for the few fields that are not a one-to-one copy (rotary parameters, T5's
``feed_forward_proj``, ALBERT's layer groups, RoBERTa's position offset), a pair of small
functions: `hook` (config -> spec mapping) and `unhook` (spec -> config).

`Family.to_spec_dict` reads the table forwards, `Family.to_config` backwards.  An unhook that
meets a spec its family cannot express raises `ConversionError` (`find_family` then tries the
next family); any other exception is a bug and propagates.

This module never imports torch or transformers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .weights import Rule

REQUIRED = object()
Cfg = dict[str, Any]
Hook = Callable[[Cfg, dict[str, Any]], None]
Unhook = Callable[[ModelSpec, Cfg], None]
Arch = Callable[[Cfg], dict[str, Any]]  # config -> {"heads": [...], "pooler": {...} | None}

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

#: Config keys HF families use for the std of their normal init (BART: ``init_std``).
INIT_STD_KEYS = ("initializer_range", "init_std")


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
        if not isinstance(v, Hashable) or v not in self.values:
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
    """Everything plmgraph knows about one Hugging Face ``model_type``."""

    model_type: str
    base: dict[str, Any]  # the spec mapping every config of this type shares
    fields: tuple[F, ...]
    archs: Mapping[str, Arch]
    names: Mapping[str, Rule | list[Rule]]  # graph role -> HF tensor name templates (see `weights`)
    ignored: tuple[str, ...] = ()  # regexes of checkpoint tensors that are not parameters
    #: How HF's `_init_weights` draws a fresh model, as a spec `init`; `normal` takes its std
    #: from the config (`INIT_STD_KEYS`).
    init: Mapping[str, Any] = field(default_factory=lambda: {"kind": "normal"})
    fixed: tuple[Fixed, ...] = ()
    hook: Hook | None = None
    unhook: Unhook | None = None
    extra_hf: Mapping[str, Any] = field(default_factory=dict)  # written on export (ids HF needs)
    #: The bare base-model architectures (``BertModel``, ``LlamaModel``): their checkpoints hold the
    #: tensor names without `base_prefix` + "." (HF's ``base_model_prefix``, e.g. ``bert``, ``model``).
    bare: tuple[str, ...] = ()
    base_prefix: str = ""
    #: Architectures whose checkpoints name the base model otherwise: arch -> the prefix they use in place
    #: of `base_prefix` (``LlamaForQuestionAnswering`` keeps the base model under ``transformer``).
    renamed: Mapping[str, str] = field(default_factory=dict)
    #: Architectures HF ships that plmgraph refuses by name: arch -> why (what has no spec equivalent).
    refused: Mapping[str, str] = field(default_factory=dict)

    def architecture(self, cfg: Cfg) -> str:
        archs = cfg.get("architectures") or []
        arch = archs[0] if archs else None
        if arch in self.refused:
            raise ConversionError(f"config.json: architectures[0] = {arch!r} is not supported: {self.refused[arch]}; "
                                  f"supported for model_type {self.model_type!r}: {', '.join(self.archs)}")
        if arch not in self.archs:
            raise ConversionError(
                f"config.json: architectures[0] = {arch!r} is not supported for model_type "
                f"{self.model_type!r}; supported: {', '.join(self.archs)}"
            )
        return arch

    def check_types(self, cfg: Cfg) -> None:
        """Refuse a config value of the wrong JSON type (``hidden_size: "768"``, ``tie_word_embeddings: "yes"``)
        and a quantized checkpoint, naming the field, its value and what is expected."""
        if cfg.get("quantization_config") is not None:
            q = cfg["quantization_config"]
            method = q.get("quant_method") if isinstance(q, dict) else q
            raise ConversionError(f"config.json: quantization_config (quant_method = {method!r}) is not supported: "
                                  "plmgraph loads floating-point weights; supported: an unquantized checkpoint "
                                  "(dequantize it first)")
        arch = cfg.get("architectures")
        if arch is not None and not (isinstance(arch, list) and all(isinstance(a, str) for a in arch)):
            raise ConversionError(f"config.json: architectures must be a list of class names such as "
                                  f"[\"LlamaForCausalLM\"], got {_short(arch)}")
        expected: dict[str, type] = {"tie_word_embeddings": bool}
        for k in ("rope_parameters", "rope_scaling"):
            expected[k] = dict
        for f in self.fields:
            if f.values is not None:
                continue  # a value table names its own allowed values
            d = f.default
            if d is not REQUIRED and not callable(d) and d is not None:
                expected.setdefault(f.hf, type(d))
            elif f.path.startswith("sizes.") or f.path.endswith(("heads", "head_dim", "ffn", "experts", "top_k")):
                expected.setdefault(f.hf, int)
        for k, t in expected.items():
            v = cfg.get(k)
            if v is None:
                continue
            ok = isinstance(v, t) and not (t is not bool and isinstance(v, bool))
            if t is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                want = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
                        dict: "a JSON object"}.get(t, t.__name__)
                raise ConversionError(f"config.json: {k} = {_short(v)} has the wrong type; expected {want}")

    def to_spec_dict(self, cfg: Cfg, name: str = "hf-model") -> dict[str, Any]:
        """A HF config -> the (unvalidated) spec mapping; raises `ConversionError` for what has no equivalent."""
        self.check_types(cfg)
        arch = self.architecture(cfg)
        for fx in self.fixed:
            if fx.hf in cfg and cfg[fx.hf] not in fx.values:
                raise ConversionError(
                    f"config.json: {fx.hf} = {cfg[fx.hf]!r} is not supported ({fx.why}); "
                    f"supported: {', '.join(repr(v) for v in fx.values)}"
                )
        d = copy.deepcopy(self.base)
        d["plmgraph"] = 1
        d["name"] = name
        d["source"] = f"Hugging Face {arch}"
        d.setdefault("sizes", {})
        d.setdefault("embeddings", {})
        for f in self.fields:
            v = cfg_value(cfg, f.hf, f.default)
            if v is None:
                continue
            _set(d, f.path, f.to_spec(v))
        out = self.archs[arch](cfg)
        d["heads"] = copy.deepcopy(out["heads"])
        if out.get("pooler") is not None:
            d["pooler"] = copy.deepcopy(out["pooler"])
        init = dict(copy.deepcopy(self.init))
        std = next((cfg[k] for k in INIT_STD_KEYS if cfg.get(k) is not None), None)
        if init["kind"] == "normal" and std is not None:
            init["std"] = float(std)
        d["init"] = init
        if self.hook is not None:
            self.hook(cfg, d)
        return d

    def to_config(self, spec: ModelSpec, arch: str) -> Cfg:
        """The inverse of `to_spec_dict` for one architecture (`find_family` checks it is one).

        Raises:
            ConversionError: the spec has a value this family cannot write.
        """
        data = spec.model_dump(mode="json")
        cfg: Cfg = {"model_type": self.model_type, "architectures": [arch]}
        for fx in self.fixed:
            cfg[fx.hf] = fx.values[0]
        cfg.update(self.extra_hf)
        for f in self.fields:
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
        if self.unhook is not None:
            self.unhook(spec, cfg)
        return cfg


def _short(v: Any) -> str:
    import json

    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def need(ok: bool, model_type: str, what: str) -> None:
    """In an unhook: refuse a spec this family cannot express (so `find_family` moves on)."""
    if not ok:
        raise ConversionError(f"Hugging Face {model_type} cannot express {what}")


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


def cfg_value(cfg: Cfg, key: str, default: Any = REQUIRED) -> Any:
    """``cfg[key]``, else HF's default (a callable default reads the config); REQUIRED refuses."""
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if default is REQUIRED:
        raise ConversionError(f"config.json ({cfg.get('model_type')}) has no {key!r}, which plmgraph needs")
    return default(cfg) if callable(default) else default


def num_labels(cfg: Cfg) -> int:
    if cfg.get("id2label"):
        return len(cfg["id2label"])
    return int(cfg.get("num_labels") or 2)


def tied(cfg: Cfg, default: bool = True) -> bool:
    return bool(cfg.get("tie_word_embeddings", default))


# ----------------------------------------------------------------- head tables
# Each architecture -> {"heads": [...], "pooler": {...} | None}; `c` is the config.

TANH_POOLER = {"kind": "cls", "dense": True, "activation": "tanh"}


def mlm(c: Cfg, act_key: str = "hidden_act", act: Mapping[str, str] = ACT) -> dict[str, Any]:
    """A BERT-style MLM head (dense + activation + LayerNorm, then the vocabulary projection)."""
    return {"kind": "mlm", "tie_embeddings": tied(c), "bias": True,
            "transform": {"activation": F(act_key, "", values=act).to_spec(cfg_value(c, act_key, "gelu")),
                          "norm": True}}


def classifier(kind: str, c: Cfg) -> dict[str, Any]:
    return {"kind": kind, "labels": num_labels(c)}


def lm(tie_default: bool, bias: bool = False) -> Arch:
    """An architecture with one LM head; HF's default for tie_word_embeddings is `tie_default`."""
    return lambda c: {"heads": [{"kind": "lm", "tie_embeddings": tied(c, tie_default), "bias": bias}]}


def bare(c: Cfg) -> dict[str, Any]:
    """A bare ``*Model``: no head; ``last_hidden_state`` is the output."""
    return {"heads": []}


def question_answering(c: Cfg) -> dict[str, Any]:
    """``*ForQuestionAnswering``: a linear ``qa_outputs`` hidden -> (start, end) on every token."""
    if num_labels(c) != 2:
        raise ConversionError(f"config.json: a question-answering model with num_labels = {num_labels(c)}; "
                              "its span head has 2 outputs (start, end); supported: 2")
    return {"heads": [{"kind": "question_answering"}]}


def multiple_choice(c: Cfg, pooler: dict[str, Any] | None = None) -> dict[str, Any]:
    """``*ForMultipleChoice``: a pooled linear ``classifier`` hidden -> 1 per candidate (BERT's tanh pooler)."""
    return {"heads": [{"kind": "multiple_choice"}], "pooler": pooler or TANH_POOLER}


def last_token_classifier(c: Cfg) -> dict[str, Any]:
    """``*ForSequenceClassification`` of the decoders: a bias-free ``score`` on the last real token."""
    return {"heads": [{"kind": "sequence_classification", "labels": num_labels(c), "bias": False}],
            "pooler": {"kind": "last"}}


def token_classifier(c: Cfg) -> dict[str, Any]:
    """``*ForTokenClassification`` of the decoders: a linear ``score`` (bias unless
    ``token_classification_bias`` is false) on every token."""
    return {"heads": [{"kind": "token_classification", "labels": num_labels(c),
                       "bias": bool(c.get("token_classification_bias", True))}]}


def then(a: Hook, b: Hook | None) -> Hook:
    """Hook `a`, then hook `b` (if any)."""

    def both(cfg: Cfg, d: dict[str, Any]) -> None:
        a(cfg, d)
        if b is not None:
            b(cfg, d)

    return both


def unhooks(*us: Unhook) -> Unhook:
    """Each unhook of `us`, in order."""

    def all_(spec: ModelSpec, cfg: Cfg) -> None:
        for u in us:
            u(spec, cfg)

    return all_
