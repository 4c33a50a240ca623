"""Residual wiring kinds: how a layer's sublayers join the residual stream.

``sequential`` and ``parallel`` are how the graph wires a layer (their add nodes are
``residual/add``); ``deepnorm`` is post-norm with an up-scaled residual and its own add nodes.
"""

from . import add, deepnorm, parallel, sequential

__all__ = ["add", "deepnorm", "parallel", "sequential"]
