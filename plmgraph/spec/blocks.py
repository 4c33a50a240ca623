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

from pydantic import Field, PositiveFloat, PositiveInt

from ..kinds import union
from ..kinds.base import Strict
from ..kinds.norm.layernorm import LayerNorm  # noqa: F401  (re-exported: spec.model, users)
from ..kinds.norm.rmsnorm import RMSNorm  # noqa: F401
from ..kinds.residual.sequential import Sequential

NonNegInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


# --------------------------------------------------------------------------- norms


Norm = union("norm")
"""A normalisation layer, chosen by `kind` (see plmgraph/kinds/norm/)."""


# ----------------------------------------------------------------------- positions


class NoPosition(Strict):
    """No position information at all (order comes only from the attention mask, if any)."""

    kind: Literal["none"] = "none"


class LearnedPosition(Strict):
    """Learned absolute position embeddings added to the token embeddings (BERT, GPT-2)."""

    kind: Literal["learned"] = "learned"
    offset: NonNegInt = Field(
        0,
        description="First position id; the table has max_positions + offset rows "
        "(RoBERTa and BART start at 2 because of their padding index).",
    )
    padding_aware: bool = Field(
        False,
        description="Count positions over non-padding tokens only, padding reading row offset - 1 "
        "(RoBERTa); otherwise position i is row offset + i whatever the mask (BART, GPT-2).",
    )


class SinusoidalPosition(Strict):
    """Fixed sinusoidal absolute positions added to the token embeddings (Vaswani et al. 2017)."""

    kind: Literal["sinusoidal"] = "sinusoidal"


class RopeScaling(Strict):
    """Context-length scaling of rotary frequencies."""

    kind: Literal["linear", "dynamic", "llama3", "yarn"] = Field(description="Scaling method.")
    factor: PositiveFloat = Field(description="Context extension factor.")
    original_max_positions: PositiveInt | None = Field(
        None, description="Training context of the unscaled model (llama3, yarn, dynamic)."
    )
    low_freq_factor: PositiveFloat | None = Field(None, description="llama3: low-frequency wavelength factor.")
    high_freq_factor: PositiveFloat | None = Field(None, description="llama3: high-frequency wavelength factor.")


class RotaryPosition(Strict):
    """Rotary position embedding applied to queries and keys (Su et al. 2021; LLaMA, GLM)."""

    kind: Literal["rope"] = "rope"
    theta: PositiveFloat = Field(10000.0, description="Base of the rotary frequencies.")
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="Fraction of each head's dimensions that rotate (partial rotary, e.g. 0.5 in GLM)."
    )
    interleaved: bool = Field(
        False,
        description="Rotate adjacent pairs (x0,x1),(x2,x3)... (GPT-J, GLM) instead of the two halves (LLaMA).",
    )
    scaling: RopeScaling | None = Field(None, description="Optional context-length scaling.")


class AlibiPosition(Strict):
    """ALiBi: a per-head linear distance penalty added to attention scores (Press et al. 2021)."""

    kind: Literal["alibi"] = "alibi"


class T5RelativePosition(Strict):
    """T5's learned relative position bias: log-spaced distance buckets, one bias per head."""

    kind: Literal["t5_relative"] = "t5_relative"
    buckets: PositiveInt = Field(32, description="Number of distance buckets.")
    max_distance: PositiveInt = Field(128, description="Distances beyond this share the last bucket.")


class XLRelativePosition(Strict):
    """Transformer-XL / XLNet relative positions: sinusoidal distances, projected per layer,
    with learned global content and position biases (u, v)."""

    kind: Literal["xl_relative"] = "xl_relative"
    clamp: PositiveInt | None = Field(
        None, description="Clamp relative distances to [-clamp, clamp] (XLNet clamp_len). Default: no clamp."
    )


class GLM2DPosition(Strict):
    """GLM's two learned position tables: position in the text and position inside a blank span."""

    kind: Literal["glm_2d"] = "glm_2d"


Position = Annotated[
    NoPosition
    | LearnedPosition
    | SinusoidalPosition
    | RotaryPosition
    | AlibiPosition
    | T5RelativePosition
    | XLRelativePosition
    | GLM2DPosition,
    Field(discriminator="kind"),
]
"""How the model knows token order, chosen by `kind`."""

#: Position kinds that are added to the embeddings (the rest act inside attention).
INPUT_POSITIONS = ("learned", "sinusoidal", "glm_2d")


# ----------------------------------------------------------------------- attention

Mask = Literal["bidirectional", "causal", "prefix"]


class Attention(Strict):
    """Multi-head dot-product attention over the layer's own sequence (MHA, MQA, GQA)."""

    kind: Literal["self"] = "self"
    kv_heads: PositiveInt | None = Field(
        None, description="Key/value heads: = heads for MHA, 1 for MQA, in between for GQA. Default: heads."
    )
    head_dim: PositiveInt | None = Field(None, description="Width of one head. Default: hidden / heads.")
    qkv_bias: bool = Field(True, description="Query, key and value projections carry a bias.")
    out_bias: bool = Field(True, description="Output projection carries a bias.")
    mask: Mask = Field(
        "bidirectional",
        description="Which positions a query may see: all (bidirectional), earlier ones (causal), "
        "or a bidirectional prefix followed by causal text (prefix LM / blank infilling).",
    )
    window: PositiveInt | None = Field(None, description="Sliding window: attend to at most this many keys back.")
    qk_norm: bool = Field(False, description="Normalise queries and keys per head before the dot product.")
    scale: PositiveFloat | None = Field(
        None, description="Score scale; default 1/sqrt(head_dim). T5 uses 1.0 (folded into init)."
    )
    dropout: Probability = Field(0.0, description="Dropout on attention probabilities.")


class TwoStreamAttention(Attention):
    """XLNet's two-stream relative attention (content and query streams, segment biases)."""

    kind: Literal["two_stream"] = "two_stream"  # type: ignore[assignment]
    memory: NonNegInt = Field(
        0, description="Hidden states kept per layer as the cache (mem_len); 0 keeps all of them."
    )


class MemoryAttention(Attention):
    """Transformer-XL's relative attention over the current segment plus cached memory."""

    kind: Literal["segment_memory"] = "segment_memory"  # type: ignore[assignment]
    memory: NonNegInt = Field(
        0, description="Hidden states of previous segments kept per layer as the cache (mem_len); 0 keeps all."
    )


AttentionKind = Annotated[Attention | TwoStreamAttention | MemoryAttention, Field(discriminator="kind")]
"""The attention layer, chosen by `kind`: self, two_stream (XLNet) or segment_memory (Transformer-XL)."""


# ----------------------------------------------------------------------------- MLP

Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "quick_gelu"]


class DenseMLP(Strict):
    """Two linear layers with an activation between: W2 act(W1 x)."""

    kind: Literal["dense"] = "dense"
    activation: Activation = Field("gelu", description="Activation between the two projections.")
    bias: bool = Field(True, description="Both projections carry a bias.")
    ffn: PositiveInt | None = Field(None, description="Inner width. Default: sizes.ffn.")


class GatedMLP(Strict):
    """Gated linear unit: W2 (act(W1 x) * W3 x); silu gives SwiGLU, gelu gives GeGLU."""

    kind: Literal["gated"] = "gated"
    activation: Activation = Field("silu", description="Activation on the gate branch.")
    bias: bool = Field(False, description="The three projections carry a bias.")
    ffn: PositiveInt | None = Field(None, description="Inner width. Default: sizes.ffn.")


class MoEMLP(Strict):
    """Sparse mixture of experts: a linear router picks top_k of `experts` expert MLPs per token."""

    kind: Literal["moe"] = "moe"
    experts: Annotated[int, Field(ge=2)] = Field(description="Number of experts.")
    top_k: PositiveInt = Field(2, description="Experts each token is routed to.")
    expert: DenseMLP | GatedMLP = Field(
        default_factory=GatedMLP, discriminator="kind", description="The MLP every expert is."
    )
    router_bias: bool = Field(False, description="The router projection carries a bias.")
    normalize_top_k: bool = Field(True, description="Renormalise the top-k router weights to sum to 1.")
    aux_loss: float = Field(0.0, ge=0.0, description="Weight of the load-balancing loss.")


MLP = Annotated[DenseMLP | GatedMLP | MoEMLP, Field(discriminator="kind")]
"""The feed-forward layer, chosen by `kind`: dense, gated or moe."""


# -------------------------------------------------------------------------- layers


Residual = union("residual")
"""How the sublayers of a block join the residual stream, chosen by `kind` (see plmgraph/kinds/residual/)."""


class Block(Strict):
    """One transformer layer: attention, (cross-attention), MLP, their norms and residuals."""

    norm: Norm = Field(default_factory=LayerNorm, description="The normalisation used in this layer.")
    placement: Literal["pre", "post", "sandwich"] = Field(
        "pre",
        description="pre: x + f(norm(x)) (GPT-2, LLaMA); post: norm(x + f(x)) (BERT, original Transformer); "
        "sandwich: x + norm(f(norm(x))).",
    )
    residual: Residual = Field(default_factory=Sequential, description="Sequential, parallel or DeepNorm sublayers.")
    attention: AttentionKind = Field(default_factory=Attention, description="The self-attention sublayer.")
    cross_attention: bool | None = Field(
        None, description="Attend to the encoder output (decoders of encoder-decoder models). Default: derived."
    )
    mlp: MLP = Field(default_factory=DenseMLP, description="The feed-forward sublayer.")
    dropout: Probability = Field(0.0, description="Dropout on each sublayer output before the residual add.")
