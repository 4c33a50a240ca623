"""Feed-forward kinds: one module per kind (dense, gated, mixture of experts).

The order of the imports is the order of the spec's ``mlp`` union (error messages list the
allowed kinds in it): dense, gated, moe.
"""

from . import dense, gated, moe

__all__ = ["dense", "gated", "moe"]
