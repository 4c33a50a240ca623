"""DeepNorm (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers").

Post-norm with an up-scaled residual, ``x = LN(α·x + f(x))``, and the sublayer weights that
write the update (value and output projections, both MLP matrices) initialised ×β, so that
model updates stay bounded however deep the stack; GLM-130B trains with it (Zeng et al.
2022). When α and β are left out they are derived from the depth with the paper's formulas
(its Figure 2 / Table 1):

    encoder-only or decoder-only, N layers:   α = (2N)^(1/4),              β = (8N)^(-1/4)
    encoder-decoder, N encoder / M decoder:   encoder α = 0.81 (N⁴M)^(1/16), β = 0.87 (N⁴M)^(-1/16)
                                              decoder α = (3M)^(1/4),        β = (12M)^(-1/4)

GLM-130B chose α = (2N)^(1/2) instead (its paper, section 2.3), which its zoo spec writes out.
The seed note on GLM calls the 130B model post-norm; DeepNorm is the post-norm it uses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat

from ..base import Aspect, Attrs, Kind, Shape, Strict, num, register


class DeepNorm(Strict):
    """DeepNorm (Wang et al. 2022): post-norm x = LN(α·x + f(x)), sublayer init scaled by β (GLM-130B)."""

    kind: Literal["deepnorm"] = "deepnorm"
    alpha: PositiveFloat | None = Field(
        None, description="Residual up-scaling α. Default: derived from the depth ((2N)^(1/4) for one stack)."
    )
    beta: PositiveFloat | None = Field(
        None, description="Init scale β of the value, output and MLP weights. Default: derived ((8N)^(-1/4))."
    )

    def derive(self, spec: Any, stack: str, placement: str) -> list[tuple[tuple[str, ...], str]]:
        """Fill α and β from the depth; DeepNorm is a post-norm wiring."""
        if placement != "post":
            return [(("placement",), f"deepnorm residual is post-norm (x = LN(α·x + f(x))); "
                                     f"placement must be 'post', not '{placement}'")]
        layers = {name: st.layers or spec.sizes.layers for name, st in spec.stacks.items()}
        if len(layers) == 1:
            n = layers[stack]
            alpha, beta = (2 * n) ** 0.25, (8 * n) ** -0.25
        elif stack == "encoder":
            nm = layers["encoder"] ** 4 * layers["decoder"]
            alpha, beta = 0.81 * nm ** (1 / 16), 0.87 * nm ** (-1 / 16)
        else:
            m = layers["decoder"]
            alpha, beta = (3 * m) ** 0.25, (12 * m) ** -0.25
        if self.alpha is None:
            self.__dict__["alpha"] = alpha
        if self.beta is None:
            self.__dict__["beta"] = beta
        return []


@register
class DeepNormKind(Kind):
    name = "residual/deepnorm"
    spec = DeepNorm

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0

    def words(self, a: Attrs) -> str:
        return f"DeepNorm (α {a['alpha']:.3g}, β {a['beta']:.3g})"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("residual dropout", num(a.get("dropout"))),
                Aspect("DeepNorm", f"α {a['alpha']:.3g}, β {a['beta']:.3g}")]

    def label(self, a: Attrs) -> tuple[str, str]:
        return f"{a['alpha']:.3g}·x+", f"DeepNorm α {a['alpha']:.3g}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.block import Residual

        return Residual(scale=node["alpha"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        """Scale the weights that write the update of the sublayer this add closes by β (DeepNet:
        value and output projections and both MLP matrices; queries and keys keep gain 1)."""
        sublayer = rule.sibling(rule.role.removesuffix("_add"))
        for weight in sublayer.update_weights():
            weight.mul_(rule.attrs["beta"])

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="DeepNorm (Wang et al. 2022): post-norm with an up-weighted residual, `x = LN(α·x + f(x))`, and "
            "the sublayers' weights initialised ×β; for N decoder layers `α = (2N)^(1/4)`, `β = "
            "(8N)^(−1/4)`. It trains very deep post-norm models stably (GLM-130B).",
            zh="DeepNorm（Wang 等 2022）：在后归一化中放大残差：`x = LN(α·x + f(x))`，子层权重初始化时乘以 β；N "
            "层解码器取 `α = (2N)^(1/4)`、`β = (8N)^(−1/4)`。它让很深的后归一化模型也能稳定训练（GLM-130B）。",
        )
