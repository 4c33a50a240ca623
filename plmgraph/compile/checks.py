"""Input checks run before the forward pass: clear `InputError`s instead of index errors deep
inside an embedding.  Checks that read tensor values (id ranges, which sync a GPU) are
skipped with ``model.check_inputs = False``; every check is skipped while compiling or
exporting, where the shapes are symbolic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError


def check_ids(name: str, ids: Tensor | None, high: int | None, *, values: bool, what: str = "vocab") -> None:
    """`ids` must be an integer [B, T] tensor with values in [0, high)."""
    if ids is None:
        return
    if not isinstance(ids, Tensor):
        raise InputError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dim() != 2:
        raise InputError(f"{name} must have shape [batch, seq], got {tuple(ids.shape)} ({ids.dim()} dims)")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InputError(f"{name} must be an integer tensor (torch.long), got {ids.dtype}")
    if values and high is not None and ids.numel():
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= high:
            bad = lo if lo < 0 else hi
            raise InputError(f"{name} contains {bad}, outside [0, {high}) ({what} = {high})")


def check_mask(name: str, mask: Tensor | None, batch: int, length: int) -> None:
    """`mask` must be [batch, length] (1 = keep, 0 = padding)."""
    if mask is None:
        return
    if not isinstance(mask, Tensor) or tuple(mask.shape) != (batch, length):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise InputError(f"{name} must have shape [batch, past + seq] = {(batch, length)}, got {shape}")


def check_length(name: str, length: int, limit: int | None) -> None:
    if limit is not None and length > limit:
        raise InputError(f"{name}: sequence length {length} (past + new tokens) exceeds max_positions ({limit})")


def check_pixels(pixels: Tensor | None, channels: int, size: int) -> None:
    if pixels is None:
        raise InputError("this model reads images: pass pixel_values of shape [batch, channels, height, width]")
    if not isinstance(pixels, Tensor) or pixels.dim() != 4 or tuple(pixels.shape[1:]) != (channels, size, size):
        shape = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__
        raise InputError(f"pixel_values must have shape [batch, {channels}, {size}, {size}], got {shape}")
    if not pixels.dtype.is_floating_point:
        raise InputError(f"pixel_values must be floating point, got {pixels.dtype}")


def check_past(past: object, layers: int, batch: int) -> None:
    if past is None:
        return
    if not isinstance(past, (tuple, list)) or len(past) != layers:
        got = len(past) if isinstance(past, (tuple, list)) else type(past).__name__
        raise InputError(f"past_key_values must be a tuple of {layers} (key, value) pairs, one per layer; got {got}")
    k = past[0][0]
    if not isinstance(k, Tensor) or k.dim() != 4 or k.shape[0] != batch:
        raise InputError(f"past_key_values keys must be [batch={batch}, kv_heads, past, head_dim] tensors")
