"""The model's inputs as graph nodes: token ids, pixel values, token-type ids.

``input/tokens``, ``input/pixels`` and ``input/token_types`` share every facet's code (one
module): each is a graph-only kind with no spec class, no parameters and no torch module —
the tensor is an argument of the compiled model's ``forward``.  Its attrs: ``argument``
(the forward argument's name, ``input_ids``) and ``shape`` (the tensor's shape, as on its
out-edge); both echo other facts and are left out of the diff.
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, MissingFacet, Shape, register


class _Input(Kind):
    """A forward argument of the compiled model."""

    #: What the input is, in words.
    what: str = ""

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # an input owns no weights

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # nothing is computed

    def words(self, a: Attrs) -> str:
        return self.what

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return []  # its presence follows from the blocks that read it; its shape echoes `dims`

    def label(self, a: Attrs) -> tuple[str, str]:
        return a["argument"], "×".join(str(s) for s in a["shape"])

    def model_inputs(self, a: Attrs) -> tuple[str, ...]:
        # token ids come with their padding mask
        return (a["argument"], "attention_mask") if a["argument"] == "input_ids" else (a["argument"],)

    def build(self, node):  # noqa: ANN001, ANN201
        raise MissingFacet(f"block kind {self.name!r} is graph-only: {node.id} is the compiled model's "
                           f"`{node['argument']}` argument, not a module")

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no module, no weights


@register
class TokensKind(_Input):
    name = "input/tokens"
    what = "token ids"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="The token ids `[B, T]` of the batch, integers in `[0, vocab)`, as a tokenizer writes them.",
            zh="一个批次的 token 编号 `[B, T]`，取值在 `[0, vocab)` 之间，由分词器给出。",
        )


@register
class PixelsKind(_Input):
    name = "input/pixels"
    what = "pixel values"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="The images `[B, C, H, W]` (pixel values after the usual normalisation) that a vision "
            "transformer reads.",
            zh="视觉 Transformer 读入的图像 `[B, C, H, W]`（已做常规归一化的像素值）。",
        )


@register
class TokenTypesKind(_Input):
    name = "input/token_types"
    what = "token-type ids"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="The segment ids `[B, T]` (0 for sentence A, 1 for sentence B in BERT); they pick rows of the "
            "segment embedding.",
            zh="句段编号 `[B, T]`（BERT 中句子 A 为 0、句子 B 为 1），用来查句段嵌入表。",
        )
