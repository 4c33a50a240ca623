"""DeBERTa's relative positions (He et al. 2021; v3 2023): one table of relative-distance
embeddings shared by every layer (optionally LayerNorm-ed), and log-bucketed query-key distances;
each layer's disentangled attention projects the table into position keys and queries
(plmgraph/kinds/attention/disentangled.py).

The node is computed once per stack and feeds every attention layer: ``(table [2 span, H],
index [T, T])``, where ``span = buckets`` (or ``max_distance`` without buckets) and
``index[i, j] = clamp(bucket(i - j) + span, 0, 2 span - 1)`` (HF ``make_log_bucket_position``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import KINDS, Aspect, Attrs, Shape, Strict, register
from ..norm.layernorm import LayerNorm
from .common import AttentionPosition, PositionSite


class DisentangledPosition(Strict):
    """DeBERTa's relative position embeddings: one table shared by every layer, log-bucketed distances."""

    kind: Literal["disentangled"] = "disentangled"
    buckets: PositiveInt | None = Field(
        256, description="Distance buckets on each side (HF position_buckets): distances below buckets/2 are exact, "
        "longer ones log-spaced up to max_distance; the table has 2 * buckets rows. null: no bucketing, "
        "distances clamp at ±max_distance and the table has 2 * max_distance rows."
    )
    max_distance: PositiveInt = Field(
        512, description="Longest relative distance the log buckets reach (HF max_relative_positions; "
        "HF's -1 means max_position_embeddings)."
    )
    norm: LayerNorm | None = Field(
        None, description="LayerNorm the table before every use (HF norm_rel_ebd: layer_norm); null: none."
    )

    @model_validator(mode="after")
    def _log_range(self) -> DisentangledPosition:
        if self.buckets is not None:
            mid = self.buckets // 2
            if mid < 1:
                raise ValueError(f"buckets ({self.buckets}) must be at least 2: half of them are exact distances")
            # the log buckets divide by log((max_distance - 1) / mid); it must be positive
            if self.max_distance - 1 <= mid:
                raise ValueError(f"max_distance ({self.max_distance}) must exceed buckets/2 + 1 ({mid + 1}): the "
                                 "log-spaced buckets cover the distances between them")
        return self


def span(a: Attrs) -> int:
    """Rows on each side of the table: buckets, or max_distance without buckets."""
    return a["buckets"] or a["max_distance"]


@register
class DisentangledPositionKind(AttentionPosition):
    name = "position/disentangled"
    spec = DisentangledPosition
    edge_label = "relative"

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        return {"hidden": site.hidden}  # the table is hidden wide (each layer projects it)

    def params(self, a: Attrs) -> dict[str, Shape]:
        params: dict[str, Shape] = {"weight": (2 * span(a), a["hidden"])}
        if a["norm"] is not None:
            norm = {k: v for k, v in a["norm"].items() if k != "kind"}
            shapes = KINDS[f"norm/{a['norm']['kind']}"].params({**norm, "width": a["hidden"]})
            params.update({f"norm.{p}": s for p, s in shapes.items()})
        return params

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a table (and its norm, once per sequence); the projections are the attention's

    def words(self, a: Attrs) -> str:
        return "DeBERTa relative"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        b = f"{a['buckets']} log buckets" if a["buckets"] else "no buckets"
        return [Aspect("position", self.words(a), self.variant),
                Aspect("relative buckets", f"{b}, max distance {a['max_distance']}"),
                Aspect("relative table norm", "LayerNorm" if a["norm"] else "none", a["norm"] is not None)]

    def label(self, a: Attrs) -> tuple[str, str]:
        b = f"{a['buckets']} buckets · " if a.get("buckets") else ""
        return "Relative embeddings (DeBERTa)", f"{b}max {a.get('max_distance')}" + (" · LN" if a.get("norm") else "")

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.disentangled import DisentangledRelative

        return DisentangledRelative(node["hidden"], node["buckets"], node["max_distance"], node["norm"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)  # HF: an nn.Embedding, N(0, initializer_range)
        if hasattr(module, "norm"):
            KINDS[f"norm/{rule.attrs['norm']['kind']}"].init(module.norm, rule)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="DeBERTa relative positions (He et al. 2021): one table `P ∈ ℝ^(2k×d)` of relative-distance "
            "embeddings shared by every layer, indexed by `δ(i, j) = bucket(i − j) + k`: distances under k/2 "
            "exact, longer ones log-bucketed up to `max_distance`; each layer's disentangled attention "
            "projects it into position keys and queries.",
            zh="DeBERTa 相对位置（He 等 2021）：所有层共享一张相对距离嵌入表 `P ∈ ℝ^(2k×d)`，按 `δ(i, j) = "
            "bucket(i − j) + k` 取行：小于 k/2 的距离精确，更远的按对数分桶直到 `max_distance`；每层的解耦注意力"
            "把它投影成位置键和位置查询。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import disentangled_table

        return disentangled_table(a)
