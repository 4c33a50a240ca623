"""Prefix tuning (Li & Liang 2021): trainable key/value prefixes in every layer. Not compiled yet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Strict, register
from ._shared import NotCompiledTuning


class PrefixTuning(Strict):
    """Trainable key/value prefixes in every layer (Li & Liang 2021)."""

    kind: Literal["prefix"] = "prefix"
    length: PositiveInt = Field(16, description="Number of prefix positions.")


@register
class PrefixKind(NotCompiledTuning):
    name = "tuning/prefix"
    spec = PrefixTuning
    title = "prefix tuning"
    trains = "the key/value prefixes"
    refused_too = ("params", "flops")  # the prefixes are not graph tensors yet
