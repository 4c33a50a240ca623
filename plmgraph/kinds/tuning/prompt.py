"""Prompt tuning (Lester et al. 2021): n trainable soft tokens in front of every input; the model is frozen.

The soft tokens replace the first n rows of the first stack's token embeddings on an input of
``n + T`` positions, so positions, the attention mask (ones for the prompt) and rotary angles run
over the prompt as over text, as Hugging Face PEFT's ``inputs_embeds`` path does; the outputs are
the T real positions (an encoder-decoder's decoder reads the prompt's encoder states, as in PEFT).
A cached call (generation) finds the prompt in the cache: its mask and positions are shifted by n.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Attrs, Strict, register
from ._shared import TuningKind, make_plan


class PromptTuning(Strict):
    """Trainable soft tokens prepended to the input (Lester et al. 2021)."""

    kind: Literal["prompt"] = "prompt"
    length: PositiveInt = Field(20, description="Number of soft tokens.")
    init: Literal["vocab", "random"] = Field(
        "vocab", description="vocab: copies of randomly drawn token embeddings (Lester et al.); random: N(0, 1) "
        "(PEFT's RANDOM).")


@register
class PromptKind(TuningKind):
    name = "tuning/prompt"
    spec = PromptTuning
    title = "prompt tuning"

    def check(self, graph, a: Attrs) -> list[tuple[str, str]]:  # noqa: ANN001
        spec = graph.spec
        first = list(spec.stacks)[0]
        why = None
        if spec.embeddings.patches is not None:
            why = "an image model has no token embeddings to prepend soft tokens to"
        elif spec.position.kind in ("xl_relative", "glm_2d"):
            why = f"{spec.position.kind} positions are not compiled with soft tokens"
        elif graph.node(f"{first}.layers.0.attn")["attrs"].get("mask") == "prefix":
            why = "the prefix-LM mask (GLM) is not compiled with soft tokens"
        if why:
            return [("kind", f"prompt tuning on {graph.name}: {why}")]
        mp = spec.sizes.max_positions
        if mp is not None and a["length"] >= mp:
            return [("length", f"prompt tuning: length {a['length']} leaves no room for text in {graph.name}'s "
                               f"{mp} positions; choose a length below {mp}")]
        return []

    def plan(self, graph, a: Attrs):  # noqa: ANN001, ANN201
        self.checked(graph, a)
        first = list(graph.spec.stacks)[0]
        tok = "embed.token" if "embed.token" in graph else f"{first}.embed.token"
        dim = graph.node(tok)["params"]["weight"][1]
        return make_plan(self, graph, a, added={"prompt.weight": (a["length"], dim)},
                         sites={"stack": first, "token": tok, "length": a["length"]})

    def attach(self, model, plan, generator) -> None:  # noqa: ANN001
        from ...tuning.prompt import attach_prompt

        attach_prompt(model, plan, generator)

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Prompt tuning (Lester et al. 2021): learn n soft token embeddings `P ∈ ℝ^(n×d)` and feed `[P; "
            "E(x)]` to the frozen model; only P trains.",
            zh="提示微调（Lester 等 2021）：学习 n 个软提示词向量 `P ∈ ℝ^(n×d)`，把 `[P; E(x)]` 输入冻结的模型；"
            "只训练 P。",
        )
