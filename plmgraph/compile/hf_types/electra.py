"""``electra``: ELECTRA (Clark et al. 2020), BERT's encoder with its own embedding width
(``embedding_size``; projected to ``hidden_size`` by ``embeddings_project`` when they differ).

The discriminators people fine-tune import as ``ElectraModel`` and the task heads: sequence
classification (``ElectraClassificationHead``: dense + GELU on the first token, then ``out_proj``,
i.e. a GELU pooler and a classifier), token classification and question answering; the generator
as ``ElectraForMaskedLM`` (dense to the embedding width, GELU, LayerNorm, then the tied vocabulary
projection); the discriminator with its pre-training head as ``ElectraForPreTraining`` (the
``replaced_token_detection`` head: dense, hidden_act, dense -> one logit per token).
``ElectraForMultipleChoice``: ``ElectraSequenceSummary`` with ElectraConfig's defaults (summary_type
"first", summary_use_proj, summary_activation "gelu"), i.e. a GELU pooler on the first token, then the
multiple_choice classifier (hidden -> 1 per candidate); other summary settings are refused by name.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from .base import ACT, Cfg, F, bare, cfg_value, classifier, mlm, question_answering
from .bert import bert_like, bert_names, causal_lm
from .weights import R

GELU_POOLER = {"kind": "cls", "dense": True, "activation": "gelu"}


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    e, h = d["embeddings"].get("size"), d["sizes"]["hidden"]
    for head in d.get("heads", []):
        if head["kind"] in ("mlm", "lm") and not head["tie_embeddings"] and e != h:
            raise ConversionError("config.json: ELECTRA's generator with tie_word_embeddings = false and "
                                  "embedding_size != hidden_size: its vocabulary projection reads embedding_size, "
                                  "which an untied plmgraph mlm head cannot express")


def _summary(cfg: Cfg) -> dict[str, Any]:
    """ElectraForMultipleChoice's ElectraSequenceSummary as a pooler: only ElectraConfig's defaults."""
    for key, want in (("summary_type", "first"), ("summary_use_proj", True), ("summary_activation", "gelu")):
        v = cfg.get(key, want)
        if v != want:
            raise ConversionError(f"config.json: {key} = {v!r} is not supported for ElectraForMultipleChoice "
                                  f"(its sequence summary imports as the first token, dense, gelu); supported: "
                                  f"{want!r}")
    if cfg.get("summary_proj_to_labels"):
        raise ConversionError("config.json: summary_proj_to_labels = true is not supported for "
                              "ElectraForMultipleChoice (a summary projecting to num_labels); supported: false")
    return dict(GELU_POOLER)


FAMILY = bert_like(
    "electra", "Electra",
    names=bert_names("electra", mlm="generator_predictions") | {
        "project": R("electra.embeddings_project.{p}"),
        "head/mlm.transform": R("generator_predictions.dense.{p}"),
        "head/mlm.norm": R("generator_predictions.LayerNorm.{p}"),
        "head/mlm.bias": R("generator_lm_head.bias"),
        "head/mlm.proj": R("generator_lm_head.{p}"),
        "pooler.dense": [R("sequence_summary.summary.{p}", when=("heads.multiple_choice",)),
                         R("classifier.dense.{p}")],
        "head/sequence_classification": R("classifier.out_proj.{p}"),
        "head/replaced_token_detection.dense": R("discriminator_predictions.dense.{p}"),
        "head/replaced_token_detection.proj": R("discriminator_predictions.dense_prediction.{p}"),
    },
    ignored=(r"^generator_lm_head\.weight$",),  # the tied word embeddings' second name
    hook=_hook,
    extra_fields=(F("embedding_size", "embeddings.size", 128),),
    causal="ElectraForCausalLM",
    archs={
        "ElectraModel": bare,
        # ElectraGeneratorPredictions applies gelu whatever hidden_act says.
        "ElectraForMaskedLM": lambda c: {"heads": [mlm({**c, "hidden_act": "gelu"})]},
        "ElectraForCausalLM": lambda c: causal_lm({**c, "hidden_act": "gelu"}),  # the generator's head
        "ElectraForSequenceClassification":
            lambda c: {"heads": [classifier("sequence_classification", c)], "pooler": GELU_POOLER},
        "ElectraForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
        "ElectraForQuestionAnswering": question_answering,
        "ElectraForMultipleChoice": lambda c: {"heads": [{"kind": "multiple_choice"}], "pooler": _summary(c)},
        "ElectraForPreTraining": lambda c: {"heads": [
            {"kind": "replaced_token_detection",
             "activation": F("hidden_act", "", values=ACT).to_spec(cfg_value(c, "hidden_act", "gelu"))}]},
    },
)
