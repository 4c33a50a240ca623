"""Stage 4: the ArchGraph, the one intermediate representation (imports spec/, never torch)."""

from .arch import ArchGraph, resolve
from .stats import Stats, stats

__all__ = ["ArchGraph", "Stats", "resolve", "stats"]
