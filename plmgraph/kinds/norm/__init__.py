"""Normalisation kinds: one module per kind (LayerNorm, RMSNorm)."""

from . import layernorm, rmsnorm

__all__ = ["layernorm", "rmsnorm"]
