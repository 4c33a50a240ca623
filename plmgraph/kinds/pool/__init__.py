"""Pooling kinds: how a sequence is reduced to one vector for sequence-level heads."""

from . import pooler

__all__ = ["pooler"]
