"""Tuning kinds: which parameters train (the spec's ``tuning`` field), one module per kind.

A tuning kind is not a graph node: `compile.build` builds the base model and `plmgraph.tuning.apply`
attaches the kind (its ``plan`` and ``attach`` facets; the contract is in plmgraph/tuning/__init__.py),
freezes the rest and records ``model.tuning``. A kind not compiled yet validates, shows and diffs, and
`build` refuses it ("not compiled yet") instead of silently training every parameter.
"""

# Registration order is the order of the spec's `tuning` union, which error messages list.
from . import full, lora, adapters, prefix, bitfit, ia3, prompt, ladder  # noqa: I001

__all__ = ["adapters", "bitfit", "full", "ia3", "ladder", "lora", "prefix", "prompt"]
