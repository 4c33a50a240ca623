"""Output heads, pooling, pre-training objectives and parameter-efficient tuning.

Heads change the parameter count (and so are part of the architecture); objectives and
tuning describe how the model is trained: they are in the spec so that a diff between
BERT and RoBERTa says "NSP objective removed, masking static -> dynamic".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

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


class CLM(Strict):
    """Causal language modelling: predict each next token (GPT)."""

    kind: Literal["clm"] = "clm"


class MLM(Strict):
    """Masked language modelling (BERT): corrupt `rate` of the tokens, predict the originals."""

    kind: Literal["mlm"] = "mlm"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens selected.")
    mask: Probability = Field(0.8, description="Of those, fraction replaced by [MASK].")
    random: Probability = Field(0.1, description="Of those, fraction replaced by a random token.")
    keep: Probability = Field(0.1, description="Of those, fraction left unchanged.")
    dynamic: bool = Field(False, description="Draw a new mask every time a sequence is seen (RoBERTa).")
    unit: Literal["token", "whole_word", "phrase", "entity"] = Field(
        "token", description="What is masked together: tokens, whole words, phrases or entities (ERNIE)."
    )

    @model_validator(mode="after")
    def _sum(self) -> MLM:
        total = self.mask + self.random + self.keep
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"mask ({self.mask}) + random ({self.random}) + keep ({self.keep}) must sum to 1, got {total:g}"
            )
        return self


class NSP(Strict):
    """Next-sentence prediction: is B the sentence after A (BERT)?"""

    kind: Literal["nsp"] = "nsp"


class SOP(Strict):
    """Sentence-order prediction: are A and B swapped (ALBERT)?"""

    kind: Literal["sop"] = "sop"


class SpanCorruption(Strict):
    """T5's span corruption: replace spans with sentinels, decode the spans."""

    kind: Literal["span_corruption"] = "span_corruption"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens corrupted.")
    mean_span: Annotated[float, Field(ge=1.0)] = Field(3.0, description="Mean span length.")
    sentinels: PositiveInt = Field(100, description="Number of sentinel tokens.")


class Denoising(Strict):
    """BART's denoising: text infilling (Poisson spans -> one mask) and sentence permutation."""

    kind: Literal["denoising"] = "denoising"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.3, description="Fraction of tokens masked.")
    poisson_lambda: Annotated[float, Field(gt=0.0)] = Field(3.0, description="Mean span length.")
    permute_sentences: bool = Field(True, description="Shuffle the sentences of a document.")


class BlankInfilling(Strict):
    """GLM's autoregressive blank infilling: spans are removed and generated in random order."""

    kind: Literal["blank_infilling"] = "blank_infilling"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens blanked.")
    poisson_lambda: Annotated[float, Field(gt=0.0)] = Field(3.0, description="Mean span length.")


class PermutationLM(Strict):
    """XLNet's permutation language modelling: predict the last 1/K tokens of a random factorisation order."""

    kind: Literal["permutation"] = "permutation"
    predict_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1 / 6, description="Fraction of tokens predicted (1/K, K=6 in XLNet)."
    )


class Classification(Strict):
    """Supervised classification (ViT on ImageNet, fine-tuning)."""

    kind: Literal["classification"] = "classification"


Objective = Annotated[
    CLM | MLM | NSP | SOP | SpanCorruption | Denoising | BlankInfilling | PermutationLM | Classification,
    Field(discriminator="kind"),
]
"""A training objective, chosen by `kind`."""


# -------------------------------------------------------------------------- tuning


class FullTuning(Strict):
    """Every parameter trains."""

    kind: Literal["full"] = "full"


class LoRA(Strict):
    """Low-rank adapters on chosen projections: W + (alpha/rank) B A (Hu et al. 2021)."""

    kind: Literal["lora"] = "lora"
    rank: PositiveInt = Field(8, description="Rank r of the update.")
    alpha: Annotated[float, Field(gt=0.0)] = Field(16.0, description="Scale numerator: update is alpha/r * BA.")
    dropout: Probability = Field(0.0, description="Dropout on the adapter input.")
    targets: list[Literal["q", "k", "v", "o", "mlp"]] = Field(
        default_factory=lambda: ["q", "v"], description="Projections that get an adapter."
    )


class Adapters(Strict):
    """Bottleneck adapters after each sublayer (Houlsby et al. 2019)."""

    kind: Literal["adapters"] = "adapters"
    bottleneck: PositiveInt = Field(64, description="Adapter inner width.")


class PrefixTuning(Strict):
    """Trainable key/value prefixes in every layer (Li & Liang 2021)."""

    kind: Literal["prefix"] = "prefix"
    length: PositiveInt = Field(16, description="Number of prefix positions.")


class BitFit(Strict):
    """Only biases (and heads) train (Ben Zaken et al. 2021)."""

    kind: Literal["bitfit"] = "bitfit"


Tuning = Annotated[FullTuning | LoRA | Adapters | PrefixTuning | BitFit, Field(discriminator="kind")]
"""Which parameters train, chosen by `kind`."""


# ------------------------------------------------------------------ initialisation


class NormalInit(Strict):
    """Weights ~ N(0, std), biases 0, norm scales 1 (BERT, GPT, LLaMA: HF `initializer_range`)."""

    kind: Literal["normal"] = "normal"
    std: Annotated[float, Field(gt=0.0)] = Field(0.02, description="Standard deviation of every weight.")
    scaled_residual: bool = Field(
        False,
        description="Divide the std of the projections that write into the residual stream (attention "
        "output, MLP down) by sqrt(2 * layers), as GPT-2 does.",
    )


class FanInInit(Strict):
    """T5's scheme: each linear weight ~ N(0, fan_in**-0.5), embeddings ~ N(0, 1); with unscaled
    attention scores (scale 1.0) the query projection also gets head_dim**-0.5."""

    kind: Literal["fan_in"] = "fan_in"


Init = Annotated[NormalInit | FanInInit, Field(discriminator="kind")]
"""How `build` initialises a fresh model, chosen by `kind`."""
