"""Per-layer patterns: a stack's ``pattern`` is a list of `LayerPattern` entries cycled over its layers
(layer ``i`` is ``pattern[i % len(pattern)]``), each saying what its layers change against the block.

It is the one mechanism for models whose layers are not all alike in how they attend:

    Gemma 2        pattern: [{window: 4096}, {}]                    sliding, global, sliding, ...
    Gemma 3        pattern: 5 x {window: 512, rope: {theta: 1e4}} + {}   five local layers, then a global one
    ModernBERT     pattern: [{}, {window: 65, rope: {theta: 1e4}} x 2]   global every third layer

An entry's fields are complete, not partial: ``window`` is the window of its layers (none = full
attention), ``rope`` their rotary base and scaling (none = the model's ``position``).  The layers'
weights are unaffected (a pattern changes masks and rotary angles, never shapes).
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from ..kinds.base import Strict
from ..kinds.position.rope import RopeScaling


class LayerRope(Strict):
    """The rotary base (and scaling) of a pattern entry's layers, in place of the model's `position`."""

    theta: PositiveFloat = Field(description="Base of these layers' rotary frequencies.")
    scaling: RopeScaling | None = Field(None, description="These layers' context scaling (none: unscaled).")


class LayerPattern(Strict):
    """What the layers of one pattern entry change against the block (see `Stack.pattern`)."""

    window: PositiveInt | None = Field(
        None, description="Sliding window of these layers (keys at distance < window are seen); none: full attention."
    )
    rope: LayerRope | None = Field(
        None, description="These layers' rotary base and scaling (needs position kind 'rope'); none: the model's."
    )


def pattern_words(pattern: list[LayerPattern] | None) -> str:
    """A stack's pattern in words: "none", or its entries cycled ("window 4096 / global, cycled")."""
    if pattern is None:
        return "none"
    words = []
    for e in pattern:
        w = f"window {e.window}" if e.window is not None else "global"
        if e.rope is not None:
            sc = e.rope.scaling
            w += f" θ={e.rope.theta:g}" + (f" {sc.kind} ×{sc.factor:g}" if sc else "")
        words.append(w)
    return " / ".join(words) + ", cycled"


__all__ = ["LayerPattern", "LayerRope", "pattern_words"]
