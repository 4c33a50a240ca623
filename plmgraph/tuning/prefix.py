"""Prefix tuning (Li & Liang 2021), the torch half: learned key/value prefixes in every self-attention.

`PrefixEncoder` makes every layer's prefix from ``length`` virtual tokens: with the
reparameterisation MLP (Li & Liang's, PEFT's ``prefix_projection``) an embedding [P, H] goes
through ``Linear(H, m) -> tanh -> Linear(m, layers * 2 * kv_heads * head_dim)``; without it the
embedding holds the prefixes themselves, [P, layers * 2 * kv_heads * head_dim].  The last
dimension is laid out as PEFT lays it out (layer, key|value, head, head_dim), so a PEFT
``prompt_embeddings`` tensor is exactly `PrefixEncoder.table` (`plmgraph.tuning.peft_prefix`).

`attach` wires it into a built model with PyTorch hooks, so no module path changes (the base's
weights keep their names) and the compiled attention stays untouched:

* each self-attention's forward pre-hook hands its layer's prefix to the attention as the first
  ``P`` entries of its past keys/values, and widens the mask with ``P`` always-visible columns
  (a causal mask with no tensor becomes an explicit bottom-right causal one);
* its forward hook takes the prefix back out of the returned ``present``: the KV cache holds the
  real tokens only, and each cached step gets the prefix again, so cached generation equals the
  full forward;
* the stack's forward pre-hook shifts the positions by ``P``: the prefix occupies positions
  ``0 .. P-1`` and the text starts at ``P``, as in PEFT (where the prefix is the first ``P``
  entries of Hugging Face's cache) and Li & Liang's GPT-2 code; ``P + past + new`` must fit in
  ``max_positions``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..compile.embedding import Embedding, positions_from_mask
from ..errors import InputError


class PrefixEncoder(nn.Module):
    """``length`` virtual tokens -> every layer's key and value prefix (see the module docstring)."""

    def __init__(self, *, length: int, layers: int, kv_heads: int, head_dim: int, hidden: int,
                 projection: int | None, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.length, self.layers, self.kv_heads, self.head_dim = length, layers, kv_heads, head_dim
        self.width = layers * 2 * kv_heads * head_dim  # one virtual token's keys and values, all layers
        self.projection = projection
        kw = {"device": device, "dtype": dtype}
        self.embedding = Embedding(length, hidden if projection else self.width, **kw)
        if projection:
            self.transform = nn.Sequential(nn.Linear(hidden, projection, **kw), nn.Tanh(),
                                           nn.Linear(projection, self.width, **kw))

    def table(self) -> Tensor:
        """[P, layers * 2 * kv_heads * head_dim]: every prefix (PEFT's ``prompt_embeddings``)."""
        if self.projection:
            return self.transform(self.embedding.weight)
        return self.embedding.weight

    def layer(self, i: int) -> tuple[Tensor, Tensor]:
        """Layer `i`'s prefix keys and values, [1, kv_heads, P, head_dim] each; only that layer's
        rows of the last projection are computed."""
        n = 2 * self.kv_heads * self.head_dim
        rows = slice(i * n, (i + 1) * n)
        if self.projection:
            h = self.transform[1](self.transform[0](self.embedding.weight))  # [P, m]
            out = nn.functional.linear(h, self.transform[2].weight[rows], self.transform[2].bias[rows])
        else:
            out = self.embedding.weight[:, rows]
        kv = out.view(self.length, 2, self.kv_heads, self.head_dim).permute(1, 2, 0, 3)  # [2, kv, P, d]
        return kv[0][None], kv[1][None]

    @torch.no_grad()
    def reset(self, std: float, generator: torch.Generator | None = None) -> None:
        """Virtual-token embeddings ~ N(0, std); the MLP as `nn.Linear` initialises it (PEFT's default)."""
        self.embedding.weight.normal_(0.0, std, generator=generator)
        if self.projection:
            for lin in (self.transform[0], self.transform[2]):
                bound = lin.in_features ** -0.5
                lin.weight.uniform_(-bound, bound, generator=generator)
                lin.bias.uniform_(-bound, bound, generator=generator)


def with_prefix(pk: Tensor, pv: Tensor, x: Tensor, mask: Tensor | None, is_causal: bool,
                past: tuple[Tensor, Tensor] | None) -> tuple[Tensor | None, bool, tuple[Tensor, Tensor]]:
    """The attention's (mask, is_causal, past) with the prefix in front of the past keys/values and
    ``P`` visible columns in front of the mask."""
    B, T = x.shape[0], x.shape[1]
    P = pk.shape[2]
    dtype = x.dtype  # the keys' dtype: the input's, or autocast's (bf16 training), which the projections give
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    pk, pv = pk.to(dtype).expand(B, -1, -1, -1), pv.to(dtype).expand(B, -1, -1, -1)
    S = T + (past[0].shape[2] if past is not None else 0)  # real keys: past + new
    if past is not None:
        pk, pv = torch.cat((pk, past[0]), dim=2), torch.cat((pv, past[1]), dim=2)
    if mask is not None:
        mask = nn.functional.pad(mask, (P, 0))  # additive: 0 = visible
    elif is_causal:  # SDPA's is_causal aligns top-left; the prefix needs an explicit bottom-right mask
        q = torch.arange(S - T, S, device=x.device)
        hidden = torch.arange(S, device=x.device)[None, :] > q[:, None]  # [T, S]
        hidden = nn.functional.pad(hidden, (P, 0), value=False)
        mask = torch.zeros(hidden.shape, dtype=torch.float32, device=x.device)
        mask = mask.masked_fill(hidden, torch.finfo(torch.bfloat16).min)[None, None]
        is_causal = False
    return mask, is_causal, (pk, pv)


def attach(model: nn.Module, encoder: PrefixEncoder) -> None:
    """Hook `encoder` (already a submodule of `model`) into every self-attention and the stack.

    The hooks are `functools.partial` objects over the modules they read, so a deep copy of the
    model (``copy.deepcopy``) hooks the copy's own encoder."""
    depth = 0
    for stack in model.stacks():
        for key in stack.schedule:
            attn = stack.layers[key].attn
            attn.register_forward_pre_hook(partial(_give_prefix, encoder, depth))
            attn.register_forward_hook(partial(_take_prefix, encoder.length))
            depth += 1
        stack.register_forward_pre_hook(partial(_shift_positions, encoder.length), with_kwargs=True)


def _give_prefix(encoder: PrefixEncoder, i: int, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    x, mask, is_causal, rotary, past = args
    pk, pv = encoder.layer(i)
    mask, is_causal, past = with_prefix(pk, pv, x, mask, is_causal, past)
    return x, mask, is_causal, rotary, past


def _take_prefix(P: int, module: nn.Module, args: tuple[Any, ...], out: tuple[Tensor, Any]) -> tuple[Tensor, Any]:
    y, (k, v) = out
    return y, (k[:, :, P:], v[:, :, P:])  # the cache keeps the real tokens only


def _shift_positions(P: int, stack: nn.Module, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The stack's positions + P (the default ones computed as `Stack.forward` would), after checking
    that the prefix, the past and the new tokens fit in the position table."""
    input_ids = args[0] if args else kwargs.get("input_ids")
    mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
    past_kv = kwargs.get("past_key_values")
    T = input_ids.shape[1]
    past = past_kv[0][0].shape[2] if past_kv is not None else 0
    limit = stack.embed.max_positions
    if not torch.compiler.is_compiling() and limit is not None and P + past + T > limit:  # no guard in export
        raise InputError(f"prefix tuning: the {P} prefix positions + {past + T} tokens (past + new) exceed "
                         f"max_positions ({limit}); at most {limit - P} tokens fit")
    pos = kwargs.get("position_ids")
    if pos is None:
        if stack.embed.padding_aware and mask is not None:
            pos = positions_from_mask(mask)[:, -T:]
        else:
            pos = torch.arange(past, past + T, device=input_ids.device)[None]
    return args, {**kwargs, "position_ids": pos + P}


# ------------------------------------------------------------------------------------------ PEFT


def peft_adapter(model: nn.Module, plan: Any) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The tuned model's prefix as a PEFT PREFIX_TUNING adapter: ``adapter_config.json`` (a dict) and
    the ``adapter_model.safetensors`` tensors, ``{"prompt_embeddings": [P, layers * 2 * kv * d]}``.

    PEFT saves a prefix in its inference form: the reparameterisation MLP's output, not the MLP (its
    `get_prompt_embedding_to_save`), so the config says ``prefix_projection: false`` and
    ``PeftModel.from_pretrained`` reads the prefixes as they are."""
    from . import TuningError

    spec = model.spec
    if spec.family != "decoder" or not spec.heads or spec.heads[0].kind != "lm":
        raise TuningError(f"{spec.name}: PEFT's prefix-tuning layout is written for decoder language models "
                          f"(task CAUSAL_LM); this model is a {spec.family} with heads "
                          f"{[h.kind for h in spec.heads] or 'none'}")
    s, a = plan.sites, plan.attrs
    enc: PrefixEncoder = model.get_submodule(s["module"])
    token_dim = s["kv_heads"] * s["head_dim"]
    config = {
        "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "auto_mapping": None,
        "base_model_name_or_path": None, "revision": None, "inference_mode": True,
        "num_virtual_tokens": a["length"], "token_dim": token_dim, "num_transformer_submodules": 1,
        "num_attention_heads": s["kv_heads"], "num_layers": s["layers"], "encoder_hidden_size": token_dim,
        "prefix_projection": False, "modules_to_save": None,
    }
    with torch.no_grad():
        table = enc.table().detach().to("cpu", copy=True).contiguous()
    return config, {"prompt_embeddings": table}


def peft_tuning(config: dict[str, Any], tensors: dict[str, Tensor], graph: Any) -> tuple[dict[str, Any], dict]:
    """A PEFT PREFIX_TUNING adapter -> (the spec's ``tuning`` value, the encoder's state by parameter
    name in the model), checked against `graph` (the base model's).

    Raises:
        TuningError: the adapter is not prefix tuning, or was made for another model (layers, kv width).
    """
    from . import TuningError

    if config.get("peft_type") != "PREFIX_TUNING":
        raise TuningError(f"not a prefix-tuning adapter: peft_type {config.get('peft_type')!r}")
    if set(tensors) != {"prompt_embeddings"}:
        raise TuningError(f"a prefix-tuning adapter holds one prompt_embeddings tensor; this one has "
                          f"{sorted(tensors)[:4]}")
    stack = next(iter(graph.stacks()))
    at = graph.node(f"{stack}.layers.0.attn")["attrs"]
    layers, token_dim = graph.stacks()[stack]["layers"], at["kv_heads"] * at["head_dim"]
    P = config.get("num_virtual_tokens")
    table = tensors["prompt_embeddings"]
    want = (P, layers * 2 * token_dim)
    if (config.get("num_layers"), config.get("token_dim")) != (layers, token_dim) or tuple(table.shape) != want:
        raise TuningError(f"the prefix-tuning adapter was made for another model: it has {config.get('num_layers')} "
                          f"layers of {config.get('token_dim')} key/value features and prompt_embeddings "
                          f"{tuple(table.shape)}; {graph.name} has {layers} layers of {token_dim} "
                          f"(kv_heads x head_dim), so {want}")
    if config.get("num_transformer_submodules", 1) != 1:
        raise TuningError("the prefix-tuning adapter has prefixes for 2 transformer submodules (encoder-decoder); "
                          "prefix tuning is compiled for one-stack models")
    from ..kinds.tuning.prefix import MODULE

    return {"kind": "prefix", "length": int(P), "projection": None}, {f"{MODULE}.embedding.weight": table}


__all__ = ["PrefixEncoder", "attach", "peft_adapter", "peft_tuning", "with_prefix"]
