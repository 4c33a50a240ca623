"""``op/sum``: the sum of a stack's embedding parts (tokens or patches, positions, segments, ...).

A graph-only kind: no spec class, no parameters and no module of its own — the stack's
embedding module (`compile.embedding.StackEmbeddings`) adds its parts.  Attrs: ``dropout``
(the embedding dropout, reported once from the spec).
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, MissingFacet, Shape, register


@register
class SumKind(Kind):
    name = "op/sum"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # element-wise: ignored by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "embedding sum"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return []  # follows from the parts; the dropout is a stack-level fact of the diff

    def label(self, a: Attrs) -> tuple[str, str]:
        return "+", ""

    def build(self, node):  # noqa: ANN001, ANN201
        raise MissingFacet(f"block kind {self.name!r} is graph-only: {node.id} is added up by the stack's "
                           "embedding module (StackEmbeddings), it has no module of its own")

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no module, no weights

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Adds the input embeddings element-wise: `x = E_tok + E_pos + E_seg` (whichever the model has).",
            zh="把各路输入嵌入逐元素相加：`x = E_tok + E_pos + E_seg`（模型有哪几路就加哪几路）。",
        )
