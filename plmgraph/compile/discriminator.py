"""The torch half of ``head/replaced_token_detection`` (plmgraph/kinds/head/discriminator.py): ELECTRA's
discriminator head, HF ``ElectraDiscriminatorPredictions``."""

from __future__ import annotations

from torch import Tensor, nn

from .activations import activation


class DiscriminatorHead(nn.Module):
    """[B, T, H] -> [B, T]: ``proj(act(dense(h)))`` with the last axis (size 1) squeezed."""

    def __init__(self, hidden: int, act: str, bias: bool = True) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden, bias=bias)
        self.act = activation(act)
        self.proj = nn.Linear(hidden, 1, bias=bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(self.act(self.dense(h))).squeeze(-1)
