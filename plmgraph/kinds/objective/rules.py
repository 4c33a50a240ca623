"""What each objective needs of the architecture it trains (torch-free; read by the spec validator).

An objective kind's ``contradiction(obj, spec)`` returns why `spec` cannot be trained on it, or
None.  The spec validator (`plmgraph.spec.model`) reports it as a validation error at
``objectives[i].kind``, so ``plmgraph validate`` says it before any training starts; the
training planner (`plmgraph.train.objectives.plan`) asks again for specs built in Python.
"""

from __future__ import annotations

from typing import Any


def a(family: str) -> str:
    """'an encoder', 'a decoder', ..."""
    return ("an " if family[0] in "ae" else "a ") + family


def masks(spec: Any) -> set[str]:
    return {s.block.attention.mask for s in spec.stacks.values()}


def attention_kinds(spec: Any) -> set[str]:
    return {s.block.attention.kind for s in spec.stacks.values()}


def causal(spec: Any) -> bool:
    return masks(spec) <= {"causal", "sliding_window"}


def what(spec: Any) -> str:
    """'gpt2 is a decoder with causal attention'."""
    return f"{spec.name} is {a(spec.family)} with {', '.join(sorted(masks(spec)))} attention"


def needs_family(kind: str, does: str, spec: Any, family: str) -> str | None:
    if spec.family == family:
        return None
    return f"objective {kind!r} {does}: it needs {a(family)}; {what(spec)}"


__all__ = ["a", "attention_kinds", "causal", "masks", "needs_family", "what"]
