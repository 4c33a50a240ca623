"""Pooling and output heads.

LM / MLM heads optionally transform (dense -> activation -> norm, BERT), then project onto
the vocabulary with their own ``proj`` or with the token-embedding matrix they are tied to
(held as an unregistered reference, so the matrix is registered and saved once, under the
embedding's name).  ``scale_tied`` multiplies by ``hidden ** -0.5`` first (T5).
Classifiers are one linear layer on pooled (nsp, sop, sequence/image) or per-token states.
The kinds build them (``build`` in plmgraph/kinds/pool/ and plmgraph/kinds/head/).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import activation
from .norm import make_norm


class Pooler(nn.Module):
    """[B, T, H] -> [B, H]: the first token (cls), the mean of kept tokens, the last kept token or the
    first kept token;
    then optionally dense + activation (BERT's tanh pooler)."""

    def __init__(self, kind: str, hidden: int, dense: bool, act: str, bias: bool = True,
                 norm: dict | None = None, by_mask: bool = True, eos_id: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.eos_id = eos_id  # kind eos: the token id whose last occurrence in input_ids is pooled (BART)
        self.by_mask = by_mask  # kind last: false takes position -1 whatever the mask (XLNet's summary)
        if dense:
            self.dense = nn.Linear(hidden, hidden, bias=bias)
            self.act = activation(act)
            if norm is not None:  # ModernBERT's classifier head: dense, activation, norm
                self.norm = make_norm(hidden, norm)
        self.has_dense = dense
        self.has_norm = dense and norm is not None

    def forward(self, h: Tensor, mask: Tensor | None = None, ids: Tensor | None = None) -> Tensor:
        if self.kind == "eos":  # the last position whose input token is eos_id (BART's sequence classifier)
            x = h[torch.arange(h.shape[0], device=h.device), self._last_eos(h, ids)]
        elif self.kind == "cls":
            x = h[:, 0]
        elif self.kind == "first":  # the first kept token (ModernBERT's multiple choice: <cls> under left padding)
            if mask is None:
                x = h[:, 0]
            else:
                first = mask[:, -h.shape[1]:].long().argmax(1)  # [B]
                x = h[torch.arange(h.shape[0], device=h.device), first]
        elif self.kind == "mean":
            if mask is None:
                x = h.mean(dim=1)
            else:
                m = mask[:, -h.shape[1]:, None].to(h.dtype)  # [B, T, 1]
                x = (h * m).sum(1) / m.sum(1).clamp(min=1)
        else:  # last kept token (right padding), as HF *ForSequenceClassification
            if mask is None or not self.by_mask:
                x = h[:, -1]
            else:
                last = mask[:, -h.shape[1]:].long().sum(1).clamp(min=1) - 1  # [B]
                x = h[torch.arange(h.shape[0], device=h.device), last]
        if not self.has_dense:
            return x
        x = self.act(self.dense(x))
        return self.norm(x) if self.has_norm else x

    def _last_eos(self, h: Tensor, ids: Tensor | None) -> Tensor:
        from ..errors import InputError

        if ids is None:
            raise InputError("this model's pooler (kind eos) pools the last eos token of input_ids; pass input_ids")
        if ids.shape[1] != h.shape[1]:
            raise InputError(f"this model's pooler (kind eos) picks decoder states at the eos positions of input_ids: "
                             f"decoder_input_ids must have input_ids' length {ids.shape[1]}, got {h.shape[1]} (BART: "
                             "input_ids shifted right behind the decoder start token)")
        eos = ids.eq(self.eos_id)
        if not bool(eos.any(1).all()):
            raise InputError(f"this model's pooler (kind eos) needs an eos token (id {self.eos_id}) in every row of "
                             "input_ids; some row has none")
        return ids.shape[1] - 1 - eos.flip(1).long().argmax(1)  # [B]


class LMHead(nn.Module):
    """hidden -> [transform] -> vocabulary logits, tied or with its own projection."""

    def __init__(self, hidden: int, width: int, vocab: int, *, tied: nn.Module | None, bias: bool,
                 transform: dict | None, norm: dict | None, scale_tied: bool, softcap: float | None = None) -> None:
        super().__init__()
        if transform is not None:
            self.transform = nn.Linear(hidden, width, bias=transform.get("bias", True))
            self.act = activation(transform["activation"])
            if transform["norm"]:
                self.norm = make_norm(width, norm)
        self.has_transform = transform is not None
        self.has_norm = bool(transform and transform["norm"])
        if tied is None:
            self.proj = nn.Linear(width, vocab, bias=False)
        else:
            self.__dict__["tied"] = tied  # the token embedding; registered by the model, not here
        self.bias = nn.Parameter(torch.zeros(vocab)) if bias else None
        self.scale = hidden**-0.5 if (scale_tied and tied is not None) else None
        self.softcap = softcap

    @property
    def weight(self) -> Tensor:
        """The [vocab, width] output matrix (the embedding's when tied)."""
        tied = self.__dict__.get("tied")
        return tied.weight if tied is not None else self.proj.weight

    def forward(self, h: Tensor) -> Tensor:
        if self.has_transform:
            h = self.act(self.transform(h))
            if self.has_norm:
                h = self.norm(h)
        if self.scale is not None:
            h = h * self.scale
        logits = F.linear(h, self.weight, self.bias)
        if self.softcap is not None:  # Gemma 2: c * tanh(logits / c)
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class TransformedClassifier(nn.Linear):
    """A per-token classifier after a transform: dense -> activation (-> norm) on every token, then the
    linear classifier (ModernBERT's ``head`` + ``classifier``).  The classifier's own ``weight`` / ``bias``
    keep their names, so the state dict is the plain classifier's plus ``transform.*`` and ``norm.*``."""

    def __init__(self, hidden: int, labels: int, *, bias: bool, transform: dict, norm: dict | None) -> None:
        super().__init__(hidden, labels, bias=bias)
        self.transform = nn.Linear(hidden, hidden, bias=transform["bias"])
        self.act = activation(transform["activation"])
        if transform["norm"]:
            self.norm = make_norm(hidden, norm)
        self.has_transform = True
        self.has_norm = bool(transform["norm"])

    def forward(self, h: Tensor) -> Tensor:
        h = self.act(self.transform(h))
        if self.has_norm:
            h = self.norm(h)
        return super().forward(h)
