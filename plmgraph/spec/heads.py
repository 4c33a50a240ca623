"""Output heads, pooling, pre-training objectives and parameter-efficient tuning.

Heads change the parameter count (and so are part of the architecture); objectives and
tuning describe how the model is trained: they are in the spec so that a diff between
BERT and RoBERTa says "NSP objective removed, masking static -> dynamic".
"""

from __future__ import annotations

from ..kinds import KINDS, union
from ..kinds.head.classifier import ClassifierHead  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.head.lm import LMHead, MLMHead, Transform  # noqa: F401
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
from ..kinds.pool.pooler import Pooler  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.tuning.adapters import Adapters  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.tuning.bitfit import BitFit  # noqa: F401
from ..kinds.tuning.full import FullTuning  # noqa: F401
from ..kinds.tuning.lora import LoRA  # noqa: F401
from ..kinds.tuning.prefix import PrefixTuning  # noqa: F401

# --------------------------------------------------------------------------- heads


Head = union("head")
"""An output head, chosen by `kind` (see plmgraph/kinds/head/)."""

HEAD_KINDS = tuple(k.variant for name, k in KINDS.items() if name.startswith("head/"))
"""Every head kind, in the union's order."""


# ---------------------------------------------------------------------- objectives


Objective = union("objective")
"""A training objective, chosen by `kind` (see plmgraph/kinds/objective/)."""


# -------------------------------------------------------------------------- tuning


Tuning = union("tuning")
"""Which parameters train, chosen by `kind` (see plmgraph/kinds/tuning/)."""


# ------------------------------------------------------------------ initialisation

Init = union("init")
"""How `build` initialises a fresh model, chosen by `kind` (see plmgraph/kinds/init/)."""
