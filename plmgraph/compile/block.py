"""A transformer layer (`Block`) and a stack of them (`Stack`).

A `Block` wires its sublayers to the residual stream by the spec's placement:

    pre       x = x + f(norm(x))                     GPT-2, LLaMA, T5, ViT
    post      x = norm(x + f(x))                     BERT, BART, original Transformer
    sandwich  x = x + post_norm(f(norm(x)))
    output    x = x + post_norm(f(x))                OLMo 2 (no norm on the sublayer's input)
    parallel  x = x + attn(n1(x)) + mlp(n2(x))       GPT-J (n2 = n1), NeoX

A `Stack` embeds its input, builds the attention mask and position signal once (padding,
causal, sliding window, ALiBi / T5 bias, rotary cos/sin), runs its layers and the final
norm.  Shared layers (ALBERT) are one `Block` object visited several times:
``layers`` holds each distinct block once, under its owner's index, and ``schedule``
lists which block runs at each depth.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import KV
from .embedding import StackEmbeddings, positions_from_mask
from .glm import prefix_visible


class Residual(nn.Module):
    """A residual add node of the graph: ``scale * x + f(x) (+ g(x))``; scale is 1 except in
    DeepNorm (α). No weights: a module only so that the layer's wiring is the graph's."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor, *updates: Tensor) -> Tensor:
        out = x if self.scale == 1.0 else self.scale * x
        for y in updates:
            out = out + y
        return out

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}" if self.scale != 1.0 else ""


class Block(nn.Module):
    """One layer: self-attention, optional cross-attention, MLP, with norms and residual adds.

    Its submodules are the layer's graph nodes, named by their roles (``attn_norm``, ``attn``,
    ``attn_add``, ..., ``mlp_add``; a parallel layer has one ``add``).
    """

    def __init__(self, *, placement: str, dropout: float, attn: nn.Module, mlp: nn.Module,
                 cross: nn.Module | None = None, **wiring: nn.Module) -> None:
        super().__init__()
        self.placement = placement
        self.parallel = "add" in wiring
        self.attn, self.mlp = attn, mlp
        if cross is not None:
            self.cross = cross
        self.has_cross = cross is not None
        for name, module in wiring.items():  # attn_norm, attn_post_norm, attn_add, cross_norm, ..., mlp_add
            setattr(self, name, module)
        self.drop = nn.Dropout(dropout)

    def _sub(self, role: str, x: Tensor, f):  # noqa: ANN001, ANN202 - f: Tensor -> (Tensor, extra)
        add = getattr(self, f"{role}_add")
        if self.placement == "post":  # and DeepNorm, whose add scales x by alpha
            y, extra = f(x)
            return getattr(self, f"{role}_norm")(add(x, self.drop(y))), extra
        norm = None if self.placement == "output" else getattr(self, f"{role}_norm", None)  # ModernBERT's layer 0: none
        y, extra = f(norm(x) if norm is not None else x)
        if self.placement in ("sandwich", "output"):
            y = getattr(self, f"{role}_post_norm")(y)
        return add(x, self.drop(y)), extra

    def forward(self, x: Tensor, mask: Tensor | None, is_causal: bool, rotary: tuple[Tensor, Tensor] | None,
                past: KV | None, memory: Tensor | None, memory_mask: Tensor | None) -> tuple[Tensor, KV]:
        if self.parallel:
            n1 = self.attn_norm(x)
            n2 = self.mlp_norm(x) if hasattr(self, "mlp_norm") else n1
            a, present = self.attn(n1, mask, is_causal, rotary, past)
            return self.add(x, self.drop(a), self.drop(self.mlp(n2))), present
        x, present = self._sub("attn", x, lambda h: self.attn(h, mask, is_causal, rotary, past))
        if self.has_cross:
            x, _ = self._sub("cross", x, lambda h: (self.cross(h, memory, memory_mask), None))
        x, _ = self._sub("mlp", x, lambda h: (self.mlp(h), None))
        return x, present


class Stack(nn.Module):
    """Embeddings, layers and final norm of one stack (encoder or decoder)."""

    def __init__(self, *, embed: StackEmbeddings, layers: dict[str, Block], schedule: list[str],
                 position: nn.Module | None, final_norm: nn.Module | None, causal: bool,
                 window: int | None, prefix: bool = False, windows: list[int | None] | None = None,
                 positions: dict[str, nn.Module] | None = None, layer_positions: list[str] | None = None) -> None:
        super().__init__()
        self.embed = embed
        if position is not None:
            self.position = position
        # A per-layer pattern (Gemma 2/3, ModernBERT): each layer's window, and the rotary module of
        # each layer ("" = `position`; else a key of `positions`, the pattern's own rotary bases).
        self.windows = windows
        if positions:
            self.positions = nn.ModuleDict(positions)
        self.layer_positions = layer_positions
        self.layers = nn.ModuleDict(layers)
        self.schedule = schedule
        if final_norm is not None:
            self.final_norm = final_norm
        self.causal, self.window = causal, window
        self.prefix = prefix  # GLM's prefix-LM mask: see glm.prefix_visible
        self.rotary = position is not None and not getattr(position, "bias", False)
        self.score_bias = position is not None and getattr(position, "bias", False)
        self.checkpointing = False

    def forward(self, input_ids: Tensor | None, attention_mask: Tensor | None = None, *,
                token_type_ids: Tensor | None = None, task_type_ids: Tensor | None = None,
                pixel_values: Tensor | None = None, position_ids: Tensor | None = None,
                past_key_values: tuple[KV, ...] | None = None, use_cache: bool = False,
                memory: Tensor | None = None, memory_mask: Tensor | None = None,
                prefix_lengths: Tensor | None = None) -> tuple[Tensor, tuple[KV, ...] | None]:
        ref = input_ids if input_ids is not None else pixel_values
        device = ref.device
        T = input_ids.shape[1] if input_ids is not None else self.embed.patches_len
        past = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        if position_ids is None:
            if self.embed.padding_aware and attention_mask is not None:
                position_ids = positions_from_mask(attention_mask)[:, -T:]  # [B, T]
            else:
                position_ids = torch.arange(past, past + T, device=device)[None]  # [1, T]
        x = self.embed(input_ids, position_ids, token_type_ids, task_type_ids, pixel_values)  # [B, T, H]

        cached = past_key_values is not None
        mask, is_causal = self.self_mask(x, T, past, attention_mask, cached, prefix_lengths)
        rotary = self.position(position_ids) if self.rotary else None
        masks = {self.window: (mask, is_causal)}
        if self.windows is not None:  # one mask per distinct window of the pattern
            for w in dict.fromkeys(self.windows):
                if w not in masks:
                    masks[w] = self.self_mask(x, T, past, attention_mask, cached, prefix_lengths, window=w)
        rotaries = {"": rotary}
        if self.layer_positions is not None:
            rotaries.update({k: m(position_ids) for k, m in self.positions.items()})
        if memory_mask is not None:
            memory_mask = padding_bias(memory_mask)  # [B, 1, 1, S]

        presents = []
        for i, key in enumerate(self.schedule):
            layer = self.layers[key]
            layer_past = past_key_values[i] if past_key_values is not None else None
            if self.windows is not None:
                mask, is_causal = masks[self.windows[i]]
            if self.layer_positions is not None:
                rotary = rotaries[self.layer_positions[i]]
            args = (x, mask, is_causal, rotary, layer_past, memory, memory_mask)
            if self.checkpointing and self.training:
                x, present = checkpoint(layer, *args, use_reentrant=False)
            else:
                x, present = layer(*args)
            presents.append(present)
        if hasattr(self, "final_norm"):
            x = self.final_norm(x)
        return x, (tuple(presents) if use_cache else None)

    def self_mask(self, x: Tensor, T: int, past: int, attention_mask: Tensor | None,
                  cached: bool, prefix_lengths: Tensor | None = None, window: int | None | str = "stack",
                  ) -> tuple[Tensor | None, bool]:
        """The self-attention mask: ``(None, is_causal)`` when SDPA can mask by itself, else an
        additive fp32 mask [B|1, heads|1, T, S] (0 = visible, dtype-min = hidden) plus position bias.
        `window`: a pattern layer's window in place of the stack's."""
        window = self.window if window == "stack" else window
        if attention_mask is None and not self.score_bias and window is None and not cached and not self.prefix:
            return None, self.causal
        if attention_mask is not None and not (self.causal or self.prefix or self.score_bias
                                                or window is not None):
            # padding only (BERT): one [B, 1, 1, S] row, broadcast by SDPA over heads and queries
            # instead of a materialised [B, 1, T, S] mask
            return padding_bias(attention_mask), False
        S = past + T
        q = torch.arange(past, past + T, device=x.device)  # query positions [T]
        k = torch.arange(S, device=x.device)  # key positions [S]
        visible = torch.ones(T, S, dtype=torch.bool, device=x.device)
        if self.causal:
            visible = visible & (k[None, :] <= q[:, None])
        if window is not None:
            dist = q[:, None] - k[None, :]
            visible = visible & ((dist < window) if self.causal else (dist.abs() < window))
        visible = visible[None, None]  # [1, 1, T, S]
        if self.prefix:
            visible = visible & prefix_visible(q, k, prefix_lengths, cached)  # [B, 1, T, S]
        if attention_mask is not None:
            visible = visible & attention_mask[:, None, None, :].bool()  # [B, 1, T, S]
        bias = torch.zeros(visible.shape, dtype=torch.float32, device=x.device)
        bias = bias.masked_fill(~visible, torch.finfo(torch.bfloat16).min)
        if self.score_bias:
            bias = bias + self.position(q, k)[None]  # [B|1, h, T, S]
        return bias, False


def padding_bias(mask: Tensor) -> Tensor:
    """[B, S] keep-mask (1 = keep) -> additive [B, 1, 1, S] fp32 bias."""
    keep = mask[:, None, None, :].bool()
    return torch.zeros(keep.shape, dtype=torch.float32, device=mask.device).masked_fill(
        ~keep, torch.finfo(torch.bfloat16).min)
