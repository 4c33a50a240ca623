"""Stage 5: compile an `ArchGraph` into a trainable `torch.nn.Module` (`build`), save and load it.

    model = build("gpt2", device="meta")          # or a ModelSpec, ArchGraph, path
    out = model(input_ids, attention_mask=mask)   # -> ModelOutput(logits, last_hidden_state, ...)
"""

from .build import build, check_names
from .model import ModelOutput, PLMModel
from .registry import REGISTRY, Node, NotSupportedError

__all__ = ["REGISTRY", "ModelOutput", "Node", "NotSupportedError", "PLMModel", "build", "check_names"]
