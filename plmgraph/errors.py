"""User-facing error types.  Library code raises these; only the CLI prints and exits.

Every subclass of `PlmgraphError` means "the input was wrong": the CLI prints the message
and exits with status 1, without a traceback.  Anything else is a bug in plmgraph.
"""

from __future__ import annotations

from .spec.errors import PlmgraphError, Problem, SpecError


class CheckpointError(PlmgraphError):
    """A weights file or checkpoint folder is missing, corrupt, or does not fit the spec."""


class InputError(PlmgraphError, ValueError):
    """Tensors passed to a model have the wrong shape, dtype or range."""


class ConversionError(PlmgraphError):
    """A foreign config (e.g. a Hugging Face config.json) cannot be expressed as a spec."""


class ExportError(PlmgraphError):
    """A model cannot be exported (e.g. to ONNX), or the exported graph disagrees with PyTorch."""


class ResourceError(PlmgraphError):
    """The machine cannot do what was asked: a model larger than the memory it would be built in."""


class UsageError(PlmgraphError):
    """A command was called with options that do not fit together (exit status 2)."""


__all__ = ["CheckpointError", "ConversionError", "ExportError", "InputError", "PlmgraphError", "Problem",
           "ResourceError", "SpecError", "UsageError"]
