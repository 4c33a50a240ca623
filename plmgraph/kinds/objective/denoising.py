"""BART's denoising: text infilling (Poisson spans -> one mask), sentence permutation, token
deletion and document rotation.

The defaults are BART's reference pretraining (Lewis et al. 2020; fairseq's ``bart.large``
recipe: ``--mask 0.3 --mask-length span-poisson --replace-length 1 --permute-sentences 1.0
--rotate 0.0``, λ = 3 as in the paper): text infilling and sentence permutation on, token
deletion and document rotation off (the paper's ablations; set ``deletion`` and ``rotate``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register
from . import rules


class Denoising(Strict):
    """BART's denoising: text infilling (Poisson spans -> one mask) and sentence permutation."""

    kind: Literal["denoising"] = "denoising"
    rate: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.3, description="Text infilling: fraction of the words covered by Poisson spans, each span replaced by one "
        "mask (0: no infilling).")
    poisson_lambda: Annotated[float, Field(gt=0.0)] = Field(3.0, description="Mean span length.")
    permute_sentences: bool = Field(True, description="Shuffle the sentences of a document.")
    deletion: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="Token deletion: fraction of the tokens deleted (ceil(deletion * n), chosen uniformly "
        "without replacement; 0: off).")
    rotate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.0, description="Document rotation: probability that the input is rotated to begin at a token chosen "
        "uniformly at random (0: off).")


@register
class DenoisingKind(Kind):
    name = "objective/denoising"
    spec = Denoising

    def words(self, a: Attrs) -> str:
        return 'denoising (text infilling)'

    def contradiction(self, obj: Denoising, spec: Any) -> str | None:
        if obj.rate == 0 and obj.deletion == 0 and obj.rotate == 0 and not obj.permute_sentences:
            return ("objective 'denoising' with no noise (rate 0, deletion 0, rotate 0, permute_sentences false) "
                    "would copy its input; turn one on")
        return rules.needs_family("denoising", "rebuilds the original text with a decoder", spec, "encoder-decoder")

    def train(self, obj: Any, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import DenoisingObjective

        return DenoisingObjective(obj)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Denoising autoencoder (BART): corrupt the text (token masking, deletion, text infilling with "
            "Poisson(λ = 3) spans each replaced by one [MASK], sentence permutation, document rotation) and "
            "let the decoder rebuild the original, `L = −log p(x | x̃)`.",
            zh="去噪自编码（BART）：破坏文本（token 掩码、删除、用单个 [MASK] 替换泊松(λ = 3) 长度的片段、"
            "句子打乱、文档旋转），由解码器还原原文：`L = −log p(x | x̃)`。",
        )
