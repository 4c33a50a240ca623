"""Extra embedding tables added to the token embedding: segments (token types; BERT) and task
types (ERNIE 2.0/3.0).

``embedding/segment`` and ``embedding/task_type`` share every facet's code (one module); they
differ only in their words.  Attrs: ``vocab`` (the table's rows), ``dim``.
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, num, register


class _Table(Kind):
    """A [vocab, dim] table looked up by an id per token."""

    #: The table in words ("segment", "task-type"), its title in a diagram, and its vocabulary's name.
    what: str = ""
    title: str = ""
    vocabulary: str = ""

    def params(self, a: Attrs) -> dict[str, Shape]:
        return {"weight": (a["vocab"], a["dim"])}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return 0  # a look-up is free by the FLOP convention

    def words(self, a: Attrs) -> str:
        return f"{self.what} embeddings ({a.get('vocab')} types)"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect(self.vocabulary, num(a["vocab"]))]

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.title, f"{a['vocab']} × {a['dim']}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.embedding import Embedding

        return Embedding(node["vocab"], node["dim"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.table(module.weight)

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import table

        return table(a)


@register
class SegmentKind(_Table):
    name = "embedding/segment"
    what, title, vocabulary = "segment", "Segment embedding", "segment (token type) vocabulary"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Segment (token-type) embedding: one learned row per segment, added to the token embedding so "
            "the model can tell sentence A from sentence B: `x = E_tok[t] + E_pos[i] + E_seg[s]` (BERT).",
            zh="句段（token type）嵌入：每个句段一行可学习向量，与词嵌入相加，使模型区分句子 A 与句子 B：`x = "
            "E_tok[t] + E_pos[i] + E_seg[s]`（BERT）。",
        )


@register
class TaskTypeKind(_Table):
    name = "embedding/task_type"
    what, title, vocabulary = "task-type", "Task-type embedding", "task-type vocabulary"

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Task embedding (ERNIE 2.0): one learned row per task id, added to the input like the segment "
            "embedding, so one model can be trained on many tasks at once.",
            zh="任务嵌入（ERNIE 2.0）：每个任务编号一行可学习向量，像句段嵌入一样加到输入上，"
            "使一个模型能同时在多个任务上训练。",
        )
