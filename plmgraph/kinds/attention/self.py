"""Self-attention (Vaswani et al. 2017): multi-head dot-product attention over the layer's own
sequence, with MQA (Shazeer 2019) and GQA (Ainslie et al. 2023) as fewer key/value heads.

Its graph node owns one fused ``qkv`` projection (rows ``[q; k; v]``) and ``out``; the torch
module is `compile.attention.SelfAttention`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from ..base import Aspect, Attrs, Kind, Probability, Shape, Strict, register
from ._common import (
    TITLES,
    aspects,
    attention_type,
    detail,
    flops,
    init_qk_norm,
    options,
    qk_norm_params,
    scale_unscaled_queries,
)

Mask = Literal["bidirectional", "causal", "prefix"]


class Attention(Strict):
    """Multi-head dot-product attention over the layer's own sequence (MHA, MQA, GQA)."""

    kind: Literal["self"] = "self"
    kv_heads: PositiveInt | None = Field(
        None, description="Key/value heads: = heads for MHA, 1 for MQA, in between for GQA. Default: heads."
    )
    head_dim: PositiveInt | None = Field(None, description="Width of one head. Default: hidden / heads.")
    qkv_bias: bool = Field(True, description="Query, key and value projections carry a bias.")
    out_bias: bool = Field(True, description="Output projection carries a bias.")
    mask: Mask = Field(
        "bidirectional",
        description="Which positions a query may see: all (bidirectional), earlier ones (causal), "
        "or a bidirectional prefix followed by causal text (prefix LM / blank infilling).",
    )
    window: PositiveInt | None = Field(None, description="Sliding window: attend to at most this many keys back.")
    qk_norm: bool = Field(False, description="Normalise queries and keys per head before the dot product.")
    qk_norm_scope: Literal["head", "projection"] = Field(
        "head", description="qk_norm only: head normalises each head's head_dim values with one norm shared by the "
        "heads (Qwen3, OLMo, Gemma 3); projection normalises the whole query projection (heads * head_dim wide) and "
        "the whole key projection (kv_heads * head_dim) before they split into heads (OLMo 2).")
    scale: PositiveFloat | None = Field(
        None, description="Score scale; default 1/sqrt(head_dim). T5 uses 1.0 (folded into init)."
    )
    softcap: PositiveFloat | None = Field(
        None, description="Soft-cap the scores before the mask and softmax: c * tanh(scores / c) (Gemma 2: 50)."
    )
    dropout: Probability = Field(0.0, description="Dropout on attention probabilities.")


@register
class SelfAttentionKind(Kind):
    name = "attention/self"
    spec = Attention

    def model_inputs(self, a: Attrs) -> tuple[str, ...]:
        return ("prefix_lengths",) if a["mask"] == "prefix" else ()  # GLM: where each bidirectional part ends

    def params(self, a: Attrs) -> dict[str, Shape]:
        n, kv, d, H = a["heads"], a["kv_heads"], a["head_dim"], a["hidden"]
        rows = n * d + 2 * kv * d  # [q; k; v]
        params: dict[str, Shape] = {"qkv.weight": (rows, H)}
        if a["qkv_bias"]:
            params["qkv.bias"] = (rows,)
        params["out.weight"] = (H, n * d)
        if a["out_bias"]:
            params["out.bias"] = (H,)
        return {**params, **qk_norm_params(a)}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return flops(a, params, T)

    def kv_elems_per_token(self, a: Attrs) -> int:
        """What a decoder's KV cache grows by per token in this layer: keys and values."""
        return 2 * a["kv_heads"] * a["head_dim"]

    def words(self, a: Attrs) -> str:
        return f"attention ({attention_type(a)})"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return aspects(self.name, "", a, role)

    def label(self, a: Attrs) -> tuple[str, str]:
        title = TITLES[attention_type(a)]
        if a.get("mask") == "causal":
            title = "Masked " + title[0].lower() + title[1:]
        return title, detail(a)

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.attention import SelfAttention

        return SelfAttention(node["hidden"], node["heads"], node["kv_heads"], node["head_dim"], **options(node),
                             interleaved_rotary=node.get("interleaved_rotary", False))

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.qkv)
        rule.linear(module.out, residual=True)  # writes into the residual stream
        init_qk_norm(module, rule)
        scale_unscaled_queries(module, module.qkv, rule)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Multi-head self-attention (Vaswani et al. 2017): each head scores the keys a query may see, "
            "`Attention(Q, K, V) = softmax(QKᵀ / √d + M) V`, the mask `M` hiding later tokens (causal), padding "
            "or keys outside a window; with fewer key/value heads than query heads, a group of queries shares "
            "one K and V: MQA with one kv head (Shazeer 2019), GQA in between (Ainslie et al. 2023).",
            zh="多头自注意力（Vaswani 等 2017）：每个头对查询能看到的键打分，`Attention(Q, K, V) = softmax(QKᵀ / √d "
            "+ M) V`，掩码 `M` 遮住后面的 token（因果）、填充或窗口之外的键；键/值头少于查询头时，一组查询共用一份 "
            "K、V：只有一个 kv 头的是 MQA（Shazeer 2019），介于两者之间的是 GQA（Ainslie 等 2023）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import self_attention

        return self_attention(a)
