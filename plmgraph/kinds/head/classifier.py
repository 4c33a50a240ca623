"""Classifier heads: one linear layer on pooled states (``nsp``, ``sop``, sequence and image
classification) or on every token's state (``token_classification``).

The five kinds share every facet's code and one spec class, `ClassifierHead`, whose
``kind`` picks among them (one module); they differ in their words and in whether they run
once per sequence or once per token.  Attrs: ``labels``, ``bias``, ``hidden``; a per-token classifier
(token classification, question answering) may carry a ``transform`` (dumped: dense -> activation ->
norm on every token first, ModernBERT's prediction head) and then ``norm`` (the block's norm, dumped with
its kind, for the transform's norm).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import (
    ACTIVATIONS,
    KINDS,
    Aspect,
    Attrs,
    HeadName,
    Kind,
    NotCompiledYet,
    Shape,
    Strict,
    mm,
    num,
    onoff,
    register,
)
from .lm import Transform


#: A per-token classifier's transform (ModernBERT's ModernBertPredictionHead before its classifier).
def TRANSFORM() -> Any:  # noqa: N802
    return Field(None, description="Optional dense/activation/norm on every token before the classifier "
                 "(ModernBERT's head: dense without bias, GELU, LayerNorm); null for none.")


class ClassifierHead(Strict):
    """A linear classifier on pooled or per-token hidden states."""

    kind: Literal["nsp", "sop", "sequence_classification", "token_classification", "image_classification"] = (
        Field(description="What is classified: sentence pairs (nsp, sop), a sequence, each token, an image.")
    )
    name: HeadName = None
    labels: PositiveInt | None = Field(None, description="Number of classes (nsp and sop: 2).")
    bias: bool = Field(True, description="The classifier carries a bias.")
    transform: Transform | None = TRANSFORM()

    @model_validator(mode="after")
    def _labels(self) -> ClassifierHead:
        if self.transform is not None and self.kind != "token_classification":
            raise ValueError(f"a transform before the classifier is for token_classification; a {self.kind} head "
                             "reads the pooled vector: give the pooler its dense / activation / norm instead")
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


def transform_text(tr: Attrs | None) -> str:
    """A classifier's transform in words: "none", "dense (no bias) + GELU + norm"."""
    if not tr:
        return "none"
    return "dense" + ("" if tr["bias"] else " (no bias)") + " + " + ACTIVATIONS.get(tr["activation"],
                                                                                   tr["activation"]) + \
        (" + norm" if tr["norm"] else "")


class _Classifier(Kind):
    spec = ClassifierHead
    #: The head in words ("NSP head"), and its title in a diagram.
    what: str = ""
    title: str = ""
    #: Runs once per sequence on the pooled vector (not once per token).
    pooled: bool = True

    def params(self, a: Attrs) -> dict[str, Shape]:
        H = a["hidden"]
        params: dict[str, Shape] = {}
        tr = a.get("transform")
        if tr is not None:
            params["transform.weight"] = (H, H)
            if tr["bias"]:
                params["transform.bias"] = (H,)
            if tr["norm"]:
                norm = a["norm"]
                shapes = KINDS[f"norm/{norm['kind']}"].params({**norm, "width": H})
                params.update({f"norm.{p}": s for p, s in shapes.items()})
        params["weight"] = (a["labels"], H)
        if a["bias"]:
            params["bias"] = (a["labels"],)
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        f = mm(params, "transform.weight", "weight")
        return f // max(T, 1) if self.pooled else f  # a sequence-level head runs once per sequence

    def words(self, a: Attrs) -> str:
        return self.what

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        out = [Aspect(f"{self.what} labels", num(a.get("labels"))),
               Aspect(f"{self.what} bias", onoff(a["bias"]), a["bias"])]
        if not self.pooled:
            text = transform_text(a.get("transform"))
            out.append(Aspect(f"{self.what} transform", text, text))
        return out

    def label(self, a: Attrs) -> tuple[str, str]:
        tr = a.get("transform")
        return self.title, (f"{transform_text(tr)} · " if tr else "") + f"{a.get('labels')} classes"

    def build(self, node):  # noqa: ANN001, ANN201
        from torch import nn

        if node.attrs.get("transform") is not None:
            from ...compile.heads import TransformedClassifier

            return TransformedClassifier(node["hidden"], node["labels"], bias=node["bias"],
                                         transform=node["transform"], norm=node.attrs.get("norm"))
        return nn.Linear(node["hidden"], node["labels"], bias=node["bias"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module)
        if getattr(module, "has_transform", False):
            rule.linear(module.transform)
        if getattr(module, "has_norm", False):
            KINDS[f"norm/{rule.attrs['norm']['kind']}"].init(module.norm, rule)

    def eject(self, a):  # noqa: ANN001, ANN201
        if a.get("transform") is not None:
            raise NotCompiledYet(f"block kind {self.name!r} cannot be ejected with a transform yet (dense -> "
                                 "activation -> norm before the classifier, ModernBERT's head): the ejected file "
                                 "writes a plain linear classifier")
        from ...eject.pieces import classifier

        return classifier(a)


@register
class NSPKind(_Classifier):
    name = "head/nsp"
    what, title = "NSP head", "NSP head"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Next-sentence-prediction head (BERT): a 2-way classifier on the pooled [CLS] vector, `p = "
            "softmax(pooled·W + b)`: is sentence B the real next sentence or a random one?",
            zh="下一句预测输出头（BERT）：在池化后的 [CLS] 向量上做二分类 `p = softmax(pooled·W + b)`：句子 B "
            "是真正的下一句还是随机句子？",
        )


@register
class SOPKind(_Classifier):
    name = "head/sop"
    what, title = "SOP head", "SOP head"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Sentence-order-prediction head (ALBERT): a 2-way classifier on the pooled [CLS] vector: are the "
            "two consecutive segments in their original order or swapped?",
            zh="句序预测输出头（ALBERT）：在池化后的 [CLS] 向量上做二分类：两个相邻片段是原顺序还是被交换了？",
        )


@register
class SequenceClassificationKind(_Classifier):
    name = "head/sequence_classification"
    what, title = "sequence classifier", "Sequence classifier"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Sequence classifier: one linear layer on the pooled vector, `logits = pooled·W + b`, one logit "
            "per label (sentiment, entailment, ...); cross-entropy with the labels.",
            zh="序列分类头：在池化向量上接一个线性层 `logits = pooled·W + b`，每个类别一个分数（情感、蕴含等），"
            "用交叉熵训练。",
        )


@register
class TokenClassificationKind(_Classifier):
    name = "head/token_classification"
    what, title = "token classifier", "Token classifier"
    pooled = False

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Token classifier: one linear layer on every token's vector, `logitsᵢ = hᵢ·W + b` (named "
            "entities, part-of-speech tags).",
            zh="token 分类头：在每个 token 的向量上接一个线性层 `logitsᵢ = hᵢ·W + b`（命名实体识别、词性标注）。",
        )


@register
class ImageClassificationKind(_Classifier):
    name = "head/image_classification"
    what, title = "image classifier", "Image classifier"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Image classifier (ViT): one linear layer on the final [CLS] vector, `y = LN(z_L⁰)·W + b`, one "
            "logit per class.",
            zh="图像分类头（ViT）：在最后一层的 [CLS] 向量上接一个线性层 `y = LN(z_L⁰)·W + b`，每个类别一个分数。",
        )
