"""``roberta``: a BERT with padding-aware positions (offset by the padding index) and its own heads."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import TANH_POOLER, Cfg, bare, cfg_value, classifier, mlm, multiple_choice, need, question_answering
from .bert import bert_like, bert_names, causal_lm
from .weights import R


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    offset = int(cfg_value(cfg, "pad_token_id", 1)) + 1  # positions start after the padding index
    d["position"] = {"kind": "learned", "offset": offset, "padding_aware": True}
    d["sizes"]["max_positions"] = cfg_value(cfg, "max_position_embeddings", 514) - offset


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    pos = spec.position
    need(pos.kind == "learned", "roberta", f"position kind {pos.kind!r} (its positions are learned)")
    need(spec.sizes.max_positions is not None, "roberta", "a spec without sizes.max_positions")
    cfg["pad_token_id"] = spec.position.offset - 1
    cfg["max_position_embeddings"] = spec.sizes.max_positions + spec.position.offset


NAMES = bert_names("roberta") | {
    "head/mlm.transform": R("lm_head.dense.{p}"),
    "head/mlm.norm": R("lm_head.layer_norm.{p}"),
    "head/mlm.bias": [R("lm_head.decoder.bias", also=("lm_head.bias",)), R("lm_head.bias")],
    "head/mlm.proj": R("lm_head.decoder.{p}"),
    # RobertaClassificationHead: dense + tanh on <s>, then out_proj == a dense tanh pooler + classifier.
    # RobertaForMultipleChoice keeps RobertaModel's own pooler (the graph has a multiple_choice head)
    "pooler.dense": [R("roberta.pooler.dense.{p}", when=("heads.multiple_choice",)), R("classifier.dense.{p}")],
    "head/sequence_classification": R("classifier.out_proj.{p}"),
}

def roberta_like(model_type: str, prefix: str) -> Any:
    """RoBERTa's family under another model_type and class prefix (XLM-RoBERTa: the same classes)."""
    return bert_like(
        model_type, prefix,
        names=NAMES,
        ignored=(r"^lm_head\.decoder\.weight$",),
        hook=_hook,
        unhook=_unhook,
        base_prefix="roberta",
        causal=f"{prefix}ForCausalLM",
        archs={
            f"{prefix}Model": bare,
            # RobertaLMHead applies gelu whatever hidden_act says.
            f"{prefix}ForMaskedLM": lambda c: {"heads": [mlm({**c, "hidden_act": "gelu"})]},
            f"{prefix}ForCausalLM": lambda c: causal_lm({**c, "hidden_act": "gelu"}),  # the same RobertaLMHead
            f"{prefix}ForSequenceClassification":
                lambda c: {"heads": [classifier("sequence_classification", c)], "pooler": TANH_POOLER},
            f"{prefix}ForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
            f"{prefix}ForQuestionAnswering": question_answering,
            f"{prefix}ForMultipleChoice": multiple_choice,
        },
    )


FAMILY = roberta_like("roberta", "Roberta")
