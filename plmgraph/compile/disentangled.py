"""DeBERTa's disentangled attention and its shared relative table (He et al. 2021), following
Hugging Face ``modeling_deberta_v2`` (see plmgraph/kinds/attention/disentangled.py for the formula).

`DisentangledRelative` is the stack's position module: called once per forward with the
position ids, it returns ``(table, index)``: the (LayerNorm-ed) relative embeddings
[2 span, H] and the bucketed distance index [T, T]; the stack hands that pair to every layer
in the slot rotary cos/sin use (`block.Stack`: a position module without ``bias``).
`DisentangledAttention` adds its two relative terms to the padding mask and runs
``F.scaled_dot_product_attention`` with the scale 1/sqrt(head_dim * (1 + c2p + p2c)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KV
from .norm import make_norm


class DisentangledRelative(nn.Module):
    """The relative embeddings shared by all layers, and the bucketed index ``δ(i, j)``."""

    bias = False  # not a score bias: the stack passes (table, index) to the layers

    def __init__(self, hidden: int, buckets: int | None, max_distance: int, norm: dict | None) -> None:
        super().__init__()
        self.buckets, self.max_distance = buckets, max_distance
        self.span = buckets or max_distance
        self.weight = nn.Parameter(torch.empty(2 * self.span, hidden))
        if norm is not None:
            self.norm = make_norm(hidden, norm)
        self.normed = norm is not None
        if buckets:
            mid = buckets // 2
            # HF divides by torch.log(torch.tensor((max_position - 1) / mid)), an fp32 value: the same
            # number here, so every ceil() lands in the same bucket
            self.log_range = float(torch.log(torch.tensor((max_distance - 1) / mid, device="cpu")))

    def index(self, T: int, device: torch.device) -> Tensor:
        """[T, T] rows of the table: clamp(bucket(i - j) + span, 0, 2 span - 1) (HF make_log_bucket_position)."""
        pos = torch.arange(T, device=device)
        rel = pos[:, None] - pos[None, :]  # i - j
        if self.buckets:
            mid = self.buckets // 2
            sign = torch.sign(rel)
            abs_pos = torch.where((rel < mid) & (rel > -mid), torch.full_like(rel, mid - 1), rel.abs())
            log_pos = torch.ceil(torch.log(abs_pos / mid) / self.log_range * (mid - 1)) + mid
            rel = torch.where(abs_pos <= mid, rel.to(log_pos.dtype), log_pos * sign).long()
        return (rel + self.span).clamp(0, 2 * self.span - 1)

    def forward(self, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        table = self.norm(self.weight) if self.normed else self.weight
        return table, self.index(position_ids.shape[-1], position_ids.device)

    def extra_repr(self) -> str:
        return f"buckets={self.buckets}, max_distance={self.max_distance}"


class DisentangledAttention(nn.Module):
    """Fused ``qkv`` [3 n d, H] = [q; k; v], ``out`` [H, n d]; without ``share_keys`` also ``pos_k``
    (c2p) and ``pos_q`` (p2c) [n d, H] projecting the relative table."""

    def __init__(self, hidden: int, heads: int, head_dim: int, *, c2p: bool, p2c: bool, share_keys: bool,
                 qkv_bias: bool = True, out_bias: bool = True, dropout: float = 0.0,
                 position_dropout: float = 0.0) -> None:
        super().__init__()
        n, d = heads, head_dim
        self.heads, self.kv_heads, self.head_dim = n, n, d
        self.c2p, self.p2c, self.share_keys = c2p, p2c, share_keys
        self.scale = 1.0 / math.sqrt(d * (1 + int(c2p) + int(p2c)))
        self.dropout, self.position_dropout = dropout, position_dropout
        self.qkv = nn.Linear(hidden, 3 * n * d, bias=qkv_bias)
        if not share_keys:
            if c2p:
                self.pos_k = nn.Linear(hidden, n * d, bias=qkv_bias)
            if p2c:
                self.pos_q = nn.Linear(hidden, n * d, bias=qkv_bias)
        self.out = nn.Linear(n * d, hidden, bias=out_bias)

    def heads_of(self, x: Tensor) -> Tensor:
        """[..., L, n d] -> [..., n, L, d]."""
        return x.view(*x.shape[:-1], self.heads, self.head_dim).transpose(-2, -3)

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary: tuple[Tensor, Tensor] | None = None, past: KV | None = None) -> tuple[Tensor, KV]:
        B, T, _ = x.shape
        nd = self.heads * self.head_dim
        q, k, v = (self.heads_of(t) for t in self.qkv(x).split(nd, dim=-1))  # [B, n, T, d]
        table, index = rotary  # the stack's DisentangledRelative: [2 span, H], [T, T]
        table = table.to(x.dtype)
        if self.training and self.position_dropout:  # HF: each layer's pos_dropout on the shared table
            table = F.dropout(table, self.position_dropout)
        if self.share_keys:  # through the qkv module (a tuning wrapper on it takes part)
            pq, pk, _ = self.qkv(table).split(nd, dim=-1)
        else:
            pk = self.pos_k(table) if self.c2p else None
            pq = self.pos_q(table) if self.p2c else None
        bias = torch.zeros((), dtype=q.dtype, device=q.device)
        if self.c2p:  # q_i . Kr[δ(i, j)]
            c2p = torch.matmul(q, self.heads_of(pk).transpose(-1, -2))  # [B, n, T, 2 span]
            bias = bias + torch.gather(c2p, -1, index.expand(B, self.heads, T, T))
        if self.p2c:  # k_j . Qr[δ(i, j)]: row j of k against δ(i, j), i.e. index transposed, then transposed back
            p2c = torch.matmul(k, self.heads_of(pq).transpose(-1, -2))  # [B, n, T(keys), 2 span]
            bias = bias + torch.gather(p2c, -1, index.t().expand(B, self.heads, T, T)).transpose(-1, -2)
        bias = bias * self.scale
        if mask is not None:
            bias = bias + mask.to(bias.dtype)
        if bias.dtype == torch.float16:
            bias = bias.clamp(min=torch.finfo(torch.float16).min)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, nd)), (k, v)

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init): the value
        rows of `qkv` and `out`."""
        return [self.qkv.weight[2 * self.heads * self.head_dim:], self.out.weight]
