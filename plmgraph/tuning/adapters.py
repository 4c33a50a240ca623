"""Bottleneck adapters, the torch half (the kind is plmgraph/kinds/tuning/adapters.py).

Each adapted sublayer (``decoder.layers.3.attn``, ``... .mlp``) gets a child module ``adapter``
and a forward hook that passes the sublayer's output through it; the sublayer's own code and
weight names stay as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..compile.activations import activation


class Bottleneck(nn.Module):
    """``y + up(φ(down(y)))``: the adapter of Houlsby et al. (2019)."""

    def __init__(self, hidden: int, bottleneck: int, act: str, *, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, hidden, device=device, dtype=dtype)
        self.act_name = act
        self.act = activation(act)

    def forward(self, y: Tensor) -> Tensor:
        return y + self.up(self.act(self.down(y)))

    @torch.no_grad()
    def reset(self, std: float, generator: torch.Generator | None) -> None:
        """Near-identity start (Houlsby et al.): ``down`` ~ N(0, std), ``up`` and the biases zero."""
        self.down.weight.normal_(0.0, std, generator=generator)
        self.down.bias.zero_()
        self.up.weight.zero_()
        self.up.bias.zero_()

    def extra_repr(self) -> str:
        return self.act_name


def attach(model: nn.Module, plan: Any, generator: torch.Generator | None) -> None:
    """An adapter on every sublayer the plan names, hooked after its forward."""
    a, s = plan.attrs, plan.sites
    for host_name in s["hosts"]:
        host = model.get_submodule(host_name)
        ref = next(host.parameters())
        adapter = Bottleneck(s["hidden"], a["bottleneck"], a["activation"], device=ref.device, dtype=ref.dtype)
        if ref.device.type != "meta":
            adapter.reset(s["init_std"], generator)
        host.register_module("adapter", adapter)
        host.register_forward_hook(adapt)


def adapt(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
    """Forward hook: the host's output through its adapter. Attention returns ``(y, present)``, whose
    present (a key/value pair) passes unchanged; XLNet's two-stream attention returns both streams'
    outputs, and each goes through the adapter, as each goes through the MLP."""
    if isinstance(out, tuple):
        return tuple(module.adapter(t) if isinstance(t, Tensor) else t for t in out)
    return module.adapter(out)


__all__ = ["Bottleneck", "adapt", "attach"]
