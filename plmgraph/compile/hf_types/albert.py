"""``albert``: a BERT with factorised embeddings (E < H) and layers shared in groups."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import TANH_POOLER, Cfg, F, bare, cfg_value, classifier, mlm, multiple_choice, question_answering
from .bert import bert_like, bert_names
from .weights import QKV, R


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    layers, groups = cfg_value(cfg, "num_hidden_layers"), cfg_value(cfg, "num_hidden_groups", 1)
    if cfg_value(cfg, "inner_group_num", 1) != 1:
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


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    sh = spec.sharing
    cfg["num_hidden_groups"] = {"all": 1, "none": spec.sizes.layers}.get(sh.kind, sh.groups)
    cfg["inner_group_num"] = 1


_L = "albert.encoder.albert_layer_groups.{group}.albert_layers.0"
NAMES = bert_names("albert", mlm="predictions") | {
    "project": R("albert.encoder.embedding_hidden_mapping_in.{p}"),
    "attn.qkv": QKV(_L + ".attention.{x}.{p}"),
    "attn.out": R(f"{_L}.attention.dense.{{p}}"),
    "attn_norm": R(f"{_L}.attention.LayerNorm.{{p}}"),
    "mlp.up": R(f"{_L}.ffn.{{p}}"),
    "mlp.down": R(f"{_L}.ffn_output.{{p}}"),
    "mlp_norm": R(f"{_L}.full_layer_layer_norm.{{p}}"),
    "pooler.dense": R("albert.pooler.{p}"),
    "head/mlm.transform": R("predictions.dense.{p}"),
    "head/mlm.norm": R("predictions.LayerNorm.{p}"),
    "head/sop": R("sop_classifier.classifier.{p}"),
}

FAMILY = bert_like(
    "albert", "Albert",
    names=NAMES,
    ignored=(r"^predictions\.decoder\.weight$",),
    hook=_hook,
    unhook=_unhook,
    extra_fields=(F("embedding_size", "embeddings.size", 128),),
    archs={
        "AlbertModel": bare,
        "AlbertForPreTraining": lambda c: {"heads": [mlm(c), {"kind": "sop"}], "pooler": TANH_POOLER},
        "AlbertForMaskedLM": lambda c: {"heads": [mlm(c)]},
        "AlbertForSequenceClassification":
            lambda c: {"heads": [classifier("sequence_classification", c)], "pooler": TANH_POOLER},
        "AlbertForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
        "AlbertForQuestionAnswering": question_answering,
        "AlbertForMultipleChoice": multiple_choice,
    },
)
