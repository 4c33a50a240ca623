"""Random-initialisation schemes of a fresh build: one module per scheme."""

from . import normal, fan_in  # noqa: I001  (registration order: normal first, the default)

__all__ = ["fan_in", "normal"]
