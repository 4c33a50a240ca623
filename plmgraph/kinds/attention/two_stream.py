"""XLNet's two-stream relative attention (Yang et al. 2019): Transformer-XL's relative attention
with segment terms, run for a content stream and a query stream that share its weights.

Its facets are `_common.RelativeKind`'s with the segment bias and embeddings; the torch module
is `compile.relative.RelativeAttention` (``segments=True``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..base import Attrs, register
from ._common import NonNegInt, RelativeKind, check_relative
from .self import Attention


class TwoStreamAttention(Attention):
    """XLNet's two-stream relative attention (content and query streams, segment biases)."""

    kind: Literal["two_stream"] = "two_stream"  # type: ignore[assignment]
    memory: NonNegInt = Field(
        0, description="Hidden states kept per layer as the cache (mem_len); 0 keeps all of them."
    )

    def derive(self, spec: Any, stack: str, placement: str) -> list[tuple[tuple[str, ...], str]]:
        """What the relative attention module does not do is a validation error, not a build error."""
        return check_relative(self, spec.sizes.heads, getattr(spec, stack).block.residual.kind)


@register
class TwoStreamKind(RelativeKind):
    name = "attention/two_stream"
    spec = TwoStreamAttention
    segments = True
    prefix = "two-stream relative "
    title = "Two-stream relative attention"

    def model_inputs(self, a: Attrs) -> tuple[str, ...]:
        return ("token_type_ids",)  # the segment term reads them (XLNet has no segment table)

    def kv_elems_per_token(self, a: Attrs) -> int:
        return 0  # as counted so far: only self-attention and segment-memory decoders grow a cache

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="XLNet's two-stream relative attention (Yang et al. 2019): a content stream `h` that sees its own "
            "token and a query stream `g` that sees only the context it predicts from, both scoring with "
            "Transformer-XL's relative terms plus a segment term, `A_ij = (qᵢ + u)·kⱼ + (qᵢ + v)·W_R R_(i−j) + "
            "(qᵢ + s)·e_(sᵢ≠sⱼ)`, under a permutation mask.",
            zh="XLNet 的双流相对注意力（Yang 等 2019）：内容流 `h` 能看到自己的 token，查询流 `g` 只看到用来预测的"
            "上下文；两者都用 Transformer-XL 的相对位置项再加一个片段项打分，`A_ij = (qᵢ + u)·kⱼ + (qᵢ + v)·W_R "
            "R_(i−j) + (qᵢ + s)·e_(sᵢ≠sⱼ)`，并受排列掩码约束。",
        )
