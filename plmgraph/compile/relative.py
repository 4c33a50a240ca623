"""Relative attention with a segment memory: Transformer-XL (Dai et al. 2019) and XLNet's
two-stream attention (Yang et al. 2019), following Hugging Face ``modeling_xlnet``.

One layer scores query ``i`` (absolute position ``M + i`` behind ``M`` memory states) against
key ``j`` of ``[memory; current]`` as

    (q_i + u) . k_j                     content        u = r_w_bias
  + (q_i + v) . W_r R(M + i - j)        position       v = r_r_bias, R sinusoidal (`XLRelative`)
  + (q_i + s) . seg_embed[i, j differ]  segment        XLNet only, with token_type_ids

all times ``head_dim ** -0.5``.  The position term is computed for every distance once per
row and aligned with `rel_shift` (HF ``rel_shift_bnij``); it and the segment term go into
``F.scaled_dot_product_attention`` as its additive mask, with the content term as the
ordinary ``q . k`` (queries shifted by ``u``).

XLNet's query stream (``g``, started from the learned mask token) runs only with a
``target_mapping`` [B, M, T]: its queries attend to the content stream's keys and values
under ``perm_mask`` (the diagonal too), while the content stream always sees itself.
The memory is each layer's *input* over the previous segments, detached (no gradient flows
back into an earlier segment); `RelativeStack` returns the updated one with ``use_cache``,
keeping the last ``memory`` states (``0``: all of them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from .block import Block
from .embedding import StackEmbeddings
from .registry import NotSupportedError

#: Attention kinds compiled here; `build` gives their stacks a `RelativeStack`.
RELATIVE_KINDS = ("two_stream", "segment_memory")
#: HF adds -1e30 to hidden scores: a fully hidden row then softmaxes to uniform, as in HF.
HIDDEN = -1e30


def rel_shift(x: Tensor, klen: int) -> Tensor:
    """[B, n, T, T + S] scores over distances (S, S-1, ..., 1-T) -> [B, n, T, S] over keys:
    row i moves left by T - i, so column j holds distance (S - T) + i - j (HF ``rel_shift_bnij``).

    Output ``[i, j]`` is input ``[i, T - i + j]``, i.e. flat element ``T + i (P - 1) + j`` of
    each [T, P] matrix: drop the first T elements and read the rest as rows of P - 1.  HF's
    form views [T, P] as [P, T], which makes ``torch.export`` require P % T == 0 for a
    dynamic T (it is not: P = 2T + M); here every size is T * P - T = T * (P - 1), which it
    proves, so the sequence and memory lengths stay dynamic.  Same copy count, no gather.
    """
    B, n, T, P = x.shape
    return x.reshape(B, n, T * P)[..., T:].reshape(B, n, T, P - 1)[..., :klen]


class XLRelative(nn.Module):
    """Sinusoidal encodings of the distances S, S-1, ..., 1-T (HF ``relative_positional_encoding``,
    ``attn_type="bi"``, ``bi_data=False``): ``[sin(p f); cos(p f)]``, f = 10000^(-2k/dim)."""

    def __init__(self, dim: int, clamp: int | None = None) -> None:
        super().__init__()
        self.dim, self.clamp = dim, clamp

    def forward(self, q_len: int, k_len: int, device: torch.device) -> Tensor:
        pos = torch.arange(k_len, -q_len, -1, device=device, dtype=torch.float32)  # [S + T]
        if self.clamp:
            pos = pos.clamp(-self.clamp, self.clamp)
        inv = 1.0 / 10000 ** (torch.arange(0, self.dim, 2, device=device, dtype=torch.float32) / self.dim)
        angle = pos[:, None] * inv  # [S + T, dim/2]
        return torch.cat((angle.sin(), angle.cos()), dim=-1)  # [S + T, dim]


class RelativeAttention(nn.Module):
    """Transformer-XL relative attention; with ``segments`` XLNet's segment term and query stream.

    Parameters follow the graph: ``qkv`` [3 n d, H] = [q; k; v], ``r`` [n d, H] (projects the
    position encodings), ``r_w_bias``/``r_r_bias`` [n, d], XLNet's ``r_s_bias`` [n, d] and
    ``seg_embed`` [2, n, d] (same / different segment), ``out`` [H, n d]; no biases.
    """

    def __init__(self, hidden: int, heads: int, head_dim: int, *, segments: bool, scale: float | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n, d = heads, head_dim
        self.heads, self.head_dim, self.segments = n, d, segments
        self.scale = scale if scale is not None else d**-0.5
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * n * d, bias=False)
        self.r = nn.Linear(hidden, n * d, bias=False)
        self.r_w_bias = nn.Parameter(torch.empty(n, d))
        self.r_r_bias = nn.Parameter(torch.empty(n, d))
        if segments:
            self.r_s_bias = nn.Parameter(torch.empty(n, d))
            self.seg_embed = nn.Parameter(torch.empty(2, n, d))
        self.out = nn.Linear(n * d, hidden, bias=False)

    def split_heads(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)  # [B, L, n d] -> [B, n, L, d]

    def core(self, q: Tensor, k: Tensor, v: Tensor, kr: Tensor, mask: Tensor, seg: Tensor | None) -> Tensor:
        """q [B, n, T, d], k/v [B, n, S, d], kr [n, T + S, d], mask [B|1, 1, T, S] -> [B, n, T, d]."""
        bd = rel_shift(torch.matmul(q + self.r_r_bias[:, None], kr.transpose(-1, -2)), k.shape[2])  # [B, n, T, S]
        if seg is not None:
            ef = torch.einsum("bntd,snd->bnts", q + self.r_s_bias[:, None], self.seg_embed)  # [B, n, T, 2]
            bd = bd + torch.where(seg, ef[..., 1:], ef[..., :1])  # seg [B, 1, T, S]: segments differ
        bias = bd * self.scale + mask.to(bd.dtype)
        if bias.dtype == torch.float16:
            bias = bias.clamp(min=torch.finfo(torch.float16).min)
        return F.scaled_dot_product_attention(q + self.r_w_bias[:, None], k, v, attn_mask=bias, scale=self.scale,
                                              dropout_p=self.dropout if self.training else 0.0)

    def forward(self, h: Tensor, mem: Tensor | None, pos: Tensor, mask_h: Tensor, seg: Tensor | None,
                g: Tensor | None = None, mask_g: Tensor | None = None,
                target_mapping: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """h [B, T, H] content stream, mem [B, M, H] (detached), pos [T + M + T, H] encodings;
        g [B, P, H] query stream with target_mapping [B, P, T].  Returns both streams' outputs."""
        B, T, _ = h.shape
        nd = self.heads * self.head_dim
        cat = h if mem is None else torch.cat((mem.to(h.dtype), h), dim=1)  # [B, S, H]
        # through the qkv module, not its weight: a tuning wrapper on attn.qkv (LoRA, IA3) must take part
        q, k, v = self.qkv(cat).split(nd, dim=-1)  # [B, S, nd] each; the queries are the last T rows
        k, v = self.split_heads(k), self.split_heads(v)  # [B, n, S, d]
        kr = self.r(pos.to(h.dtype)).view(-1, self.heads, self.head_dim).transpose(0, 1)  # [n, T + S, d]
        y = self.core(self.split_heads(q[:, q.shape[1] - T:]), k, v, kr, mask_h, seg)
        out_h = self.out(y.transpose(1, 2).reshape(B, T, nd))
        if g is None:
            return out_h, None
        qg = self.split_heads(self.qkv(g)[..., :nd])  # [B, n, P, d]
        qg = torch.einsum("bnpd,bpt->bntd", qg, target_mapping.to(g.dtype))  # [B, n, T, d]
        yg = torch.einsum("bntd,bpt->bnpd", self.core(qg, k, v, kr, mask_g, seg), target_mapping.to(g.dtype))
        return out_h, self.out(yg.transpose(1, 2).reshape(B, g.shape[1], nd))

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init): the
        value rows of `qkv` and `out`."""
        return [self.qkv.weight[2 * self.heads * self.head_dim:], self.out.weight]


class RelativeBlock(Block):
    """A `Block` whose attention is `RelativeAttention`: content stream and, for XLNet, the query
    stream through the same sublayers (HF ``XLNetLayer``: both go through ``rel_attn``'s
    norm and the feed-forward)."""

    def __init__(self, **kw: nn.Module) -> None:
        if "add" in kw:  # the parallel wiring's one add
            raise NotSupportedError("relative attention (two_stream / segment_memory) needs a sequential residual")
        super().__init__(**kw)

    def forward(self, h: Tensor, g: Tensor | None, mem: Tensor | None, pos: Tensor, mask_h: Tensor,
                mask_g: Tensor | None, seg: Tensor | None, target_mapping: Tensor | None,
                ) -> tuple[Tensor, Tensor | None]:
        pre = self.placement != "post"
        if pre and mem is not None:
            mem = self.attn_norm(mem)  # pre-norm: keys and values come from the normalised [mem; h]
        out: dict[str, Tensor | None] = {}

        def attn(x: Tensor) -> tuple[Tensor, None]:
            gx = (self.attn_norm(g) if pre else g) if g is not None else None
            out["h"], out["g"] = self.attn(x, mem, pos, mask_h, seg, gx, mask_g, target_mapping)
            return out["h"], None

        h_in = h
        h, _ = self._sub("attn", h_in, attn)
        if g is not None:
            g, _ = self._sub("attn", g, lambda _x: (out["g"], None))
            g, _ = self._sub("mlp", g, lambda x: (self.mlp(x), None))
        h, _ = self._sub("mlp", h, lambda x: (self.mlp(x), None))
        return h, g


class RelativeStack(nn.Module):
    """Embeddings, relative-attention layers with a segment memory, and the final norm.

    ``forward`` takes ``past_key_values`` as the memory: one [B, M, H] tensor per layer (the
    layer's input over earlier segments, as returned with ``use_cache``), and, for XLNet,
    ``perm_mask`` [B, T, T] (1: query i may not see token j) and ``target_mapping`` [B, P, T]
    (row p one-hot on the position the p-th query-stream output predicts).
    """

    memory_cache = True  # past_key_values holds hidden-state memories, not (key, value) pairs
    reads_token_types = True  # token_type_ids feed the segment term, not an embedding table

    def __init__(self, *, embed: StackEmbeddings, layers: dict[str, RelativeBlock], schedule: list[str],
                 position: XLRelative, final_norm: nn.Module | None, causal: bool, memory: int,
                 two_stream: bool) -> None:
        super().__init__()
        self.embed = embed
        self.position = position
        self.layers = nn.ModuleDict(layers)
        self.schedule = schedule
        if final_norm is not None:
            self.final_norm = final_norm
        self.causal, self.memory, self.two_stream = causal, memory, two_stream
        self.window = None
        self.checkpointing = False

    # ------------------------------------------------------------------ checks

    def check(self, input_ids: Tensor, past: object, token_type_ids: Tensor | None, perm_mask: Tensor | None,
              target_mapping: Tensor | None) -> int:
        """Input checks (`PLMModel._check`); returns the memory length."""
        B, T = input_ids.shape
        past_len = 0
        if past is not None:
            layers, H = len(self.schedule), self.position.dim
            if not isinstance(past, (tuple, list)) or len(past) != layers or not all(
                    isinstance(m, Tensor) and m.dim() == 3 and m.shape[0] == B and m.shape[2] == H for m in past):
                raise InputError(f"past_key_values of a segment-memory model must be {layers} tensors "
                                 f"[batch={B}, memory, hidden={H}], one per layer (a previous call's, use_cache=True)")
            past_len = int(past[0].shape[1])
        if token_type_ids is not None and tuple(token_type_ids.shape) != (B, T):
            raise InputError(f"token_type_ids must have the shape of input_ids {(B, T)}, "
                             f"got {tuple(token_type_ids.shape)}")
        if (perm_mask is not None or target_mapping is not None) and not self.two_stream:
            raise InputError("perm_mask and target_mapping are for two-stream attention (XLNet); "
                             "this model's attention is not two_stream")
        if perm_mask is not None and tuple(perm_mask.shape) != (B, T, T):
            raise InputError(f"perm_mask must have shape [batch, seq, seq] = {(B, T, T)}, got {tuple(perm_mask.shape)}")
        if target_mapping is not None and (target_mapping.dim() != 3 or tuple(target_mapping.shape[::2]) != (B, T)):
            raise InputError(f"target_mapping must have shape [batch, predictions, seq] = ({B}, P, {T}), "
                             f"got {tuple(target_mapping.shape)}")
        return past_len

    # ----------------------------------------------------------------- forward

    def masks(self, B: int, T: int, M: int, device: torch.device, attention_mask: Tensor | None,
              perm_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Additive fp32 masks [B|1, 1, T, M + T] of the content stream and of the query stream.

        A key is hidden from query i when it is padding, in the future (causal), or
        ``perm_mask`` hides it; memory is always visible (HF); the content stream always
        sees its own token, the query stream only if ``perm_mask`` allows it (HF ``non_tgt_mask``).
        """
        S = M + T
        k = torch.arange(S, device=device)
        q = torch.arange(M, S, device=device)
        hidden = torch.zeros(1, T, S, dtype=torch.bool, device=device)
        if self.causal:
            hidden = hidden | (k[None, :] > q[:, None])[None]
        if attention_mask is not None:
            pad = attention_mask == 0  # [B, T] or [B, M + T]
            # left-pad a [B, T] mask with M visible memory slots; no branch on M, so torch.export keeps it symbolic
            hidden = hidden | F.pad(pad, (S - pad.shape[1], 0))[:, None, :]
        if perm_mask is not None:
            hidden = hidden | F.pad(perm_mask.bool(), (M, 0))  # [B, T, S]
        mask_g = torch.zeros(hidden.shape, dtype=torch.float32, device=device).masked_fill(hidden, HIDDEN)
        own = k[None, :] == q[:, None]  # [T, S]: query i's own token
        mask_h = mask_g.masked_fill(own[None], 0.0)
        return mask_h[:, None], mask_g[:, None]

    def cache(self, x: Tensor, mem: Tensor | None) -> Tensor:
        """HF ``cache_mem``: the layer's input appended to its memory, last ``memory`` states, detached."""
        new = x if mem is None else torch.cat((mem.to(x.dtype), x), dim=1)
        if not self.memory:
            return new.detach()
        if torch.compiler.is_exporting():
            # The length min(M + T, memory) is piecewise: torch.export would keep one branch for good
            # (seq + past below or above memory).  A data-dependent start keeps both; same values as below.
            L = new.shape[1]
            start = (torch.ones((), dtype=torch.long) * L - self.memory).clamp(min=0).item()
            torch._check(start >= 0)
            torch._check(start <= L)
            return new.narrow(1, start, L - start).detach()
        return new[:, -self.memory:].detach()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, *,
                token_type_ids: Tensor | None = None, task_type_ids: Tensor | None = None,
                pixel_values: Tensor | None = None, position_ids: Tensor | None = None,
                past_key_values: tuple[Tensor, ...] | None = None, use_cache: bool = False,
                perm_mask: Tensor | None = None, target_mapping: Tensor | None = None,
                prefix_lengths: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...] | None]:
        B, T = input_ids.shape
        device = input_ids.device
        mems = past_key_values
        M = mems[0].shape[1] if mems is not None else 0  # no int(): a symbolic size under torch.export
        # a segment table (a spec's embeddings.segments) reads token_type_ids too; XLNet has none
        table_ids = token_type_ids if "segment" in self.embed.has else None
        x = self.embed(input_ids, None, table_ids, task_type_ids)  # [B, T, H]
        pos = self.embed.drop(self.position(T, M + T, device))  # [2T + M, H]
        mask_h, mask_g = self.masks(B, T, M, device, attention_mask, perm_mask)
        seg = None
        if token_type_ids is not None and self.two_stream:
            keys = F.pad(token_type_ids, (M, 0))  # memory counts as segment 0 (HF)
            seg = (token_type_ids[:, :, None] != keys[:, None, :])[:, None]  # [B, 1, T, S]
        g = None
        if target_mapping is not None:
            g = self.embed.drop(self.embed.mask_token.weight.expand(B, target_mapping.shape[1], -1))  # [B, P, H]
        elif self.two_stream and torch.is_grad_enabled():
            # The query stream's inputs (mask token, segment biases) stay in the autograd graph with a zero
            # gradient when that stream does not run, so DDP/FSDP never see a parameter without a gradient.
            x = x + 0.0 * self.embed.mask_token.weight
        presents = []
        for i, key in enumerate(self.schedule):
            layer = self.layers[key]
            mem = mems[i] if mems is not None else None
            if use_cache:
                presents.append(self.cache(x, mem))
            args = (x, g, mem, pos, mask_h, mask_g, seg, target_mapping)
            if self.checkpointing and self.training:
                x, g = checkpoint(layer, *args, use_reentrant=False)
            else:
                x, g = layer(*args)
            if seg is None and self.two_stream and torch.is_grad_enabled():
                x = x + 0.0 * (layer.attn.r_s_bias.sum() + layer.attn.seg_embed.sum())
        out = g if g is not None else x  # HF: the query stream's output when it runs
        if hasattr(self, "final_norm"):
            out = self.final_norm(out)
        return out, (tuple(presents) if use_cache else None)


__all__ = ["RELATIVE_KINDS", "RelativeAttention", "RelativeBlock", "RelativeStack", "XLRelative", "rel_shift"]
