"""The torch modules the tuning kinds attach: LoRA and IA³ on a linear's rows (forward hooks on the
base `nn.Linear`, so its parameter names and code stay as they are)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from . import TuningError, TuningPlan


def _host(model: nn.Module, path: str) -> nn.Linear:
    m = model.get_submodule(path)
    if not isinstance(m, nn.Linear):
        raise TuningError(f"{path} is a {type(m).__name__}, not a linear projection; it cannot take an adapter")
    return m


def _new(shape: tuple[int, ...], like: Tensor) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, device=like.device, dtype=like.dtype))


class LoRASlice(nn.Module):
    """``A`` [r, in], ``B`` [rows, r]: adds ``s · dropout(x) Aᵀ Bᵀ`` to rows ``start:stop`` of the host's output."""

    def __init__(self, rank: int, fan_in: int, start: int, stop: int, scaling: float, dropout: float,
                 like: Tensor) -> None:
        super().__init__()
        self.A = _new((rank, fan_in), like)
        self.B = _new((stop - start, rank), like)
        self.start, self.stop, self.scaling = start, stop, scaling
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def reset(self, generator: torch.Generator | None) -> None:
        if self.A.is_meta:
            return
        with torch.no_grad():  # PEFT's default: A ~ kaiming_uniform(a=sqrt(5)), B = 0
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5), generator=generator)
            self.B.zero_()

    def delta(self, x: Tensor) -> Tensor:
        return (self.drop(x) @ self.A.t() @ self.B.t()) * self.scaling

    def weight(self) -> Tensor:
        return (self.B @ self.A) * self.scaling


class LoRA(nn.Module):
    """The LoRA adapters of one linear (``<host>.lora.<slice>``), run by a forward hook on the host."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.slices = nn.ModuleDict()
        self.out_features = out_features
        self.merged = False

    def _load_from_state_dict(self, *args: Any, **kw: Any) -> None:  # noqa: ANN401
        super()._load_from_state_dict(*args, **kw)

    def hook(self, module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        if self.merged:
            return out
        x = inputs[0]
        for s in self.slices.values():
            d = s.delta(x)
            if s.start == 0 and s.stop == self.out_features:
                out = out + d
            else:
                out = torch.cat([out[..., :s.start], out[..., s.start:s.stop] + d, out[..., s.stop:]], dim=-1)
        return out


def attach_lora(model: nn.Module, plan: TuningPlan, generator: torch.Generator | None) -> None:
    a = plan.attrs
    for p in plan.sites["projections"]:
        host = _host(model, p["host"])
        lora = getattr(host, "lora", None)
        if lora is None:
            lora = LoRA(host.out_features)
            host.register_module("lora", lora)  # named <host>.lora.<key>.A / .B
            host.register_forward_hook(lora.hook)
        s = LoRASlice(a["rank"], p["fan_in"], p["start"], p["stop"], plan.sites["scaling"], a["dropout"],
                      host.weight)
        s.reset(generator)
        lora.slices[p["key"]] = s
    _flatten_names(model, "lora")


def _flatten_names(model: nn.Module, attr: str) -> None:
    """Keep each adapter's parameters at ``<host>.<attr>.<key>.A`` (not ``.slices.<key>``)."""
    for m in model.modules():
        ad = getattr(m, attr, None)
        if isinstance(ad, nn.Module) and "slices" in ad._modules:
            for k, v in ad.slices.items():
                ad._modules[k] = v
            del ad._modules["slices"]
            ad.__dict__["slices"] = _View(ad, [k for k in ad._modules])


class _View:
    """The slice modules of an adapter, by key (they are registered directly on the adapter)."""

    def __init__(self, owner: nn.Module, keys: list[str]) -> None:
        self.owner, self.keys = owner, keys

    def values(self) -> list[nn.Module]:
        return [self.owner._modules[k] for k in self.keys]

    def items(self) -> list[tuple[str, nn.Module]]:
        return [(k, self.owner._modules[k]) for k in self.keys]

    def __setitem__(self, k: str, v: nn.Module) -> None:
        self.owner._modules[k] = v
        if k not in self.keys:
            self.keys.append(k)

    def __getitem__(self, k: str) -> nn.Module:
        return self.owner._modules[k]


def merge_lora(model: nn.Module, plan: TuningPlan, sign: int) -> None:
    """Fold (sign +1) or unfold (-1) every LoRA update into its host's weight."""
    for host_path in {p["host"] for p in plan.sites["projections"]}:
        host = model.get_submodule(host_path)
        lora = host.lora
        if lora.merged == (sign > 0):
            continue
        for s in lora.slices.values():
            host.weight[s.start:s.stop] += sign * s.weight().to(host.weight.dtype)
        lora.merged = sign > 0


class IA3(nn.Module):
    """The IA³ vectors of one linear (``<host>.ia3.<slice>``): scale rows of its output, or its input."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.rows: dict[str, tuple[int, int]] = {}
        self.merged = False

    def vector(self) -> Tensor:
        """The output scale over all rows (1 where no slice is targeted)."""
        parts, at = [], 0
        for key, (s0, s1) in sorted(self.rows.items(), key=lambda kv: kv[1]):
            p = getattr(self, key)
            if s0 > at:
                parts.append(torch.ones(s0 - at, device=p.device, dtype=p.dtype))
            parts.append(p)
            at = s1
        if at < self.out_features:
            parts.append(torch.ones(self.out_features - at, device=parts[0].device, dtype=parts[0].dtype))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def out_hook(self, module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        return out if self.merged else out * self.vector().to(out.dtype)

    def in_hook(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return inputs if self.merged else (inputs[0] * self.all.to(inputs[0].dtype), *inputs[1:])


def attach_ia3(model: nn.Module, plan: TuningPlan) -> None:
    for p in plan.sites["projections"]:
        host = _host(model, p["host"])
        ia3 = getattr(host, "ia3", None)
        feedforward = p["target"] == "mlp.down"
        if ia3 is None:
            ia3 = IA3(host.out_features)
            host.register_module("ia3", ia3)
            if feedforward:
                host.register_forward_pre_hook(ia3.in_hook)
            else:
                host.register_forward_hook(ia3.out_hook)
        vec = _new((p["fan_in"] if feedforward else p["stop"] - p["start"],), host.weight)
        if not vec.is_meta:
            with torch.no_grad():
                vec.fill_(1.0)
        ia3.register_parameter(p["key"], vec)
        if not feedforward:
            ia3.rows[p["key"]] = (p["start"], p["stop"])


def merge_ia3(model: nn.Module, plan: TuningPlan, fold: bool) -> None:
    """Fold the vectors into the host weights (and biases), or divide them out again."""
    for host_path in {p["host"] for p in plan.sites["projections"]}:
        host = model.get_submodule(host_path)
        ia3 = host.ia3
        if ia3.merged == fold:
            continue
        if ia3.rows:  # output scaling: rows of W and b
            v = ia3.vector().to(host.weight.dtype)
            v = v if fold else 1.0 / v
            host.weight.mul_(v[:, None])
            if host.bias is not None:
                host.bias.mul_(v)
        else:  # input scaling (mlp.down): columns of W
            v = ia3.all.to(host.weight.dtype)
            host.weight.mul_((v if fold else 1.0 / v)[None, :])
        ia3.merged = fold
