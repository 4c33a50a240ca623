"""Attention kinds: one module per kind.

``self`` (MHA/GQA/MQA), ``two_stream`` (XLNet), ``segment_memory`` (Transformer-XL) and
``disentangled`` (DeBERTa) are the spec's `attention` variants, in that order; ``cross`` is
graph-only (a decoder's attention to the encoder, described by the block's attention spec).  Shared code lives in `_common`.
"""

from . import self, two_stream, segment_memory, cross, disentangled  # noqa: I001  (registration order = union order)

__all__ = ["cross", "disentangled", "segment_memory", "self", "two_stream"]
