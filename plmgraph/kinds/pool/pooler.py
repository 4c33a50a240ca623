"""The pooler: [B, T, H] -> [B, H] by the first token ([CLS]; BERT), the mean of the kept tokens,
the last kept token (GPT-2's sequence classifier), the first kept token (ModernBERT's multiple-choice
head: its <cls> under left padding too) or the last position whose input_ids token is ``eos_id``
(BART's sequence classifier; an encoder-decoder's decoder states at input_ids' positions); then
optionally dense + activation (BERT's tanh pooler).

``pool/cls``, ``pool/mean``, ``pool/last``, ``pool/first`` and ``pool/eos`` share every facet's code and one
spec class, `Pooler`, whose ``kind`` picks among them (one module).  Attrs: ``dense``, ``activation``,
``hidden`` (``eos_id`` for eos).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import KINDS, Activation, Aspect, Attrs, Kind, NotCompiledYet, Shape, Strict, mm, register


class Pooler(Strict):
    """How a sequence is reduced to one vector for sequence-level heads."""

    kind: Literal["cls", "mean", "last", "first", "eos"] = Field(
        "cls", description="First token ([CLS]), mean over unmasked tokens, last unmasked token, first unmasked "
        "token (ModernBERT's multiple choice: the same as cls unless the sequence is left-padded), or the last "
        "position whose input_ids token is `eos_id` (BART's sequence classifier; in an encoder-decoder the "
        "positions of input_ids pick decoder states, so both have one length)."
    )
    dense: bool = Field(False, description="A dense layer + activation after pooling (BERT's pooler).")
    activation: Activation = Field("tanh", description="Activation of the dense pooler.")
    bias: bool = Field(True, description="The dense layer has a bias (ModernBERT's classifier_bias: false).")
    norm: bool = Field(False, description="The block's norm after the activation (ModernBERT's classifier head).")
    by_mask: bool = Field(True, description="kind last: the last kept token, found through the attention mask "
                          "(right padding); false: the sequence's last position whatever the mask (XLNet's "
                          "summary_type last, made for left padding).")

    eos_id: int | None = Field(None, ge=0, description="kind eos: the token id whose last occurrence in input_ids "
                               "is pooled (BART: eos_token_id); only with kind eos.")

    @model_validator(mode="after")
    def _eos_id(self) -> Pooler:
        if (self.kind == "eos") != (self.eos_id is not None):
            raise ValueError("a pooler's `eos_id` goes with kind eos and only with it (kind eos pools the last "
                             f"position holding token eos_id); got kind {self.kind!r}, eos_id {self.eos_id!r}")
        return self

    @model_validator(mode="after")
    def _dense_parts(self) -> Pooler:
        if not self.dense and (self.norm or not self.bias):
            raise ValueError("a pooler's `norm` and `bias` belong to its dense layer; set dense: true")
        if not self.by_mask and self.kind != "last":
            raise ValueError(f"a pooler's by_mask: false applies to kind last only (the last position); kind "
                             f"{self.kind!r} needs the mask or takes position 0 anyway; set by_mask: true")
        return self


class _Pool(Kind):
    spec = Pooler
    #: What is pooled, in words.
    what: str = ""

    def params(self, a: Attrs) -> dict[str, Shape]:
        H = a["hidden"]
        if not a["dense"]:
            return {}
        params: dict[str, Shape] = {"dense.weight": (H, H)}
        if a.get("bias", True):
            params["dense.bias"] = (H,)
        if a.get("norm"):
            norm = a["block_norm"]
            shapes = KINDS[f"norm/{norm['kind']}"].params({**{k: v for k, v in norm.items() if k != "kind"},
                                                           "width": H})
            params.update({f"norm.{p}": s for p, s in shapes.items()})
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return mm(params, "dense.weight") // max(T, 1)  # once per sequence

    def words(self, a: Attrs) -> str:
        where = "" if a.get("by_mask", True) else " (last position)"
        return self.what + where + (f" + dense {a['activation']}" + ("" if a.get("bias", True) else " (no bias)")
                            + (" + norm" if a.get("norm") else "") if a.get("dense") else "")

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("pooler", self.words(a), self.words(a))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Pooler", self.what + (f" · dense {a['activation']}" if a.get("dense") else "")

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.heads import Pooler as TorchPooler

        return TorchPooler(self.variant, node["hidden"], node["dense"], node["activation"], bias=node.get("bias", True),
                           norm=node.get("block_norm") if node.get("norm") else None,
                           by_mask=node.get("by_mask", True), eos_id=node.get("eos_id"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        if module.has_dense:
            rule.linear(module.dense)
        if getattr(module, "has_norm", False):
            KINDS[f"norm/{rule.attrs['block_norm']['kind']}"].init(module.norm, rule)

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import pooler

        if not a.get("by_mask", True):
            raise NotCompiledYet(f"block kind {self.name!r} with by_mask: false cannot be ejected yet: the ejected "
                                 "pooler takes the last kept token, not the last position")
        return pooler(a, self.variant)


@register
class ClsKind(_Pool):
    name = "pool/cls"
    what = "[CLS]"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Pools a sequence into its first token's ([CLS]) vector; BERT adds a dense layer, `pooled = "
            "tanh(h_cls·W + b)`, which NSP and sentence classifiers read.",
            zh="取第一个 token（[CLS]）的向量作为整句表示；BERT 再接一层全连接 `pooled = tanh(h_cls·W + b)`，供 "
            "NSP 和句子分类使用。",
        )


@register
class MeanKind(_Pool):
    name = "pool/mean"
    what = "mean"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Pools a sequence into the mean of its token vectors over the non-padding positions: `pooled = "
            "Σᵢ mᵢ·hᵢ / Σᵢ mᵢ`.",
            zh="对非填充位置的 token 向量取平均作为整句表示：`pooled = Σᵢ mᵢ·hᵢ / Σᵢ mᵢ`。",
        )


@register
class LastKind(_Pool):
    name = "pool/last"
    what = "last token"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Pools a sequence into the vector of its last non-padding token: in a causal model it is the "
            "only one that has seen the whole sequence (GPT-style classifiers).",
            zh="取最后一个非填充 token 的向量作为整句表示：在因果模型中只有它看过整个序列（GPT 式分类器）。",
        )


@register
class FirstKind(_Pool):
    name = "pool/first"
    what = "first kept token"

    def eject(self, a):  # noqa: ANN001, ANN201
        raise NotCompiledYet(f"block kind {self.name!r} cannot be ejected yet: the ejected pooler takes the "
                             "first token, the mean or the last kept token, not the first kept one")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Pools a sequence into the vector of its first non-padding token: [CLS] wherever the padding is "
            "(ModernBERT's multiple-choice head); the same as `cls` for right-padded input.",
            zh="取第一个非填充 token 的向量作为整句表示：无论填充在哪一侧都取到 [CLS]（ModernBERT 的多项选择头）；"
            "右填充时与 `cls` 相同。",
        )


@register
class EosKind(_Pool):
    name = "pool/eos"
    what = "last eos token"

    def eject(self, a):  # noqa: ANN001, ANN201
        raise NotCompiledYet(f"block kind {self.name!r} cannot be ejected yet: the ejected pooler takes the "
                             "first token, the mean or the last kept token, not the last eos token")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Pools a sequence into the vector at the last position whose input token is the end-of-sequence "
            "id `eos_id` (BART's sequence classifier: the decoder state there has read the whole sentence).",
            zh="取输入中最后一个结束符（`eos_id`）所在位置的向量作为整句表示（BART 的句子分类器：该位置的解码器状态"
            "已读过整句）。",
        )
