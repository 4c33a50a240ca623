"""Tuning kinds: which parameters train (the spec's ``tuning`` field), one module per kind.

A tuning kind is not a graph node: `build` asks the spec's tuning kind first (its ``build``
facet). Only ``full`` is compiled; LoRA, adapters, prefix tuning and BitFit validate, show
and diff, and `build` refuses them ("not compiled yet", issue 9) instead of silently training
every parameter.
"""

# Registration order is the order of the spec's `tuning` union, which error messages list.
from . import full, lora, adapters, prefix, bitfit  # noqa: I001

__all__ = ["adapters", "bitfit", "full", "lora", "prefix"]
