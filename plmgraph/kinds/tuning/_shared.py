"""What the tuning kinds share: words from the spec fields, and the refusal of the kinds not compiled yet."""

from __future__ import annotations

from typing import Any, ClassVar

from ..base import Aspect, Attrs, Kind, num


class TuningKind(Kind):
    """A tuning kind. It is not a graph node: `compile.build` calls its `build` facet with a
    node made of the spec's ``tuning`` fields (``id`` ``"tuning"``), before anything is built."""

    #: The kind in words ("LoRA").
    title: ClassVar[str]

    def words(self, a: Attrs) -> str:
        rest = ", ".join(f"{k} {_text(v)}" for k, v in a.items() if v is not None)
        return f"{self.title} ({rest})" if rest else self.title

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [Aspect("tuning", self.words(a), self.name)]

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.title, self.words(a).removeprefix(self.title).strip(" ()")


class NotCompiledTuning(TuningKind):
    """A tuning kind that validates, shows and diffs but is not compiled yet (issue 9): `build`
    refuses it rather than training every parameter; so do the facets that need its weights."""

    #: What `build` would have to train alone ("the low-rank adapters").
    trains: ClassVar[str]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        why = (f"tuning kind {cls.name.split('/')[1]!r} is not compiled yet (issue 9); the spec validates, shows and "
               f"diffs, but `build` cannot train only {cls.trains}")
        cls.refused = {facet: why for facet in ("build", "init", *cls.refused_too)}

    #: Further facets refused (``params``/``flops`` where the kind adds tensors the graph lacks).
    refused_too: ClassVar[tuple[str, ...]] = ()


def _text(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else num(v)
