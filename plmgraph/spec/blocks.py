"""The block vocabulary: tagged pydantic classes for norms, positions, attention, MLPs.

Every variant is a class with a ``kind: Literal[...]`` tag; the variants of one axis are
joined in an ``Annotated[A | B, Field(discriminator="kind")]`` union, so a validation
error names only the variant its tag selected, and an unknown tag lists the allowed ones.
Every field carries a description, which flows into ``plmgraph schema``.

Values left ``None`` here are *derived* (from ``sizes`` and friends) by the one validator
on `ModelSpec` (see ``model.py``); after validation every one of them is filled in.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..kinds import KINDS, union
from ..kinds.attention.segment_memory import MemoryAttention  # noqa: F401  (re-exported: users)
from ..kinds.attention.self import Attention, Mask  # noqa: F401
from ..kinds.attention.two_stream import TwoStreamAttention  # noqa: F401
from ..kinds.base import Activation, Strict  # noqa: F401  (Activation re-exported: spec.heads, users)
from ..kinds.mlp.dense import DenseMLP  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.mlp.gated import GatedMLP  # noqa: F401
from ..kinds.mlp.moe import MoEMLP  # noqa: F401
from ..kinds.norm.layernorm import LayerNorm  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.norm.rmsnorm import RMSNorm  # noqa: F401
from ..kinds.position.alibi import AlibiPosition  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.position.disentangled import DisentangledPosition
from ..kinds.position.glm_2d import GLM2DPosition  # noqa: F401
from ..kinds.position.learned import LearnedPosition  # noqa: F401
from ..kinds.position.none import NoPosition  # noqa: F401
from ..kinds.position.rope import RopeScaling, RotaryPosition  # noqa: F401
from ..kinds.position.sinusoidal import SinusoidalPosition  # noqa: F401
from ..kinds.position.t5_relative import T5RelativePosition  # noqa: F401
from ..kinds.position.xl_relative import XLRelativePosition  # noqa: F401
from ..kinds.residual.sequential import Sequential

NonNegInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


# --------------------------------------------------------------------------- norms


Norm = union("norm")
"""A normalisation layer, chosen by `kind` (see plmgraph/kinds/norm/)."""


# ----------------------------------------------------------------------- positions


Position = union("position")
"""How the model knows token order, chosen by `kind` (see plmgraph/kinds/position/)."""

#: Position kinds that are added to the embeddings (the rest act inside attention, or are none):
#: the kinds whose `adds_to_embeddings` is set.
INPUT_POSITIONS = tuple(k.variant for name, k in KINDS.items()
                        if name.startswith("position/") and k.adds_to_embeddings)

RelativePosition = Annotated[T5RelativePosition | DisentangledPosition, Field(discriminator="kind")]
"""A relative position signal inside attention that goes with an absolute `position` (`ModelSpec.relative_position`):
T5's bucketed score bias (MPNet) or DeBERTa's shared relative table (position_biased_input)."""


# ----------------------------------------------------------------------- attention

AttentionKind = union("attention")
"""The attention layer, chosen by `kind`: self, two_stream (XLNet) or segment_memory (Transformer-XL)
(see plmgraph/kinds/attention/)."""


# ----------------------------------------------------------------------------- MLP

MLP = union("mlp")
"""The feed-forward layer, chosen by `kind`: dense, gated or moe (see plmgraph/kinds/mlp/)."""


# -------------------------------------------------------------------------- layers


Residual = union("residual")
"""How the sublayers of a block join the residual stream, chosen by `kind` (see plmgraph/kinds/residual/)."""


class Block(Strict):
    """One transformer layer: attention, (cross-attention), MLP, their norms and residuals."""

    norm: Norm = Field(default_factory=LayerNorm, description="The normalisation used in this layer.")
    placement: Literal["pre", "post", "sandwich", "output"] = Field(
        "pre",
        description="pre: x + f(norm(x)) (GPT-2, LLaMA); post: norm(x + f(x)) (BERT, original Transformer); "
        "sandwich: x + norm(f(norm(x))); output: x + norm(f(x)), the norm on each sublayer's output inside the "
        "residual and none on its input (OLMo 2's reordered norm).",
    )
    residual: Residual = Field(default_factory=Sequential, description="Sequential, parallel or DeepNorm sublayers.")
    attention: AttentionKind = Field(default_factory=Attention, description="The self-attention sublayer.")
    cross_attention: bool | None = Field(
        None, description="Attend to the encoder output (decoders of encoder-decoder models). Default: derived."
    )
    mlp: MLP = Field(default_factory=DenseMLP, description="The feed-forward sublayer.")
    dropout: Probability = Field(0.0, description="Dropout on each sublayer output before the residual add.")
