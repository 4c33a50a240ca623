"""``ernie``: ERNIE (Baidu) in transformers, a BERT with an optional task-type embedding."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import Cfg, cfg_value
from .bert import bert_like, bert_names


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    if cfg.get("use_task_id"):
        d["embeddings"]["task_types"] = cfg_value(cfg, "task_type_vocab_size", 3)


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["use_task_id"] = bool(spec.embeddings.task_types)
    if spec.embeddings.task_types:
        cfg["task_type_vocab_size"] = spec.embeddings.task_types


FAMILY = bert_like(
    "ernie", "Ernie",
    names=bert_names("ernie"),
    causal="ErnieForCausalLM",
    ignored=(r"^cls\.predictions\.decoder\.weight$",),
    hook=_hook,
    unhook=_unhook,
)
