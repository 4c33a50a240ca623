"""The spec language: load YAML safely, resolve `extends`, validate into a `ModelSpec`.

Imports nothing of plmgraph outside this package, and never torch.
"""

from .errors import PlmgraphError, Problem, SpecError
from .extends import Merged, find_spec, load_merged, zoo_dir, zoo_names
from .model import FORMAT_VERSION, ModelSpec, deep_merge
from .validate import load_spec, validate

__all__ = [
    "FORMAT_VERSION",
    "Merged",
    "ModelSpec",
    "PlmgraphError",
    "Problem",
    "SpecError",
    "deep_merge",
    "find_spec",
    "load_merged",
    "load_spec",
    "validate",
    "zoo_dir",
    "zoo_names",
]
