"""HF ``layer_types`` (one ``"sliding_attention"`` / ``"full_attention"`` per layer, with one
``sliding_window``, and for Gemma 3 / ModernBERT a second rotary base on the sliding layers) <->
a stack's ``pattern`` (see plmgraph/spec/pattern.py): the shortest period that repeats to the list.

A model whose layers all slide gets ``block.attention.window`` instead, and one whose layers are all
global neither, so a pattern appears only where layers differ.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import Cfg, need

SLIDING, FULL = "sliding_attention", "full_attention"


def period(items: list[Any]) -> list[Any]:
    """The shortest prefix of `items` that, cycled, gives `items`."""
    for p in range(1, len(items) + 1):
        if all(items[i] == items[i % p] for i in range(len(items))):
            return items[:p]
    return items


def to_pattern(cfg: Cfg, d: dict[str, Any], types: list[str], window: int | None,
               local_rope: dict[str, Any] | None = None) -> None:
    """Write `types` (one per layer) into the spec mapping `d`: sliding layers get `window` (and
    `local_rope`, their own rotary base), full layers the block's attention."""
    unknown = set(types) - {SLIDING, FULL}
    if unknown:
        raise ConversionError(f"config.json: layer_types {sorted(unknown)} have no plmgraph equivalent; "
                              f"supported: {FULL}, {SLIDING}")
    n = d["sizes"]["layers"]
    if len(types) != n:
        raise ConversionError(f"config.json: layer_types has {len(types)} entries for num_hidden_layers = {n}; "
                              "supported: one per layer")
    if window is None:
        types = [FULL] * n  # nothing to slide over: every layer sees everything
    entry = {"window": int(window)} if window is not None else {}
    if local_rope is not None:
        entry["rope"] = local_rope
    if set(types) == {SLIDING} and local_rope is None:
        d["block"]["attention"]["window"] = int(window)
        return
    if set(types) == {FULL}:
        return
    d.setdefault("decoder" if d["family"] == "decoder" else "encoder", {})["pattern"] = [
        dict(entry) if t == SLIDING else {} for t in period(types)]


def from_pattern(spec: ModelSpec, cfg: Cfg, local_rope: bool = False) -> tuple[list[str], int | None, Any]:
    """A stack's pattern (or its one window) -> (layer_types, sliding_window, the sliding layers' rope or None).

    Raises:
        ConversionError: entries with different windows, or rotary bases where `local_rope` is false
            (or that differ between the sliding layers, or a full layer with one of its own).
    """
    stack = next(iter(spec.stacks.values()))
    n, mt = stack.layers, cfg["model_type"]
    w = stack.block.attention.window
    if stack.pattern is None:
        return [SLIDING if w is not None else FULL] * n, w, None
    entries = [stack.pattern[i % len(stack.pattern)] for i in range(n)]
    windows = {e.window for e in entries if e.window is not None}
    need(len(windows) <= 1, mt, f"sliding windows of different sizes ({sorted(windows)}): it has one sliding_window")
    ropes = {e.rope.model_dump_json() for e in entries if e.window is not None and e.rope is not None}
    need(all(e.rope is None for e in entries if e.window is None), mt, "a rotary base of its own on a global layer")
    if not local_rope:
        need(not ropes, mt, "a per-layer rotary base")
    else:
        need(len(ropes) <= 1 and (not ropes or all(e.rope is not None for e in entries if e.window is not None)),
             mt, "sliding layers with different rotary bases")
    rope = next((e.rope for e in entries if e.rope is not None), None)
    return [SLIDING if e.window is not None else FULL for e in entries], next(iter(windows), None), rope
