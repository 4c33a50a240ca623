"""Transformer-XL's relative attention (Dai et al. 2019) over the current segment plus a cached
memory of earlier segments' hidden states.

Its facets are `_common.RelativeKind`'s; the torch module is `compile.relative.RelativeAttention`
(``segments=False``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..base import Attrs, register
from ._common import NonNegInt, RelativeKind, check_relative
from .self import Attention


class MemoryAttention(Attention):
    """Transformer-XL's relative attention over the current segment plus cached memory."""

    kind: Literal["segment_memory"] = "segment_memory"  # type: ignore[assignment]
    memory: NonNegInt = Field(
        0, description="Hidden states of previous segments kept per layer as the cache (mem_len); 0 keeps all."
    )

    def derive(self, spec: Any, stack: str, placement: str) -> list[tuple[tuple[str, ...], str]]:
        """What the relative attention module does not do is a validation error, not a build error."""
        return check_relative(self, spec.sizes.heads, getattr(spec, stack).block.residual.kind)


@register
class SegmentMemoryKind(RelativeKind):
    name = "attention/segment_memory"
    spec = MemoryAttention
    segments = False
    prefix = "segment-memory relative "
    title = "Relative attention + memory"

    def kv_elems_per_token(self, a: Attrs) -> int:
        """Counted as keys and values per token, like self-attention (the cache holds hidden states)."""
        return 2 * a["kv_heads"] * a["head_dim"]

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Transformer-XL's relative attention with a segment memory (Dai et al. 2019): keys and values "
            "span the cached hidden states of earlier segments and the current one, `[m; h]` (the memory "
            "gets no gradient), and scores come from relative distances, `A_ij = (qᵢ + u)·kⱼ + (qᵢ + v)·W_R "
            "R_(i−j)`, so a model reads past its training segment length.",
            zh="Transformer-XL 带片段记忆的相对注意力（Dai 等 2019）：键和值覆盖之前片段缓存的隐藏状态和当前片段，"
            "`[m; h]`（记忆不传梯度），打分来自相对距离，`A_ij = (qᵢ + u)·kⱼ + (qᵢ + v)·W_R R_(i−j)`，"
            "因此模型能看到超出训练片段长度的上下文。",
        )
