"""Rotary position embedding (Su et al. 2021; LLaMA, GPT-J, GLM), with its context scaling
(`RopeScaling`: linear, dynamic NTK, llama3, yarn) in the same module: both are one kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from ..base import Aspect, Attrs, Shape, Strict, num, register
from .common import AttentionPosition, PositionSite


class RopeScaling(Strict):
    """Context-length scaling of rotary frequencies."""

    kind: Literal["linear", "dynamic", "llama3", "yarn"] = Field(description="Scaling method.")
    factor: PositiveFloat = Field(description="Context extension factor.")
    original_max_positions: PositiveInt | None = Field(
        None, description="Training context of the unscaled model (llama3, yarn, dynamic)."
    )
    low_freq_factor: PositiveFloat | None = Field(None, description="llama3: low-frequency wavelength factor.")
    high_freq_factor: PositiveFloat | None = Field(None, description="llama3: high-frequency wavelength factor.")

    @model_validator(mode="after")
    def _factors(self) -> RopeScaling:
        low, high = self.low_freq_factor or 1.0, self.high_freq_factor or 4.0  # the compiler's defaults
        if self.kind == "llama3" and high <= low:
            raise ValueError(f"llama3 scaling needs high_freq_factor ({high:g}) above low_freq_factor ({low:g})")
        return self


class RotaryPosition(Strict):
    """Rotary position embedding applied to queries and keys (Su et al. 2021; LLaMA, GLM)."""

    kind: Literal["rope"] = "rope"
    theta: PositiveFloat = Field(10000.0, description="Base of the rotary frequencies.")
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="Fraction of each head's dimensions that rotate (partial rotary, e.g. 0.5 in GLM)."
    )
    interleaved: bool = Field(
        False,
        description="Rotate adjacent pairs (x0,x1),(x2,x3)... (GPT-J, GLM) instead of the two halves (LLaMA).",
    )
    scaling: RopeScaling | None = Field(None, description="Optional context-length scaling.")


@register
class RotaryPositionKind(AttentionPosition):
    name = "position/rope"
    spec = RotaryPosition
    edge_label = "rotate q, k"

    def node_attrs(self, p: Strict, site: PositionSite) -> Attrs:
        attrs = super().node_attrs(p, site)
        if attrs.get("scaling") is None:
            attrs.pop("scaling", None)  # unscaled: no scaling attr at all
        return attrs

    def extra(self, p: Any, site: PositionSite) -> Attrs:
        return {"rotary_dim": int(site.head_dim * p.fraction), "max_positions": site.max_positions}

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}  # frequencies are computed from constants in forward, no weights

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # element-wise rotation: ignored by the FLOP convention

    def words(self, a: Attrs) -> str:
        return f"rotary (theta {num(a['theta'])})"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        sc = a.get("scaling")
        return [
            Aspect("position", self.words(a), self.variant),
            Aspect("rotary fraction", f"{a['fraction']:g}", a["fraction"] < 1),
            Aspect("rotary pairs", "interleaved" if a["interleaved"] else "halves", a["interleaved"]),
            Aspect("rope scaling", "none" if not sc else f"{sc['kind']} ×{sc['factor']:g}", sc["kind"] if sc else None),
        ]

    def label(self, a: Attrs) -> tuple[str, str]:
        frac = f" · {a['rotary_dim']}/{a['head_dim']} dims" if a["fraction"] < 1 else ""
        return "Rotary positions (RoPE)", f"θ={a['theta']:g}{frac}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.position import Rotary

        return Rotary(node["rotary_dim"], node["theta"], node.get("interleaved", False), node.get("scaling"),
                      node.get("max_positions"))

    def init(self, module, rule) -> None:  # noqa: ANN001
        pass  # no weights

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Rotary position embedding (RoPE, Su et al. 2021): rotate each pair of query and key dimensions "
            "by an angle proportional to the position m, `θᵢ = base^(−2i/d)`: `(q₁, q₂) ← (q₁·cos mθᵢ − "
            "q₂·sin mθᵢ, q₁·sin mθᵢ + q₂·cos mθᵢ)`. Then `⟨R_m q, R_n k⟩` depends only on `m − n`: relative "
            "positions with no parameters (LLaMA, GLM-4). Scaling (linear, dynamic NTK, YaRN, Llama 3) "
            "stretches the angles for longer contexts.",
            zh="旋转位置编码（RoPE，苏剑林等 2021）：把查询和键的每一对维度按与位置 m 成正比的角度旋转，`θᵢ = "
            "base^(−2i/d)`：`(q₁, q₂) ← (q₁·cos mθᵢ − q₂·sin mθᵢ, q₁·sin mθᵢ + q₂·cos mθᵢ)`。于是 `⟨R_m q, "
            "R_n k⟩` 只依赖于 `m − n`：不需要参数就得到相对位置（LLaMA、GLM-4）。位置插值类缩放（linear、"
            "dynamic NTK、YaRN、Llama 3）通过拉伸角度支持更长的上下文。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import rope

        return rope(a)
