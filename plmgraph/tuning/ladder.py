"""Ladder Side Tuning, the torch half (the kind and the equations: plmgraph/kinds/tuning/ladder.py).

`attach` builds the side network (`LadderSide`: downsamplers, gates, the side layers, a final
norm, the upsampler) as ``model.ladder`` and replaces the stack's ``forward`` on that one instance
with `ladder_forward`, which

1. runs the frozen backbone (the stack's own ``forward``) under ``torch.no_grad()``, recording the
   embedding output and every layer's output (forward hooks on the layers, ``.detach()``-ed),
   the layer inputs (mask, causal flag) and the positions (for the side's rotary embedding);
2. runs the side network with gradients on those states;
3. returns ``h_L + U·norm(s_L)`` and, with ``use_cache``, each layer's cache entry extended by the
   side layer's: ``(k, v, side_k, side_v)`` (the backbone's attention reads the first two).

The forward and the hooks are `functools.partial` objects over the modules they read, so a deep
copy of the model runs its own side network.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn


class LadderSide(nn.Module):
    """The side network: ``down`` (layers + 1 linear maps hidden -> hidden / r), ``gates`` (α, one per
    layer), ``layers`` (the side blocks, keyed and scheduled as the backbone's), ``position`` (the
    side's rotary embedding, when the model has one), ``final_norm``, ``up`` (hidden / r -> hidden)."""

    def __init__(self, *, hidden: int, side_hidden: int, layers: nn.ModuleDict, schedule: list[str],
                 position: nn.Module | None, final_norm: nn.Module | None, temperature: float,
                 device: Any = None, dtype: Any = None, positions: nn.ModuleDict | None = None,
                 layer_positions: list[str] | None = None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.down = nn.ModuleList(nn.Linear(hidden, side_hidden, **kw) for _ in range(len(schedule) + 1))
        self.gates = nn.Parameter(torch.zeros(len(schedule), **kw))
        self.layers = layers
        self.schedule = schedule
        if position is not None:
            self.position = position
        self.rotary = position is not None
        # a layer pattern's own rotary bases (Gemma 3): the side's, keyed as the side stack keys them
        if positions is not None:
            self.positions = positions
        self.layer_positions = layer_positions
        if final_norm is not None:
            self.final_norm = final_norm
        self.up = nn.Linear(side_hidden, hidden, **kw)
        self.temperature = temperature

    @torch.no_grad()
    def reset(self, std: float, generator: torch.Generator | None) -> None:
        """Downsamplers ~ N(0, std) (biases 0), gates α = 0 (μ = 0.5), the upsampler zero; the side
        layers keep the initialisation their kinds gave them."""
        for lin in self.down:
            lin.weight.normal_(0.0, std, generator=generator)
            lin.bias.zero_()
        self.gates.zero_()
        self.up.weight.zero_()
        self.up.bias.zero_()

    def forward(self, states: list[Tensor], mask: Tensor | None, is_causal: bool, positions: Tensor | None,
                past: tuple[Any, ...] | None, layer_masks: list[tuple[Tensor | None, bool]] | None = None,
                ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """`states`: the detached embedding output and each backbone layer's output; returns the
        upsampled side output (to add to the backbone's) and each side layer's (key, value).
        `layer_masks`: each backbone layer's (mask, is_causal), for a layer pattern's windows."""
        rotary = self.position(positions) if self.rotary else None
        rotaries = {"": rotary}
        if self.layer_positions is not None:
            rotaries.update({k: m(positions) for k, m in self.positions.items()})
        s = self.down[0](states[0])
        mu = torch.sigmoid(self.gates / self.temperature)
        presents = []
        for i, key in enumerate(self.schedule):
            z = mu[i] * self.down[i + 1](states[i + 1]) + (1 - mu[i]) * s
            layer_past = past[i][2:4] if past is not None and len(past[i]) == 4 else None
            if layer_masks is not None:
                mask, is_causal = layer_masks[i]
            if self.layer_positions is not None:
                rotary = rotaries[self.layer_positions[i]]
            s, present = self.layers[key](z, mask, is_causal, rotary, layer_past, None, None)
            presents.append(present)
        if hasattr(self, "final_norm"):
            s = self.final_norm(s)
        return self.up(s), presents


def attach(model: nn.Module, plan: Any, generator: torch.Generator | None) -> None:
    """Build the side network from ``plan.sites["side"]`` (the side spec), register it as
    ``model.<module>`` and route the stack's forward through `ladder_forward`."""
    from ..compile.build import build
    from ..spec import validate
    from ..spec.extends import Merged

    s, a = plan.sites, plan.attrs
    ref = next(model.parameters())
    meta = ref.device.type == "meta"
    seed = None
    if generator is not None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    side_model = build(validate(Merged(s["side"], file="ladder side")), device=ref.device, dtype=ref.dtype,
                       seed=seed)
    side_stack = getattr(side_model, s["stack"])
    stack = getattr(model, s["stack"])
    ladder = LadderSide(hidden=s["hidden"], side_hidden=s["side_hidden"], layers=side_stack.layers,
                        schedule=list(stack.schedule), position=side_stack.position if side_stack.rotary else None,
                        final_norm=getattr(side_stack, "final_norm", None), temperature=a["gate_temperature"],
                        device=ref.device, dtype=ref.dtype, positions=getattr(side_stack, "positions", None),
                        layer_positions=getattr(side_stack, "layer_positions", None))
    if not meta:
        ladder.reset(s["init_std"], generator)
    model.add_module(s["module"], ladder)
    for key in dict.fromkeys(stack.schedule):
        stack.layers[key].register_forward_hook(partial(_record_layer, stack))
    if stack.rotary:
        stack.position.register_forward_pre_hook(partial(_record_positions, stack))
    stack.forward = partial(ladder_forward, ladder, stack)


def ladder_forward(ladder: LadderSide, stack: nn.Module, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
    """The stack's forward with the side network: see the module docstring."""
    trace: dict[str, Any] = {"states": [], "mask": None, "is_causal": False, "positions": None, "masks": []}
    stack.__dict__["_ladder_trace"] = trace
    try:
        with torch.no_grad():  # the backbone: no graph, no activations kept for backward
            h, presents = type(stack).forward(stack, *args, **kwargs)
    finally:
        stack.__dict__["_ladder_trace"] = None
    past = kwargs.get("past_key_values")
    side, side_presents = ladder(trace["states"], trace["mask"], trace["is_causal"], trace["positions"], past,
                                 trace["masks"] if getattr(stack, "windows", None) is not None else None)
    h = h + side
    if presents is not None:
        presents = tuple((p[0], p[1], *sp) for p, sp in zip(presents, side_presents, strict=True))
    return h, presents


def _record_layer(stack: nn.Module, module: nn.Module, args: tuple[Any, ...], out: tuple[Tensor, Any]) -> None:
    trace = stack.__dict__.get("_ladder_trace")
    if trace is None:
        return
    if not trace["states"]:
        trace["states"].append(args[0].detach())  # the embedding output
        trace["mask"], trace["is_causal"] = args[1], args[2]
    trace["masks"].append((args[1], args[2]))  # each layer's own (a layer pattern's windows differ)
    trace["states"].append(out[0].detach())


def _record_positions(stack: nn.Module, module: nn.Module, args: tuple[Any, ...]) -> None:
    trace = stack.__dict__.get("_ladder_trace")
    if trace is not None:
        trace["positions"] = args[0]


__all__ = ["LadderSide", "attach", "ladder_forward"]
