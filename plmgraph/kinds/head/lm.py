"""Vocabulary heads: next-token (``head/lm``) and masked-token (``head/mlm``, BERT) prediction.

Both optionally transform (dense -> activation -> norm, BERT), then project onto the
vocabulary with their own ``proj`` or with the token-embedding matrix they are tied to (the
node's ``tied_to``); ``scale_tied`` multiplies by hidden**-0.5 first (T5).  The two kinds
share every facet's code (one module) and differ in their defaults and their words.

Attrs: ``vocab``, ``width`` (the projection's input width: the embedding size E when tied
after a transform, else hidden), ``hidden``, ``norm`` (the block's norm, dumped with its
kind, for the transform's norm), ``tie_embeddings``, ``bias``, ``transform`` (dumped, or
None), ``scale_tied``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from ..base import ACTIVATIONS, KINDS, Activation, Aspect, Attrs, HeadName, Kind, Shape, Strict, mm, onoff, register


class Transform(Strict):
    """Dense + activation (+ norm) applied before the vocabulary projection (BERT's MLM transform)."""

    activation: Activation = Field("gelu", description="Activation after the dense layer.")
    norm: bool = Field(True, description="LayerNorm after the activation (same eps as the blocks).")
    bias: bool = Field(True, description="The dense layer has a bias (ModernBERT's classifier_bias: false).")


class LMHead(Strict):
    """Next-token language-model head: project hidden states onto the vocabulary."""

    kind: Literal["lm"] = "lm"
    name: HeadName = None
    tie_embeddings: bool = Field(True, description="Reuse the token-embedding matrix as the output projection.")
    bias: bool = Field(False, description="Learn a per-token output bias.")
    transform: Transform | None = Field(None, description="Optional dense/activation/norm before projecting.")
    scale_tied: bool = Field(
        False, description="Multiply hidden states by hidden**-0.5 before a tied projection (T5)."
    )
    softcap: PositiveFloat | None = Field(
        None, description="Soft-cap the logits: c * tanh(logits / c) (Gemma 2's final_logit_softcapping: 30)."
    )


class MLMHead(LMHead):
    """Masked-language-model head: BERT's transform, then a (tied) vocabulary projection with bias."""

    kind: Literal["mlm"] = "mlm"  # type: ignore[assignment]
    bias: bool = Field(True, description="Learn a per-token output bias.")
    transform: Transform | None = Field(
        default_factory=Transform, description="Dense/activation/norm before projecting; null for none."
    )


class _Vocabulary(Kind):
    #: The head in words ("LM head").
    what: str = ""

    def params(self, a: Attrs) -> dict[str, Shape]:
        width, H, vocab = a["width"], a["hidden"], a["vocab"]
        params: dict[str, Shape] = {}
        tr = a.get("transform")
        if tr is not None:
            params["transform.weight"] = (width, H)
            if tr.get("bias", True):
                params["transform.bias"] = (width,)
            if tr["norm"]:
                norm = a["norm"]
                shapes = KINDS[f"norm/{norm['kind']}"].params({**norm, "width": width})
                params.update({f"norm.{p}": s for p, s in shapes.items()})
        if not a["tie_embeddings"]:
            params["proj.weight"] = (vocab, width)
        if a["bias"]:
            params["bias"] = (vocab,)
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        # a tied head multiplies by the embedding it reuses (stats passes it as "tied.weight")
        return mm(params, "transform.weight", "proj.weight", "tied.weight")

    def words(self, a: Attrs) -> str:
        return self.what

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        name = self.what
        tr = a.get("transform")
        tr_text = "none" if not tr else "dense" + ("" if tr.get("bias", True) else " (no bias)") + " + " + \
            ACTIVATIONS.get(tr["activation"], tr["activation"]) + (" + norm" if tr["norm"] else "")
        return [
            Aspect(name, "tied" if a["tie_embeddings"] else "untied", a["tie_embeddings"]),
            Aspect(f"{name} bias", onoff(a["bias"]), a["bias"]),
            Aspect(f"{name} transform", tr_text, tr_text),
            Aspect(f"{name} scale", "×d^-0.5" if a.get("scale_tied") else "none", a.get("scale_tied")),
            Aspect(f"{name} soft-cap", "none" if a.get("softcap") is None else
                   f"{a['softcap']:g}·tanh(z/{a['softcap']:g})", a.get("softcap") is not None),
        ]

    def label(self, a: Attrs) -> tuple[str, str]:
        parts = []
        tr = a.get("transform")
        if tr:
            act = ACTIVATIONS.get(tr["activation"], tr["activation"])
            parts.append(f"dense {act}" + (" + norm" if tr["norm"] else ""))
        parts.append(f"{a['width']}→{a['vocab']}")
        parts.append("tied" if a["tie_embeddings"] else "untied")
        if a.get("softcap") is not None:
            parts.append(f"soft-cap {a['softcap']:g}")
        return self.what, " · ".join(parts)

    def build(self, node):  # noqa: ANN001, ANN201
        """Needs ``node.attrs["tied_module"]`` (the built embedding, set by `build`) when tied."""
        from ...compile.heads import LMHead as TorchLMHead

        a = node.attrs
        return TorchLMHead(a["hidden"], a["width"], a["vocab"], tied=a.get("tied_module"), bias=a["bias"],
                           transform=a.get("transform"), norm=a["norm"], scale_tied=a.get("scale_tied", False),
                           softcap=a.get("softcap"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        if module.bias is not None:
            rule.zeros(module.bias)
        if module.has_transform:
            rule.linear(module.transform)
        if module.has_norm:
            KINDS[f"norm/{rule.attrs['norm']['kind']}"].init(module.norm, rule)
        if "proj" in module._modules:  # untied; a tied matrix is the embedding's, initialised there
            rule.linear(module.proj)

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import lm_head

        return lm_head(a, self.variant)


@register
class LMKind(_Vocabulary):
    name = "head/lm"
    spec = LMHead
    what = "LM head"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Language-model head: `logits = h·W_outᵀ (+ b)`, then a softmax over the vocabulary, `p(x_t | ·) "
            "= softmax(logits)`. Tied (GPT-2, T5): `W_out = E`, the token embedding, saving `V·d` "
            "parameters.",
            zh="语言模型输出头：`logits = h·W_outᵀ (+ b)`，再对词表做 softmax：`p(x_t | ·) = softmax(logits)`。"
            "权重共享时（GPT-2、T5）`W_out = E` 即词嵌入矩阵，可省下 `V·d` 个参数。",
        )


@register
class MLMKind(_Vocabulary):
    name = "head/mlm"
    spec = MLMHead
    what = "MLM head"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Masked-LM head (BERT): a transform `h' = LN(GELU(h·W + b))`, then `logits = h'·Eᵀ + b` with the "
            "input embedding E; the loss is taken only at the masked positions.",
            zh="掩码语言模型输出头（BERT）：先变换 `h' = LN(GELU(h·W + b))`，再用输入词嵌入 E 得到 `logits = "
            "h'·Eᵀ + b`；只在被掩码的位置计算损失。",
        )
