"""The losses `PLMModel.forward(..., labels=...)` returns, as Hugging Face computes them.

Which loss `labels` selects follows the primary (first) head and the family:

===========================================  ===============================================
primary head / model                          loss on ``labels``
===========================================  ===============================================
``lm`` on a decoder (causal)                  next-token CE: logits[:, :-1] vs labels[:, 1:]
                                              (HF ``*ForCausalLM``); no shift for GLM blank
                                              infilling (labels come shifted) or XLNet's
                                              ``target_mapping`` (one label per prediction)
``lm`` / ``mlm`` on an encoder                CE on every label != -100 (HF ``*ForMaskedLM``)
``lm`` on an encoder-decoder                  CE of the decoder's logits vs labels, no shift
                                              (HF T5 / BART; ``decoder_input_ids`` are the
                                              labels shifted right, passed by the caller)
``sequence_classification`` (pooled)          CE on [B] class ids; MSE when ``labels: 1``
``token_classification``                      CE per token, -100 ignored
``question_answering``                        [B, 2] start and end positions: the mean of the
                                              two CEs over positions, a position outside the
                                              sequence ignored (HF ``*ForQuestionAnswering``)
``multiple_choice``                           CE of the [B, C] scores vs [B] right choices
``replaced_token_detection``                  binary CE (with logits) of the [B, T] logits vs
                                              [B, T] 0/1 labels, -100 ignored (HF
                                              ``ElectraForPreTraining`` over its kept tokens)
===========================================  ===============================================

``next_sentence_label`` / ``sentence_order_label`` [B] add the CE of the ``nsp`` / ``sop``
head (HF ``BertForPreTraining``, ``AlbertForPreTraining``: the sum of both losses).  Logits
are upcast to fp32 first, as Hugging Face does.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

IGNORE = -100


def token_ce(logits: Tensor, labels: Tensor, *, shift: bool, reduction: str = "mean") -> Tensor:
    """Cross-entropy of [B, T, V] logits against [B, T] labels (-100 ignored), optionally shifted."""
    if logits.shape[:-1] != labels.shape:
        raise InputError(f"labels must have shape {tuple(logits.shape[:-1])} (one per logit row), "
                         f"got {tuple(labels.shape)}")
    if shift:  # the labels move left, not the logits (as HF does): a [B, T-1, V] slice would copy the
        labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE)  # logits and their gradient every step
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1).long(),
                           ignore_index=IGNORE, reduction=reduction)


def span_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """HF's question-answering loss: [B, T, 2] start/end logits vs [B, 2] (start, end) positions; a position
    outside [0, T) is clamped to T and ignored."""
    B, T = logits.shape[0], logits.shape[1]
    if labels.shape != (B, 2):
        raise InputError(f"labels for a question_answering head are (start, end) positions, shape ({B}, 2); "
                         f"got {tuple(labels.shape)}")
    pos = labels.long().clamp(0, T)
    return sum(F.cross_entropy(logits[..., i].float(), pos[:, i], ignore_index=T) for i in (0, 1)) / 2


def shifts(model: Any, target_mapping: Tensor | None = None) -> bool:
    """Whether `model`'s primary-head labels are next-token (shifted) labels."""
    spec = model.spec
    if spec.family != "decoder" or target_mapping is not None:
        return False
    return not any(o.kind == "blank_infilling" for o in spec.objectives)


def model_loss(model: Any, outputs: dict[str, Tensor], labels: Tensor | None, *,
               next_sentence_label: Tensor | None = None, sentence_order_label: Tensor | None = None,
               target_mapping: Tensor | None = None) -> Tensor:
    """The loss of one forward pass (see the module docstring)."""
    spec = model.spec
    heads = {h.name: h for h in spec.heads}
    if not heads:
        raise InputError("labels given, but this model has no head to compute a loss on")
    total: Tensor | None = None
    if labels is not None:
        primary = spec.heads[0]
        logits = outputs[primary.name]
        if primary.kind in ("lm", "mlm", "token_classification"):
            total = token_ce(logits, labels, shift=primary.kind == "lm" and shifts(model, target_mapping))
        elif primary.kind in ("sequence_classification", "image_classification", "nsp", "sop"):
            if logits.shape[-1] == 1:
                total = F.mse_loss(logits.float().squeeze(-1), labels.float().reshape(-1))
            else:
                if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
                    raise InputError(f"labels for a {primary.kind} head are one class id per sequence, shape "
                                     f"({logits.shape[0]},); got {tuple(labels.shape)}")
                total = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE)
        elif primary.kind == "question_answering":
            total = span_ce(logits, labels)
        elif primary.kind == "multiple_choice":  # [B, C] scores vs [B] the right choice
            if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
                raise InputError(f"labels for a multiple_choice head are one choice index per question, shape "
                                 f"({logits.shape[0]},); got {tuple(labels.shape)}")
            total = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE)
        elif primary.kind == "replaced_token_detection":  # [B, T] logits vs 1 replaced / 0 original
            if labels.shape != logits.shape:
                raise InputError(f"labels for a replaced_token_detection head are one 0/1 label per token, shape "
                                 f"{tuple(logits.shape)}; got {tuple(labels.shape)}")
            keep = labels != IGNORE
            total = F.binary_cross_entropy_with_logits(logits.float()[keep], labels[keep].float())
        else:  # pragma: no cover - every head kind is listed above
            raise InputError(f"no loss is defined for a primary head of kind {primary.kind!r}")
    for kind, lab in (("nsp", next_sentence_label), ("sop", sentence_order_label)):
        if lab is None:
            continue
        name = next((n for n, h in heads.items() if h.kind == kind), None)
        if name is None:
            raise InputError(f"{'next_sentence_label' if kind == 'nsp' else 'sentence_order_label'} given, but "
                             f"this model has no {kind} head")
        part = F.cross_entropy(outputs[name].float(), lab.reshape(-1).long(), ignore_index=IGNORE)
        total = part if total is None else total + part
    if total is None:
        raise InputError("no labels given")
    return total


__all__ = ["IGNORE", "model_loss", "shifts", "span_ce", "token_ce"]
