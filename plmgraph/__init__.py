"""plmgraph: pretrained language model architectures as typed YAML specs.

The public API (see DESIGN.md).  Torch-backed names are imported lazily, so
``import plmgraph`` and the spec/graph functions stay fast and torch-free.
"""

from __future__ import annotations

from typing import Any

from .spec import ModelSpec, SpecError, load_spec

__version__ = "0.1.0"

_LAZY = {
    "resolve": ("plmgraph.graph", "resolve"),
    "ArchGraph": ("plmgraph.graph", "ArchGraph"),
    "stats": ("plmgraph.graph", "stats"),
    "diff": ("plmgraph.graph.diff", "diff"),
    "ArchDiff": ("plmgraph.graph.diff", "ArchDiff"),
    "draw": ("plmgraph.exporters.graphviz", "draw"),
    "build": ("plmgraph.compile", "build"),
    "from_hf": ("plmgraph.compile.hf", "from_hf"),
    "to_hf": ("plmgraph.compile.hf", "to_hf"),
    "save": ("plmgraph.compile.io", "save"),
    "load": ("plmgraph.compile.io", "load"),
    "export_onnx": ("plmgraph.exporters.onnx", "export_onnx"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plmgraph' has no attribute {name!r}")


__all__ = ["ModelSpec", "SpecError", "load_spec", *_LAZY]
