"""Activation functions by name (the spec's `Activation` literal), matching Hugging Face's ACT2FN."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def quick_gelu(x: Tensor) -> Tensor:
    """x * sigmoid(1.702 x): the GELU approximation of CLIP/GPT-1 era code."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact erf GELU (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's gelu_new
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "quick_gelu": quick_gelu,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called `name` (one of `ACTIVATIONS`)."""
    return ACTIVATIONS[name]
