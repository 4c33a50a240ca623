"""Replaced-token detection (ELECTRA's discriminator, Clark et al. 2020; HF ``ElectraForPreTraining``):
on every token's state ``dense (hidden -> hidden) -> activation -> dense (hidden -> 1)``, one logit per
token that the token was replaced (by the generator) rather than original.

The head's output is [B, T] (HF's ``logits``: the last axis of size 1 squeezed). Its loss (``labels``
[B, T]: 1 replaced, 0 original, -100 ignored) is binary cross-entropy with logits over the labelled
tokens; HF averages over the tokens its ``attention_mask`` keeps, so give padded positions -100 for the
same number. Attrs: ``hidden``, ``labels`` (1), ``bias``, ``activation``. The torch module is
`compile.discriminator.DiscriminatorHead`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import (
    ACTIVATIONS,
    Activation,
    Aspect,
    Attrs,
    HeadName,
    Kind,
    NotCompiledYet,
    Shape,
    Strict,
    mm,
    onoff,
    register,
)


class ReplacedTokenHead(Strict):
    """ELECTRA's discriminator head: dense, activation, dense -> one replaced-token logit per token."""

    kind: Literal["replaced_token_detection"] = Field(
        description="Replaced-token detection (ELECTRA's discriminator): one logit per token.")
    name: HeadName = None
    activation: Activation = Field("gelu", description="Activation between the two dense layers (HF: hidden_act).")
    labels: Literal[1] = Field(1, description="Always 1: one logit per token (replaced vs original).")
    bias: bool = Field(True, description="Both dense layers carry a bias.")

    @property
    def pooled(self) -> bool:
        """Reads every token's state (not a pooled vector)."""
        return False


@register
class ReplacedTokenDetectionKind(Kind):
    name = "head/replaced_token_detection"
    spec = ReplacedTokenHead
    what = "replaced-token detection head"

    def params(self, a: Attrs) -> dict[str, Shape]:
        H, b = a["hidden"], a["bias"]
        return {"dense.weight": (H, H), **({"dense.bias": (H,)} if b else {}),
                "proj.weight": (1, H), **({"proj.bias": (1,)} if b else {})}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return mm(params, "dense.weight", "proj.weight")  # once per token

    def words(self, a: Attrs) -> str:
        return self.what

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect(f"{self.what} activation", ACTIVATIONS[a["activation"]]),
                Aspect(f"{self.what} bias", onoff(a["bias"]), a["bias"])]

    def label(self, a: Attrs) -> tuple[str, str]:
        return "Replaced-token detection", f"dense · {ACTIVATIONS[a['activation']]} · 1 logit per token"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.discriminator import DiscriminatorHead

        return DiscriminatorHead(node["hidden"], node["activation"], node["bias"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.linear(module.dense)
        rule.linear(module.proj)

    def eject(self, a):  # noqa: ANN001, ANN201
        raise NotCompiledYet(f"block kind {self.name!r} cannot be ejected yet: the ejected file writes the "
                             "lm, mlm and classifier heads")

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Replaced-token detection head (ELECTRA, Clark et al. 2020): for every token, `sᵢ = w·φ(W·hᵢ + b) "
            "+ c` is the logit that token i was replaced by the generator; trained with binary cross-entropy on "
            "every token, not only the 15 % that were masked, which is what makes ELECTRA sample-efficient.",
            zh="替换词检测输出头（ELECTRA，Clark 等 2020）：对每个 token 计算 `sᵢ = w·φ(W·hᵢ + b) + c`，即该 token "
            "被生成器替换过的 logit；用二元交叉熵在所有 token 上训练（而不只是被遮盖的 15%），这正是 ELECTRA "
            "样本效率高的原因。",
        )
