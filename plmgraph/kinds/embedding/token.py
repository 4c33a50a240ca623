"""The token embedding: a [vocab, dim] table, optionally scaled by sqrt(hidden) (Vaswani et al. 2017).

Attrs: ``vocab``, ``dim``, ``scale`` (the multiplier, or None).  An LM head tied to it reuses
its matrix (the head's node says ``tied_to``).
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, register


@register
class TokenKind(Kind):
    name = "embedding/token"

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["vocab"], a["dim"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a look-up is free by the FLOP convention

    def words(self, a: Attrs) -> str:
        return "token embedding"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("token embedding scale", "×√d" if a.get("scale") else "none", bool(a.get("scale")))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Token embedding", f"{a['vocab']} × {a['dim']}" + (" · ×√d" if a.get("scale") else "")

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.embedding import TokenEmbedding

        return TokenEmbedding(node["vocab"], node["dim"], node.get("scale"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="A lookup table `E ∈ ℝ^(V×d)`: token id t becomes the row `E[t]`. A tied output head reuses the "
            "same matrix, `logits = h·Eᵀ`, which saves `V·d` parameters (GPT-2, BERT).",
            zh="词嵌入是一张查找表 `E ∈ ℝ^(V×d)`：编号为 t 的 token 取第 `E[t]` 行。输出头与它共享权重时 "
            "`logits = h·Eᵀ`，可省下 `V·d` 个参数（GPT-2、BERT）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import token

        return token(a)
