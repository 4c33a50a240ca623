"""GLM's autoregressive blank infilling: spans are removed and generated in random order."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..base import Attrs, Kind, Strict, register
from . import rules


class BlankInfilling(Strict):
    """GLM's autoregressive blank infilling: spans are removed and generated in random order."""

    kind: Literal["blank_infilling"] = "blank_infilling"
    rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.15, description="Fraction of tokens blanked.")
    poisson_lambda: Annotated[float, Field(gt=0.0)] = Field(3.0, description="Mean span length.")


@register
class BlankInfillingKind(Kind):
    name = "objective/blank_infilling"
    spec = BlankInfilling

    def words(self, a: Attrs) -> str:
        return 'blank infilling'

    def contradiction(self, obj: BlankInfilling, spec: Any) -> str | None:
        if spec.family == "decoder" and rules.masks(spec) == {"prefix"}:
            return None
        return (f"objective 'blank_infilling' reads Part A bidirectionally and generates the spans causally: it "
                f"needs a decoder with attention mask 'prefix' (GLM); {rules.what(spec)}")

    def train(self, obj: Any, spec: Any) -> Any:
        """The trainable objective (its collator part, `plmgraph.train.objectives`); imports torch."""
        from ...train.objectives import BlankInfillingObjective

        return BlankInfillingObjective(obj)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Autoregressive blank infilling (GLM): sample spans (lengths Poisson(λ = 3), about 15 % of the "
            "tokens) and replace each by [MASK] in part A; part B holds the spans in random order, each "
            "started by [S]. Part A attends bidirectionally, part B autoregressively (a prefix mask), with "
            "2D positions.",
            zh="自回归空白填充（GLM）：采样若干片段（长度服从泊松(λ = 3)，约占 15%），在 A 部分中各用一个 "
            "[MASK] 替换；B 部分按随机顺序放这些片段，每段以 [S] 开头。A 部分双向注意，B "
            "部分自回归生成（前缀掩码），并使用二维位置编码。",
        )
