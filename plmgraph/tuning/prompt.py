"""The torch half of prompt tuning: forward hooks that put n soft tokens in front of the first stack's input.

* model pre-hook (cached calls): the prompt is in the cache already, so a given attention mask gets
  n ones in front and given position ids move up by n;
* first-stack pre-hook (uncached calls): ``n`` placeholder ids in front of ``input_ids``, ones in front of
  the mask, ``0..n-1`` in front of given positions (which move up by n), zeros in front of segment ids;
* token-embedding hook: the placeholders' rows become ``prompt.weight``;
* first-stack hook: the n prompt positions are dropped from the output (encoder-decoders keep them:
  their decoder reads them, with ones in front of its memory mask).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError
from . import TuningPlan


class Prompt(nn.Module):
    def __init__(self, n: int, dim: int, like: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, dim, device=like.device, dtype=like.dtype))
        self.n = n
        self.active = False


def attach_prompt(model: nn.Module, plan: TuningPlan, generator: torch.Generator | None) -> None:
    n = plan.sites["length"]
    token = model.get_submodule(plan.sites["token"])
    prompt = Prompt(n, token.weight.shape[1], token.weight)
    if not prompt.weight.is_meta:
        with torch.no_grad():
            if plan.attrs["init"] == "vocab":
                rows = torch.randint(0, token.weight.shape[0], (n,), generator=generator, device=token.weight.device)
                prompt.weight.copy_(token.weight[rows])
            else:
                prompt.weight.normal_(generator=generator)
    model.register_module("prompt", prompt)
    stack = model.get_submodule(plan.sites["stack"])
    keep = model.family == "encoder-decoder"

    def model_pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        kw = _bind(module, args, kwargs)
        if kw.get("past_key_values") is not None and model.family != "encoder-decoder":
            mask, pos = kw.get("attention_mask"), kw.get("position_ids")
            if mask is not None:
                kw["attention_mask"] = torch.cat([mask.new_ones(mask.shape[0], n), mask], dim=1)
            if pos is not None:
                kw["position_ids"] = pos + n
        return (), kw

    def stack_pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        kw = _bind(module, args, kwargs)
        if kw.get("past_key_values") is not None:
            return (), kw
        ids = kw["input_ids"]
        B, T = ids.shape
        limit = module.embed.max_positions
        if limit is not None and n + T > limit:
            raise InputError(f"input_ids: {T} tokens and {n} soft prompt tokens exceed the model's {limit} positions")
        kw["input_ids"] = torch.cat([ids.new_zeros(B, n), ids], dim=1)
        mask = kw.get("attention_mask")
        if mask is not None:
            kw["attention_mask"] = torch.cat([mask.new_ones(B, n), mask], dim=1)
        pos = kw.get("position_ids")
        if pos is not None:
            head = torch.arange(n, device=pos.device, dtype=pos.dtype).expand(pos.shape[0], n)
            kw["position_ids"] = torch.cat([head, pos + n], dim=1)
        for name in ("token_type_ids", "task_type_ids"):
            t = kw.get(name)
            if t is not None:
                kw[name] = torch.cat([t.new_zeros(B, n), t], dim=1)
        prompt.active = True
        return (), kw

    def embed_hook(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        if not prompt.active:
            return out
        prompt.active = False
        p = prompt.weight.to(out.dtype).expand(out.shape[0], n, out.shape[2])
        return torch.cat([p, out[:, n:]], dim=1)

    def stack_post(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        prompt.active = False
        h, presents = out
        if keep or kwargs.get("past_key_values") is not None:
            return out
        return h[:, n:], presents

    model.register_forward_pre_hook(model_pre, with_kwargs=True)
    stack.register_forward_pre_hook(stack_pre, with_kwargs=True)
    stack.register_forward_hook(stack_post, with_kwargs=True)
    token.register_forward_hook(embed_hook)
    if keep:
        dec = model.get_submodule("decoder")

        def dec_pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            kw = _bind(module, args, kwargs)
            mem, mm = kw.get("memory"), kw.get("memory_mask")
            if mem is not None and mm is not None and mem.shape[1] == mm.shape[1] + n:
                kw["memory_mask"] = torch.cat([mm.new_ones(mm.shape[0], n), mm], dim=1)
            return (), kw

        dec.register_forward_pre_hook(dec_pre, with_kwargs=True)


def _bind(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Positional arguments of `module.forward` as keywords."""
    if not args:
        return dict(kwargs)
    import inspect

    names = list(inspect.signature(module.forward).parameters)
    return {**dict(zip(names, args, strict=False)), **kwargs}
