"""Random initialisation, one rule per module type (see `PLMModel`'s docstring)."""

from __future__ import annotations

from torch import Tensor, nn

from .embedding import MaskToken, PatchEmbedding
from .glm import GLM2DPosition
from .heads import LMHead
from .mlp import Experts
from .norm import RMSNorm
from .position import T5RelativeBias
from .relative import RelativeAttention

#: Linear layers that write into the residual stream get GPT-2's depth-scaled std.
RESIDUAL_OUT = ("attn.out", "cross.out", "mlp.down")


def _normal(t: Tensor, std: float, generator) -> None:  # noqa: ANN001
    nn.init.normal_(t, 0.0, std, generator=generator)


def init_module(name: str, m: nn.Module, *, std: float, resid_std: float, generator=None) -> None:  # noqa: ANN001
    """Initialise the parameters `m` owns directly (not its children's)."""
    if isinstance(m, nn.Linear):
        _normal(m.weight, resid_std if name.endswith(RESIDUAL_OUT) else std, generator)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Embedding, T5RelativeBias, MaskToken)):
        _normal(m.weight, std, generator)
    elif isinstance(m, GLM2DPosition):
        _normal(m.weight, std, generator)
        _normal(m.block_weight, std, generator)
    elif isinstance(m, nn.LayerNorm):
        if m.weight is not None:
            nn.init.ones_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, RMSNorm):
        nn.init.constant_(m.weight, 1.0 - m.offset)
    elif isinstance(m, PatchEmbedding):
        _normal(m.weight, std, generator)
        nn.init.zeros_(m.bias)
        if m.cls_token:
            _normal(m.cls, std, generator)
    elif isinstance(m, Experts):
        _normal(m.up_weight, std, generator)
        _normal(m.down_weight, resid_std, generator)
        if m.bias:
            nn.init.zeros_(m.up_bias)
            nn.init.zeros_(m.down_bias)
    elif isinstance(m, RelativeAttention):  # its Linear children are initialised on their own
        for name in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"):
            if hasattr(m, name):
                _normal(getattr(m, name), std, generator)
    elif isinstance(m, LMHead) and m.bias is not None:
        nn.init.zeros_(m.bias)
