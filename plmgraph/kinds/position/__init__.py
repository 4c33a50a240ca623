"""Position kinds: how the model knows token order, one module per kind.

``none`` (no node), the input positions added to the embeddings (``learned``,
``sinusoidal``, ``glm_2d``) and the positions that act inside attention (``rope`` with its
scaling, ``alibi``, ``t5_relative``, ``xl_relative``, DeBERTa's ``disentangled`` table); `common`
says what they share.
Import order is the order of the spec union's variants (error messages list them so).
"""

from . import none, learned, sinusoidal, rope, alibi, t5_relative, xl_relative, glm_2d, disentangled  # noqa: I001

__all__ = ["alibi", "disentangled", "glm_2d", "learned", "none", "rope", "sinusoidal", "t5_relative", "xl_relative"]
