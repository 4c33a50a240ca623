"""Training, evaluation and generation for compiled models (issue 8).

    from plmgraph.train import Trainer, TrainConfig, generate, evaluate
    ids = generate(model, tokenizer, "The", max_new_tokens=50, top_p=0.9)

Modules: `loss` (what ``model(..., labels=...)`` returns), `objectives` (one collator per
objective kind, chosen by the spec's ``objectives``), `data` (corpora, packing, held-out
split), `tokenizer` (Hugging Face ``tokenizers``: trained on the corpus or loaded), `trainer`
(AdamW, warmup + cosine, checkpoints, exact resume), `generate` (KV-cache decoding) and
`evaluate` (loss, perplexity, MLM accuracy).  Names are imported on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "model_loss": ("plmgraph.train.loss", "model_loss"),
    "collator_for": ("plmgraph.train.objectives", "collator_for"),
    "Corpus": ("plmgraph.train.data", "Corpus"),
    "load_corpus": ("plmgraph.train.data", "load_corpus"),
    "train_tokenizer": ("plmgraph.train.tokenizer", "train_tokenizer"),
    "load_tokenizer": ("plmgraph.train.tokenizer", "load_tokenizer"),
    "TrainConfig": ("plmgraph.train.trainer", "TrainConfig"),
    "Trainer": ("plmgraph.train.trainer", "Trainer"),
    "generate": ("plmgraph.train.generate", "generate"),
    "evaluate": ("plmgraph.train.evaluate", "evaluate"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plmgraph.train' has no attribute {name!r}")


__all__ = sorted(_LAZY)
