"""Bottleneck adapters after each sublayer (Houlsby et al. 2019). Not compiled yet."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Strict, register
from ._shared import NotCompiledTuning


class Adapters(Strict):
    """Bottleneck adapters after each sublayer (Houlsby et al. 2019)."""

    kind: Literal["adapters"] = "adapters"
    bottleneck: PositiveInt = Field(64, description="Adapter inner width.")


@register
class AdaptersKind(NotCompiledTuning):
    name = "tuning/adapters"
    spec = Adapters
    title = "adapters"
    trains = "the bottleneck adapters"
    refused_too = ("params", "flops")  # the adapters are not graph nodes yet
