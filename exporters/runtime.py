"""Finding ONNX Runtime, which ships as two wheels that must never be installed together.

`onnxruntime` (CPU) and `onnxruntime-gpu` (CUDA / TensorRT) install the same Python
module; plmgraph's extras mirror Hugging Face Optimum: ``pip install "plmgraph[cpu]"`` or
``pip install "plmgraph[gpu]"``, one of them, never both.
"""

from __future__ import annotations

from types import ModuleType

from plmgraph.errors import PlmgraphError

INSTALL_HINT = (
    "ONNX Runtime is not installed. Install exactly one flavour: "
    "pip install 'plmgraph[cpu]' (onnxruntime, CPU) or pip install 'plmgraph[gpu]' "
    "(onnxruntime-gpu, CUDA/TensorRT); they provide the same module and must not be installed together."
)


def import_onnxruntime() -> ModuleType:
    """Import and return `onnxruntime`, or raise a `PlmgraphError` that says how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise PlmgraphError(INSTALL_HINT) from None
    return onnxruntime


def providers() -> list[str]:
    """Execution providers this ONNX Runtime offers, best first (CUDA before CPU)."""
    return list(import_onnxruntime().get_available_providers())
