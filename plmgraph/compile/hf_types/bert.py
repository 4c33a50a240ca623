"""``bert``: BertModel and its heads; `bert_like` and `bert_names` also build ERNIE, RoBERTa and ALBERT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import (
    ACT,
    TANH_POOLER,
    Arch,
    Cfg,
    F,
    Family,
    Fixed,
    Hook,
    Unhook,
    bare,
    classifier,
    mlm,
    multiple_choice,
    need,
    question_answering,
    then,
    unhooks,
)
from .weights import QKV, R, Rule

BERT_ARCHS: dict[str, Arch] = {
    # The bare encoder (sentence embeddings, retrieval): last_hidden_state out.  Its checkpoint's
    # pooler (pooler_output) is not imported: no head reads it (see `Family.bare`).
    "Model": bare,
    "ForPreTraining": lambda c: {"heads": [mlm(c), {"kind": "nsp"}], "pooler": TANH_POOLER},
    # BertOnlyNSPHead: cls.seq_relationship on the tanh pooler, no MLM.
    "ForNextSentencePrediction": lambda c: {"heads": [{"kind": "nsp"}], "pooler": TANH_POOLER},
    "ForMaskedLM": lambda c: {"heads": [mlm(c)]},
    "ForSequenceClassification": lambda c: {"heads": [classifier("sequence_classification", c)],
                                            "pooler": TANH_POOLER},
    "ForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
    "ForQuestionAnswering": question_answering,  # no pooler (add_pooling_layer=False)
    "ForMultipleChoice": multiple_choice,
}


def _needs_segments(cfg: Cfg, d: dict[str, Any]) -> None:
    # HF's BERT family always looks token_type_ids up (zeros by default): no table, no model.
    if d["embeddings"].get("segments", 0) < 1:
        raise ConversionError(f"config.json: type_vocab_size = {d['embeddings'].get('segments')}; "
                              f"{cfg.get('model_type')} needs at least 1")


def causal_lm(c: Cfg) -> dict[str, Any]:
    """``BertLMHeadModel`` & co.: the MLM head's transform and projection as an ``lm`` head (next token)."""
    return {"heads": [{**mlm(c), "kind": "lm"}]}


def _causal(model_type: str, arch: str) -> tuple[Hook, Unhook]:
    """The hook pair of a family whose `arch` is its encoder run as a causal decoder (``is_decoder``)."""

    def hook(cfg: Cfg, d: dict[str, Any]) -> None:
        got = (cfg.get("architectures") or [None])[0]
        dec = bool(cfg.get("is_decoder", False))
        if got == arch:
            if not dec:
                raise ConversionError(f"config.json: {arch} with is_decoder = False (HF then runs it bidirectionally, "
                                      "not as a causal LM) is not supported; supported: True")
            d["family"] = "decoder"
            d["block"]["attention"]["mask"] = "causal"
        elif dec:
            raise ConversionError(f"config.json: is_decoder = True is not supported with {got} "
                                  f"(only {arch} imports as a causal decoder); supported: False")

    def unhook(spec: ModelSpec, cfg: Cfg) -> None:
        dec = spec.family == "decoder"
        need(dec == (cfg["architectures"][0] == arch), model_type, f"a {spec.family} as {cfg['architectures'][0]}")
        cfg["is_decoder"] = dec

    return hook, unhook


def bert_like(model_type: str, prefix: str, *, names: Mapping[str, Rule | list[Rule]], ignored: tuple[str, ...],
              hook: Hook | None = None, unhook: Unhook | None = None, extra_fields: tuple[F, ...] = (),
              archs: Mapping[str, Arch] | None = None, base_prefix: str = "", causal: str = "") -> Family:
    """A post-norm encoder with BertConfig's field names; `archs` defaults to ``<prefix>`` + BERT's.

    `base_prefix` is HF's ``base_model_prefix`` (``bert``): the bare ``<prefix>Model``'s checkpoint
    names drop it.  `causal` names the architecture that runs the encoder as a causal decoder
    (config ``is_decoder: true``; its MLM head's tensors become the ``lm`` head's); with default
    `archs` it is `causal_lm`."""
    archs = dict(archs or {prefix + k: v for k, v in BERT_ARCHS.items()})
    if causal:
        archs.setdefault(causal, causal_lm)
        names = {**names, **{"head/lm" + k[len("head/mlm"):]: v for k, v in names.items() if k.startswith("head/mlm.")}}
        c_hook, c_unhook = _causal(model_type, causal)
        hook = then(c_hook, hook)
        unhook = unhooks(unhook, c_unhook) if unhook is not None else c_unhook
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
            Fixed("is_decoder", (False, True) if causal else (False,),
                  f"is_decoder = true only with {causal}" if causal else "a causal BERT is not supported"),
            Fixed("add_cross_attention", (False,), "a cross-attending BERT is not supported"),
        ),
        archs=archs,
        names=names,
        # The bare model's pooler: HF always builds one, but nothing here reads pooler_output.
        ignored=(*ignored, r"^pooler\."),
        bare=(prefix + "Model",),
        base_prefix=base_prefix or model_type,
        hook=then(_needs_segments, hook),
        unhook=unhook,
    )


def bert_names(p: str, mlm: str = "cls.predictions", nsp: str = "cls.seq_relationship") -> dict[str, Any]:
    """BertModel's tensor names under the base-model prefix `p`, with BertForPreTraining's heads."""
    L = f"{p}.encoder.layer.{{layer}}"
    return {
        "token": R(f"{p}.embeddings.word_embeddings.{{p}}"),
        "position": R(f"{p}.embeddings.position_embeddings.{{p}}"),
        "segment": R(f"{p}.embeddings.token_type_embeddings.{{p}}"),
        "task_type": R(f"{p}.embeddings.task_type_embeddings.{{p}}"),
        "embed_norm": R(f"{p}.embeddings.LayerNorm.{{p}}"),
        "attn.qkv": QKV(L + ".attention.self.{x}.{p}"),
        "attn.out": R(f"{L}.attention.output.dense.{{p}}"),
        "attn_norm": R(f"{L}.attention.output.LayerNorm.{{p}}"),
        "mlp.up": R(f"{L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{L}.output.dense.{{p}}"),
        "mlp_norm": R(f"{L}.output.LayerNorm.{{p}}"),
        "pooler.dense": R(f"{p}.pooler.dense.{{p}}"),
        "head/mlm.transform": R(f"{mlm}.transform.dense.{{p}}"),
        "head/mlm.norm": R(f"{mlm}.transform.LayerNorm.{{p}}"),
        # The decoder Linear's bias is what forward adds; HF ties `<mlm>.bias` to it only when the
        # embeddings are tied (transformers 5), so an untied checkpoint may hold two different ones.
        "head/mlm.bias": [R(f"{mlm}.decoder.bias", also=(f"{mlm}.bias",)), R(f"{mlm}.bias")],
        "head/mlm.proj": R(f"{mlm}.decoder.{{p}}"),
        "head/nsp": R(f"{nsp}.{{p}}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/multiple_choice": R("classifier.{p}"),
    }


FAMILY = bert_like(
    "bert", "Bert",
    names=bert_names("bert"),
    causal="BertLMHeadModel",
    ignored=(r"^cls\.predictions\.decoder\.weight$",),  # the tied word embeddings' second name
)
