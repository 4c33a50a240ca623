"""Cross-attention: a decoder layer's queries attend to the encoder output (Vaswani et al. 2017).

A graph-only kind (no spec class of its own): an encoder-decoder's decoder blocks get one
``cross`` node each, whose facts come from the block's attention spec (always bidirectional,
no window).  Its node owns ``q`` (from the decoder), ``kv`` (rows ``[k; v]``, from the encoder
output) and ``out``; the torch module is `compile.attention.CrossAttention`.
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, register
from ._common import aspects, detail, flops, init_qk_norm, options, qk_norm_params, scale_unscaled_queries


@register
class CrossAttentionKind(Kind):
    name = "attention/cross"
    spec = None  # the block's attention spec describes it

    def params(self, a: Attrs) -> dict[str, Shape]:
        n, kv, d, H = a["heads"], a["kv_heads"], a["head_dim"], a["hidden"]
        params: dict[str, Shape] = {"q.weight": (n * d, H), "kv.weight": (2 * kv * d, H)}
        if a["qkv_bias"]:
            params["q.bias"] = (n * d,)
            params["kv.bias"] = (2 * kv * d,)
        params["out.weight"] = (H, n * d)
        if a["out_bias"]:
            params["out.bias"] = (H,)
        return {**params, **qk_norm_params(a)}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return flops(a, params, T)

    def kv_elems_per_token(self, a: Attrs) -> int:
        return 0  # its keys and values come from the encoder output, not from generated tokens

    def words(self, a: Attrs) -> str:
        return "cross-attention"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return aspects(self.name, "", a, role)

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Cross-attention", detail(a, cross=True)

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.attention import CrossAttention

        return CrossAttention(node["hidden"], node["heads"], node["kv_heads"], node["head_dim"], **options(node))

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.q)
        rule.linear(module.kv)
        rule.linear(module.out, residual=True)  # writes into the residual stream
        init_qk_norm(module, rule)
        scale_unscaled_queries(module, module.q, rule)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Cross-attention (Vaswani et al. 2017): each decoder layer reads the encoder output, queries from "
            "the decoder and keys and values from the source, `softmax(Q_dec K_encᵀ / √d) V_enc`, with no causal "
            "mask over the source (only its padding is hidden).",
            zh="交叉注意力（Vaswani 等 2017）：解码器每一层读取编码器的输出，查询来自解码器，键和值来自源序列，"
            "`softmax(Q_dec K_encᵀ / √d) V_enc`，对源序列不加因果掩码（只遮住填充）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import cross_attention

        return cross_attention(a)
