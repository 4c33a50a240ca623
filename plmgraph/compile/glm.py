"""GLM (Du et al. 2022): 2D positions and the prefix (blank-infilling) attention mask.

GLM reads one sequence ``[Part A | Part B]``: Part A is the corrupted text (each blanked
span replaced by one [MASK]), Part B the spans, each behind a [START] token.

* Positions (`GLM2DPosition`, ``position.kind: glm_2d``) are two learned tables added to
  the token embeddings: ``weight[position] + block_weight[block_position]``.  Row 0 of
  ``position_ids [B, 2, T]`` is the position in the corrupted text (a span token takes the
  position of its [MASK]); row 1 is the position inside the span (0 over Part A, 1, 2, ...
  over a span, its [START] being 1).  Without ``position_ids`` the model reads plain text:
  ``past, past + 1, ...`` and block position 0.
* The prefix mask (``attention.mask: prefix``; reference code: ``build_mask_matrix`` with
  ``sep``): query ``i`` of sequence ``b`` sees key ``j`` when ``j <= i or j < prefix_lengths[b]``,
  so Part A (the first ``prefix_lengths[b]`` tokens) is bidirectional and Part B is causal
  and sees all of Part A.  ``prefix_lengths = T`` is the bidirectional model,
  ``prefix_lengths = 0`` the causal one.  The mask is built from tensors, never from
  Python ints, so ``torch.export`` keeps batch and sequence dynamic.

With a KV cache the rule is applied in absolute key positions, so a cached step equals the
matching rows of a full forward as long as the whole prefix came in the first call
(``prefix_lengths <= past``): after the prefix, decoding is plain causal, and a cached
call may leave ``prefix_lengths`` out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError

MISSING = ("this model uses the prefix (blank-infilling) attention mask: pass prefix_lengths, a [batch] integer "
           "tensor with the length of each sequence's bidirectional prefix (GLM's Part A, its 'sep'); "
           "0 gives the causal mask, seq the bidirectional one")


class GLM2DPosition(nn.Module):
    """GLM's two learned position tables, ``weight`` [rows, E] (position in the text) and
    ``block_weight`` [rows, E] (position inside a blank span)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, dim))
        self.block_weight = nn.Parameter(torch.empty(rows, dim))
        self.max_positions = rows

    def forward(self, positions: Tensor) -> Tensor:
        """positions [B, 2, T] (text position, block position), or [B|1, T] text positions with
        block position 0 (the stack's plain-text default) -> [B, T, E]."""
        if positions.dim() == 3:
            pos, block = positions[:, 0], positions[:, 1]  # [B, T] each
        else:
            pos, block = positions, torch.zeros_like(positions)
        return F.embedding(pos, self.weight) + F.embedding(block, self.block_weight)


def prefix_visible(q: Tensor, k: Tensor, prefix_lengths: Tensor | None, cached: bool = False) -> Tensor:
    """The prefix-LM mask: query position q [T] sees key position k [S] when ``k <= q`` or
    ``k < prefix_lengths[b]``; returns bool [B, 1, T, S] (``[1, 1, T, S]``, causal, when
    `prefix_lengths` is None, which only a `cached` call past the prefix may do).

    Raises:
        InputError: `prefix_lengths` is None on an uncached call.
    """
    causal = k[None, :] <= q[:, None]  # [T, S]
    if prefix_lengths is None:
        if not cached:
            raise InputError(MISSING)
        return causal[None, None]
    in_prefix = k[None, :] < prefix_lengths.to(k.dtype)[:, None]  # [B, S]
    return causal[None, None] | in_prefix[:, None, None, :]  # [B, 1, T, S]


def check_glm_inputs(*, two_d: bool, prefix: bool, batch: int, seq: int, past: int,
                     position_ids: Tensor | None, prefix_lengths: Tensor | None, max_positions: int | None,
                     values: bool) -> None:
    """Shape (and, with `values`, range) checks for ``position_ids`` of a 2D-position model and
    ``prefix_lengths`` of a prefix-mask model.

    Raises:
        InputError: position_ids not [batch, 2, seq] or out of [0, max_positions); prefix_lengths
            missing on an uncached call, not an integer [batch] tensor, outside [0, past + seq],
            or (cached call) reaching past the cache.
    """
    if two_d and position_ids is not None:
        if not isinstance(position_ids, Tensor) or tuple(position_ids.shape) != (batch, 2, seq):
            shape = tuple(position_ids.shape) if isinstance(position_ids, Tensor) else type(position_ids).__name__
            raise InputError(f"position_ids of a GLM (glm_2d) model must have shape [batch, 2, seq] = "
                             f"{(batch, 2, seq)} (row 0: position in the text, row 1: position in the span), "
                             f"got {shape}")
        if position_ids.dtype.is_floating_point or position_ids.dtype == torch.bool:
            raise InputError(f"position_ids must be an integer tensor (torch.long), got {position_ids.dtype}")
        if values and max_positions is not None and position_ids.numel():
            lo, hi = int(position_ids.min()), int(position_ids.max())
            if lo < 0 or hi >= max_positions:
                raise InputError(f"position_ids contains {lo if lo < 0 else hi}, outside [0, {max_positions}) "
                                 f"(max_positions = {max_positions})")
    if not two_d and position_ids is not None and position_ids.dim() != 2:
        raise InputError(f"position_ids must have shape [batch, seq], got {tuple(position_ids.shape)}")
    if not prefix:
        if prefix_lengths is not None:
            raise InputError("prefix_lengths given, but this model's attention mask is not 'prefix'")
        return
    if prefix_lengths is None:
        if past == 0:
            raise InputError(MISSING)
        return
    if not isinstance(prefix_lengths, Tensor) or tuple(prefix_lengths.shape) != (batch,):
        shape = tuple(prefix_lengths.shape) if isinstance(prefix_lengths, Tensor) else type(prefix_lengths).__name__
        raise InputError(f"prefix_lengths must have shape [batch] = ({batch},), got {shape}")
    if prefix_lengths.dtype.is_floating_point or prefix_lengths.dtype == torch.bool:
        raise InputError(f"prefix_lengths must be an integer tensor (torch.long), got {prefix_lengths.dtype}")
    if values and prefix_lengths.numel():
        lo, hi = int(prefix_lengths.min()), int(prefix_lengths.max())
        if lo < 0 or hi > past + seq:
            raise InputError(f"prefix_lengths contains {lo if lo < 0 else hi}, outside [0, {past + seq}] "
                             "(past + seq)")
        if past and hi > past:
            raise InputError(f"prefix_lengths ({hi}) reaches past the cache ({past} tokens): with past_key_values "
                             "the whole prefix must be in the cache already (feed Part A in the first call)")


__all__ = ["GLM2DPosition", "check_glm_inputs", "prefix_visible"]
