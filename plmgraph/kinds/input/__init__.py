"""Input kinds: the tensors a model's forward takes (graph-only: no parameters, no module)."""

from . import inputs

__all__ = ["inputs"]
