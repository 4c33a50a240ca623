"""Normalisation layers: LayerNorm (optionally bias-free) and RMSNorm (LLaMA/T5 numerics)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import Node, register


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


def make_norm(width: int, kind: str, eps: float, bias: bool = True, offset: float = 0.0) -> nn.Module:
    """A norm of `kind` ("layernorm" or "rmsnorm") over the last dimension, `width` wide."""
    if kind == "rmsnorm":
        return RMSNorm(width, eps, offset)
    return nn.LayerNorm(width, eps=eps, bias=bias)


@register("norm/layernorm", "norm/rmsnorm")
def _norm(node: Node) -> nn.Module:
    kind = node.kind.split("/")[1]
    return make_norm(node["width"], kind, node["eps"], node.get("bias", True), node.get("offset", 0.0))
