"""DeBERTa's disentangled attention (He et al. 2021; DeBERTa-v2/v3), following Hugging Face
``modeling_deberta_v2.DisentangledSelfAttention``.

Query ``i`` scores key ``j`` with a content term and up to two position terms, read from the
stack's shared relative table ``P`` (``position/disentangled``) at ``δ = index[i, j]``:

    A_ij = ( q_i · k_j                       content
           + q_i · Kr[δ]                      content-to-position (c2p)
           + k_j · Qr[δ] )                    position-to-content (p2c)
           / sqrt(head_dim * (1 + c2p + p2c))

where ``Kr``/``Qr`` are ``P`` projected by the layer's own key/query projections
(``share_keys``, HF ``share_att_key``: the same ``qkv`` weights and biases) or by separate
``pos_k``/``pos_q`` projections.  The torch module is `compile.disentangled.DisentangledAttention`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..base import Aspect, Attrs, Kind, Probability, Shape, mm, num, register
from ._common import aspects, detail
from .self import Attention


class DisentangledAttention(Attention):
    """DeBERTa's disentangled attention: content and relative-position terms scored apart."""

    kind: Literal["disentangled"] = "disentangled"  # type: ignore[assignment]
    c2p: bool = Field(True, description="Content-to-position term: queries against projected relative "
                      "embeddings (HF pos_att_type c2p).")
    p2c: bool = Field(True, description="Position-to-content term: keys against projected relative "
                      "embeddings (HF pos_att_type p2c).")
    share_keys: bool = Field(True, description="Project the relative embeddings with this layer's own query and "
                             "key projections (HF share_att_key); false: separate pos_q / pos_k projections.")
    position_dropout: Probability = Field(0.0, description="Dropout on the relative table before this layer "
                                          "projects it, in training (HF: hidden_dropout_prob).")

    def derive(self, spec: Any, stack: str, placement: str) -> list[tuple[tuple[str, ...], str]]:
        """What the module does not do is a validation error (paths from the block)."""
        errs: list[tuple[tuple[str, ...], str]] = []
        heads = spec.sizes.heads
        if self.kv_heads != heads:
            errs.append((("attention", "kv_heads"), f"disentangled attention has one key/value head per query head: "
                         f"kv_heads must be heads ({heads}), not {self.kv_heads}"))
        if self.window is not None:
            errs.append((("attention", "window"), "disentangled attention has no sliding window; remove `window`"))
        if self.qk_norm:
            errs.append((("attention", "qk_norm"), "disentangled attention has no q/k norm; set qk_norm: false"))
        if self.mask != "bidirectional":
            errs.append((("attention", "mask"), f"disentangled attention is compiled for bidirectional encoders "
                         f"(DeBERTa); mask must be 'bidirectional', not '{self.mask}'"))
        if self.scale is not None:
            errs.append((("attention", "scale"), "disentangled attention scales its scores by "
                         "1/sqrt(head_dim * (1 + c2p + p2c)) (DeBERTa); remove `scale`"))
        if not (self.c2p or self.p2c):
            errs.append((("attention", "c2p"), "disentangled attention without c2p and p2c terms never reads its "
                         "relative positions; set c2p or p2c, or use attention kind 'self'"))
        rel = spec.position if spec.position.kind == "disentangled" else spec.relative_position
        if rel is None or rel.kind != "disentangled":
            have = spec.position.kind if spec.relative_position is None else spec.relative_position.kind
            errs.append((("attention", "kind"), f"disentangled attention reads the shared relative table of position "
                         f"kind 'disentangled' (as `position`, or as `relative_position` next to learned absolute "
                         f"positions), not '{have}'"))
        return errs


def factor(a: Attrs) -> int:
    """1 + the number of relative terms: the scores are divided by sqrt(head_dim * factor)."""
    return 1 + int(a["c2p"]) + int(a["p2c"])


@register
class DisentangledAttentionKind(Kind):
    name = "attention/disentangled"
    spec = DisentangledAttention

    def params(self, a: Attrs) -> dict[str, Shape]:
        n, d, H = a["heads"], a["head_dim"], a["hidden"]
        nd = n * d
        params: dict[str, Shape] = {"qkv.weight": (3 * nd, H)}
        if a["qkv_bias"]:
            params["qkv.bias"] = (3 * nd,)
        if not a["share_keys"]:
            for p, on in (("pos_k", a["c2p"]), ("pos_q", a["p2c"])):
                if on:
                    params[f"{p}.weight"] = (nd, H)
                    if a["qkv_bias"]:
                        params[f"{p}.bias"] = (nd,)
        params["out.weight"] = (H, nd)
        if a["out_bias"]:
            params["out.bias"] = (H,)
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        """Projections, the content scores and weighted sum (4 n d T), and each relative term as one more
        score per query-key pair (2 n d T); projecting the shared table happens once per sequence,
        whatever its length, and is not counted per token."""
        projections = mm(params, "qkv.weight", "out.weight")
        nd = a["heads"] * a["head_dim"]
        return projections + 4 * nd * T + 2 * nd * T * (factor(a) - 1)

    def kv_elems_per_token(self, a: Attrs) -> int:
        return 2 * a["kv_heads"] * a["head_dim"]

    def words(self, a: Attrs) -> str:
        return "disentangled attention"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        out = aspects(self.name, "disentangled ", {**a, "scale": None}, role)
        terms = "+".join(t for t in ("c2p", "p2c") if a[t]) or "none"
        for x in out:
            if x.what == "attention scale":
                out[out.index(x)] = Aspect("attention scale", f"1/√({factor(a)}d)")
        out.append(Aspect("relative terms", terms, terms))
        out.append(Aspect("relative projections", "shared with q/k" if a["share_keys"] else "own pos_q/pos_k",
                          a["share_keys"]))
        out.append(Aspect("relative table dropout", num(a["position_dropout"])))
        return out

    def label(self, a: Attrs) -> tuple[str, str]:
        terms = " + ".join(t for t in ("c2p", "p2c") if a.get(t))
        return "Disentangled attention", detail(a) + (f" · {terms}" if terms else "") + (
            "" if a.get("share_keys", True) else " · own pos proj")

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.disentangled import DisentangledAttention as Module

        return Module(node["hidden"], node["heads"], node["head_dim"], c2p=node["c2p"], p2c=node["p2c"],
                      share_keys=node["share_keys"], qkv_bias=node["qkv_bias"], out_bias=node["out_bias"],
                      dropout=node.get("dropout", 0.0), position_dropout=node["position_dropout"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.qkv)
        for p in ("pos_k", "pos_q"):
            if hasattr(module, p):
                rule.linear(getattr(module, p))
        rule.linear(module.out, residual=True)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="DeBERTa's disentangled attention (He et al. 2021): content and relative position are scored "
            "apart, `A_ij = (qᵢ·kⱼ + qᵢ·K_r[δ(i,j)] + kⱼ·Q_r[δ(i,j)]) / √(3d)`, the content-to-position and "
            "position-to-content terms reading a relative table shared by all layers and projected by each "
            "layer's own query and key weights (v3: `share_att_key`).",
            zh="DeBERTa 的解耦注意力（He 等 2021）：内容和相对位置分开打分，`A_ij = (qᵢ·kⱼ + qᵢ·K_r[δ(i,j)] + "
            "kⱼ·Q_r[δ(i,j)]) / √(3d)`，内容到位置、位置到内容两项读取所有层共享的相对位置表，并用每层自己的"
            "查询、键投影（v3：`share_att_key`）。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import disentangled_attention

        return disentangled_attention(a)


__all__ = ["DisentangledAttention", "DisentangledAttentionKind", "factor"]
