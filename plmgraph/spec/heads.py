"""Output heads, pooling, pre-training objectives and parameter-efficient tuning.

Heads change the parameter count (and so are part of the architecture); objectives and
tuning describe how the model is trained: they are in the spec so that a diff between
BERT and RoBERTa says "NSP objective removed, masking static -> dynamic".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from ..kinds import union
from ..kinds.init.fan_in import FanInInit  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.init.normal import NormalInit  # noqa: F401
from ..kinds.objective.blank_infilling import BlankInfilling  # noqa: F401
from ..kinds.objective.classification import Classification  # noqa: F401
from ..kinds.objective.clm import CLM  # noqa: F401
from ..kinds.objective.denoising import Denoising  # noqa: F401
from ..kinds.objective.mlm import MLM  # noqa: F401
from ..kinds.objective.nsp import NSP  # noqa: F401
from ..kinds.objective.permutation import PermutationLM  # noqa: F401
from ..kinds.objective.sop import SOP  # noqa: F401
from ..kinds.objective.span_corruption import SpanCorruption  # noqa: F401
from ..kinds.tuning.adapters import Adapters  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.tuning.bitfit import BitFit  # noqa: F401
from ..kinds.tuning.full import FullTuning  # noqa: F401
from ..kinds.tuning.lora import LoRA  # noqa: F401
from ..kinds.tuning.prefix import PrefixTuning  # noqa: F401
from .blocks import Activation, Probability, Strict

# --------------------------------------------------------------------------- heads


class Transform(Strict):
    """Dense + activation (+ norm) applied before the vocabulary projection (BERT's MLM transform)."""

    activation: Activation = Field("gelu", description="Activation after the dense layer.")
    norm: bool = Field(True, description="LayerNorm after the activation (same eps as the blocks).")


class LMHead(Strict):
    """Next-token language-model head: project hidden states onto the vocabulary."""

    kind: Literal["lm"] = "lm"
    name: str | None = Field(None, description="Name in out.head_outputs. Default: the kind.")
    tie_embeddings: bool = Field(True, description="Reuse the token-embedding matrix as the output projection.")
    bias: bool = Field(False, description="Learn a per-token output bias.")
    transform: Transform | None = Field(None, description="Optional dense/activation/norm before projecting.")
    scale_tied: bool = Field(
        False, description="Multiply hidden states by hidden**-0.5 before a tied projection (T5)."
    )


class MLMHead(LMHead):
    """Masked-language-model head: BERT's transform, then a (tied) vocabulary projection with bias."""

    kind: Literal["mlm"] = "mlm"  # type: ignore[assignment]
    bias: bool = Field(True, description="Learn a per-token output bias.")
    transform: Transform | None = Field(
        default_factory=Transform, description="Dense/activation/norm before projecting; null for none."
    )


class ClassifierHead(Strict):
    """A linear classifier on pooled or per-token hidden states."""

    kind: Literal["nsp", "sop", "sequence_classification", "token_classification", "image_classification"] = (
        Field(description="What is classified: sentence pairs (nsp, sop), a sequence, each token, an image.")
    )
    name: str | None = Field(None, description="Name in out.head_outputs. Default: the kind.")
    labels: PositiveInt | None = Field(None, description="Number of classes (nsp and sop: 2).")
    bias: bool = Field(True, description="The classifier carries a bias.")

    @model_validator(mode="after")
    def _labels(self) -> ClassifierHead:
        if self.kind in ("nsp", "sop"):
            if self.labels not in (None, 2):
                raise ValueError(f"{self.kind} is a binary task: labels must be 2, got {self.labels}")
            self.__dict__["labels"] = 2
        elif self.labels is None:
            raise ValueError(f"{self.kind} needs `labels` (the number of classes)")
        return self

    @property
    def pooled(self) -> bool:
        """Reads one pooled vector per sequence (not one per token)."""
        return self.kind != "token_classification"


Head = Annotated[LMHead | MLMHead | ClassifierHead, Field(discriminator="kind")]
"""An output head, chosen by `kind`."""

HEAD_KINDS = ("lm", "mlm", "nsp", "sop", "sequence_classification", "token_classification", "image_classification")


class Pooler(Strict):
    """How a sequence is reduced to one vector for sequence-level heads."""

    kind: Literal["cls", "mean", "last"] = Field(
        "cls", description="First token ([CLS]), mean over unmasked tokens, or last unmasked token."
    )
    dense: bool = Field(False, description="A dense layer + activation after pooling (BERT's pooler).")
    activation: Activation = Field("tanh", description="Activation of the dense pooler.")


# ---------------------------------------------------------------------- objectives


Objective = union("objective")
"""A training objective, chosen by `kind` (see plmgraph/kinds/objective/)."""


# -------------------------------------------------------------------------- tuning


Tuning = union("tuning")
"""Which parameters train, chosen by `kind` (see plmgraph/kinds/tuning/)."""


# ------------------------------------------------------------------ initialisation

Init = union("init")
"""How `build` initialises a fresh model, chosen by `kind` (see plmgraph/kinds/init/)."""
