"""plmgraph: pretrained language model architectures as typed YAML specs.

The public API (see DESIGN.md).  Every name is imported on first use (PEP 562), so
``import plmgraph`` costs nothing, the spec and graph functions never import torch, and only
``build``, ``from_hf``, ``save``, ``load`` and ``export_onnx`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ModelSpec": ("plmgraph.spec", "ModelSpec"),
    "SpecError": ("plmgraph.spec", "SpecError"),
    "load_spec": ("plmgraph.spec", "load_spec"),
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
    "eject": ("plmgraph.eject", "eject"),
    "generate": ("plmgraph.train.generate", "generate"),
    "grow": ("plmgraph.train.grow", "grow"),
}

if TYPE_CHECKING:
    from .compile import build
    from .compile.hf import from_hf, to_hf
    from .compile.io import load, save
    from .eject import eject
    from .graph import ArchGraph, resolve, stats
    from .graph.diff import ArchDiff, diff
    from .spec import ModelSpec, SpecError, load_spec


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # no lazy name is also a subpackage's, so caching hides nothing
        return value
    raise AttributeError(f"module 'plmgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["ArchDiff", "ArchGraph", "ModelSpec", "SpecError", "__version__", "build", "diff", "draw", "eject",
           "export_onnx", "from_hf", "generate", "grow", "load", "load_spec", "resolve", "save", "stats", "to_hf"]
