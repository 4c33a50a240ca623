"""Input embeddings: token, segment, task type, image patches, projection, and the per-stack sum.

A stack's embedding module (``<stack>.embed``) adds up its parts, normalises, applies
dropout and projects E -> hidden when the embedding is factorised (ALBERT).  The token
matrix of a one-stack model or of stacks that share it lives at ``embed.token`` (the model
owns it); the stack then holds a plain, unregistered reference, so it is neither
registered nor saved twice.
The parts are built by their kinds (``build`` in plmgraph/kinds/embedding/).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Embedding(nn.Embedding):
    """`nn.Embedding` that draws no random init on the meta device.

    `build` constructs every module on the meta device and initialises the real weights later
    (`PLMModel.init_weights`), so the default ``normal_`` would be wasted work; worse, on a meta
    tensor ``normal_`` runs a Python decomposition wrapped in ``torch._disable_dynamo``, whose
    first call imports ``torch._dynamo`` (seconds), which a shapes-only meta build never needs.
    Off the meta device it initialises as `nn.Embedding` does.
    """

    def reset_parameters(self) -> None:
        if self.weight.is_meta:
            return
        super().reset_parameters()


class TokenEmbedding(Embedding):
    """Token ids -> vectors, optionally scaled by sqrt(hidden) (Transformer 2017, BART)."""

    def __init__(self, vocab: int, dim: int, scale: float | None = None) -> None:
        super().__init__(vocab, dim)
        self.scale = scale

    def forward(self, ids: Tensor) -> Tensor:
        x = super().forward(ids)
        return x * self.scale if self.scale else x


class PatchEmbedding(nn.Module):
    """ViT: non-overlapping p x p patches, linearly embedded (a strided conv), with a [CLS] in front."""

    def __init__(self, channels: int, dim: int, patch: int, cls_token: bool) -> None:
        super().__init__()
        self.patch = patch
        self.weight = nn.Parameter(torch.empty(dim, channels, patch, patch))
        self.bias = nn.Parameter(torch.zeros(dim))
        if cls_token:
            self.cls = nn.Parameter(torch.empty(1, 1, dim))
        self.cls_token = cls_token

    def forward(self, pixels: Tensor) -> Tensor:
        x = nn.functional.conv2d(pixels, self.weight, self.bias, stride=self.patch)  # [B, E, h, w]
        x = x.flatten(2).transpose(1, 2)  # [B, N, E]
        if self.cls_token:
            x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1)  # [B, N+1, E]
        return x


class MaskToken(nn.Module):
    """A learned [1, 1, E] vector (XLNet's query-stream input)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, 1, dim))


class StackEmbeddings(nn.Module):
    """tokens (or patches) + positions + segments + task types -> norm -> dropout -> project.

    Learned positions read row ``offset + position``.  With ``padding_aware`` (RoBERTa)
    positions count only kept tokens, ``cumsum(mask) - 1``, and padding reads row
    ``offset - 1`` (HF ``create_position_ids_from_input_ids``); otherwise positions are
    ``past, past + 1, ...`` (BART, GPT-2).
    """

    def __init__(self, *, token: nn.Module | None, own_token: bool, parts: dict[str, nn.Module],
                 dropout: float, padding_aware: bool = False) -> None:
        super().__init__()
        if own_token:
            self.token = token
        else:
            self.__dict__["shared_token"] = token  # owned by the model at `embed.token`
        for name, module in parts.items():
            setattr(self, name, module)
        self.drop = nn.Dropout(dropout)
        self.padding_aware = padding_aware
        self.has = set(parts)

    @property
    def max_positions(self) -> int | None:
        """Longest past + new sequence the position table covers (None: unbounded)."""
        pos = getattr(self, "position", None)
        return None if pos is None else pos.max_positions

    @property
    def segments(self) -> int | None:
        return self.segment.num_embeddings if "segment" in self.has else None

    @property
    def tokens(self) -> nn.Module:
        shared = self.__dict__.get("shared_token")
        return shared if shared is not None else self.token

    def forward(self, input_ids: Tensor | None, positions: Tensor, token_type_ids: Tensor | None = None,
                task_type_ids: Tensor | None = None, pixel_values: Tensor | None = None) -> Tensor:
        if "patches" in self.has:
            x = self.patches(pixel_values)  # [B, N+1, E]
        else:
            x = self.tokens(input_ids)  # [B, T, E]
        if "position" in self.has:
            pos = self.position
            if isinstance(pos, nn.Embedding):
                x = x + pos(positions + pos.offset)
            else:
                x = x + pos(positions).to(x.dtype)
        if "segment" in self.has:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.segment(token_type_ids)
        if "task_type" in self.has:
            if task_type_ids is None:
                task_type_ids = torch.zeros_like(input_ids)
            x = x + self.task_type(task_type_ids)
        if "norm" in self.has:
            x = self.norm(x)
        x = self.drop(x)
        if "project" in self.has:
            x = self.project(x)  # [B, T, H]
        return x


def positions_from_mask(mask: Tensor) -> Tensor:
    """RoBERTa positions: kept tokens count 0, 1, ...; padding gets -1."""
    mask = mask.long()
    return torch.cumsum(mask, dim=1) * mask - 1


__all__ = ["Embedding", "PatchEmbedding", "StackEmbeddings", "TokenEmbedding", "positions_from_mask"]
