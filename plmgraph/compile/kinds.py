"""Imports every file that registers block kinds, so the registry is complete once this runs."""

from . import attention, embedding, glm, heads, mlp, norm, position, relative

__all__ = ["attention", "embedding", "glm", "heads", "mlp", "norm", "position", "relative"]
