"""Normalisation layers: LayerNorm (optionally bias-free) and RMSNorm (LLaMA/T5 numerics)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..kinds import kind
from .registry import Node


class RMSNorm(nn.Module):
    """x / rms(x) * (offset + weight), computed in fp32 and cast back, as HF LLaMA and T5 do."""

    def __init__(self, width: int, eps: float = 1e-6, offset: float = 0.0) -> None:
        super().__init__()
        self.eps, self.offset = eps, offset
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.offset + self.weight) * x.to(dtype)


def make_norm(width: int, norm: dict) -> nn.Module:
    """A norm `width` wide as a spec's norm mapping (``{"kind": "rmsnorm", "eps": ...}``) says, built
    by its registered kind (plmgraph/kinds/norm/): a qk-norm, a head's transform norm."""
    name = f"norm/{norm['kind']}"
    attrs = {k: v for k, v in norm.items() if k != "kind"} | {"width": width}
    return kind(name).build(Node(name, name, attrs, {}))
