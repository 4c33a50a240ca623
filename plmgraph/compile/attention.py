"""Multi-head attention: fused-QKV self-attention (MHA/GQA/MQA) and cross-attention.

Weights follow the graph: self-attention has one fused ``qkv`` projection whose rows are
``[q; k; v]`` (``heads * head_dim`` rows of queries, then ``kv_heads * head_dim`` each of
keys and values); cross-attention has ``q`` (from the decoder) and ``kv`` (``[k; v]``, from
the encoder output).  Scores go through ``F.scaled_dot_product_attention``; masks and
position biases arrive ready-made from the stack as one additive float mask (or ``None``
plus ``is_causal``), so a layer does no mask bookkeeping of its own.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .norm import make_norm
from .position import apply_rotary

KV = tuple[Tensor, Tensor]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, scale: float | None,
           dropout: float, softcap: float | None = None) -> Tensor:
    """SDPA on q [B, n, T, d], k/v [B, kv, S, d]; grouped kv heads are repeated to n.  With `softcap`
    (Gemma 2) the scores are capped, ``c * tanh(s / c)``, before the mask and softmax, which SDPA
    cannot do: those layers compute the scores themselves."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # GQA / MQA: each kv head serves `groups` query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if mask is not None and mask.dtype != q.dtype:  # autocast: the stack builds masks in fp32
        mask = mask.to(q.dtype)
        if q.dtype == torch.float16:  # the stack's bf16-min "hidden" value overflows fp16
            mask = mask.clamp(min=torch.finfo(torch.float16).min)
    if softcap is not None:
        return capped_attention(q, k, v, mask, is_causal, scale, dropout, softcap)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal,
                                          scale=scale)


def capped_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, scale: float | None,
                     dropout: float, softcap: float) -> Tensor:
    """softmax(c * tanh(q kᵀ * scale / c) + mask) v, the softmax in fp32 (as HF Gemma 2's eager attention)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # [B, n, T, S]
    scores = torch.tanh(scores / softcap) * softcap
    if is_causal:
        T, S = scores.shape[-2:]
        keep = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    probs = F.dropout(probs, p=dropout) if dropout else probs
    return torch.matmul(probs, v)


class SelfAttention(nn.Module):
    """Self-attention with fused QKV, optional per-head q/k norm, rotary and a KV cache."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = True,
                 out_bias: bool = True, scale: float | None = None, dropout: float = 0.0,
                 qk_norm: dict | None = None, interleaved_rotary: bool = False, softcap: float | None = None,
                 qk_norm_scope: str = "head") -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.scale, self.dropout, self.interleaved = scale, dropout, interleaved_rotary
        self.softcap = softcap
        self.qkv = nn.Linear(hidden, (heads + 2 * kv_heads) * head_dim, bias=qkv_bias)
        self.out = nn.Linear(heads * head_dim, hidden, bias=out_bias)
        # qk norm per head (head_dim wide), or over the whole q / k projections before the heads split (OLMo 2)
        self.qk_whole = qk_norm is not None and qk_norm_scope == "projection"
        if qk_norm is not None:
            self.q_norm = make_norm(heads * head_dim if self.qk_whole else head_dim, qk_norm)
            self.k_norm = make_norm(kv_heads * head_dim if self.qk_whole else head_dim, qk_norm)
        self.qk_norm = qk_norm is not None

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary: tuple[Tensor, Tensor] | None = None, past: KV | None = None) -> tuple[Tensor, KV]:
        B, T, _ = x.shape
        n, kv, d = self.heads, self.kv_heads, self.head_dim
        q, k, v = self.qkv(x).split([n * d, kv * d, kv * d], dim=-1)
        if self.qk_whole:
            q, k = self.q_norm(q), self.k_norm(k)  # [B, T, n*d], [B, T, kv*d]
        q = q.view(B, T, n, d).transpose(1, 2)  # [B, n, T, d]
        k = k.view(B, T, kv, d).transpose(1, 2)  # [B, kv, T, d]
        v = v.view(B, T, kv, d).transpose(1, 2)  # [B, kv, T, d]
        if self.qk_norm and not self.qk_whole:
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            cos, sin = rotary
            q, k = apply_rotary(q, cos, sin, self.interleaved), apply_rotary(k, cos, sin, self.interleaved)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # [B, kv, S, d]
        y = attend(q, k, v, mask, is_causal, self.scale, self.dropout if self.training else 0.0, self.softcap)
        y = y.transpose(1, 2).reshape(B, T, n * d)  # [B, T, n*d]
        return self.out(y), (k, v)

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init): the
        value rows of `qkv` and `out` (queries and keys keep gain 1)."""
        kv_rows = self.kv_heads * self.head_dim
        return [self.qkv.weight[self.heads * self.head_dim + kv_rows:], self.out.weight]


class CrossAttention(nn.Module):
    """Decoder-to-encoder attention: queries from x, keys and values from the encoder output."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = True,
                 out_bias: bool = True, scale: float | None = None, dropout: float = 0.0,
                 qk_norm: dict | None = None, softcap: float | None = None) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.scale, self.dropout, self.softcap = scale, dropout, softcap
        self.q = nn.Linear(hidden, heads * head_dim, bias=qkv_bias)
        self.kv = nn.Linear(hidden, 2 * kv_heads * head_dim, bias=qkv_bias)
        self.out = nn.Linear(heads * head_dim, hidden, bias=out_bias)
        if qk_norm is not None:
            self.q_norm = make_norm(head_dim, qk_norm)
            self.k_norm = make_norm(head_dim, qk_norm)
        self.qk_norm = qk_norm is not None

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor | None = None) -> Tensor:
        B, T, _ = x.shape
        n, d = self.heads, self.head_dim
        q = self.q(x).view(B, T, n, d).transpose(1, 2)  # [B, n, T, d]
        if self.qk_norm:
            q = self.q_norm(q)
        k, v = self.memory_kv(memory)
        y = attend(q, k, v, mask, False, self.scale, self.dropout if self.training else 0.0, self.softcap)
        return self.out(y.transpose(1, 2).reshape(B, T, n * d))

    def memory_kv(self, memory: Tensor) -> KV:
        """Keys and values [B, kv, S, d] of the encoder output.  Without autograd (generation) they are
        cached per layer: a decoding step that passes the same `memory` tensor again (unchanged: same
        object, same version counters, weights unchanged) reuses them instead of projecting the encoder
        output at every step."""
        cache = self.__dict__.get("_memory_cache")
        caching = not (torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
                       or torch.jit.is_tracing())  # eager inference only
        # versions: of the encoder output and of the weights (an optimizer step updates them in place)
        versions = (memory._version, *(t._version for t in self.kv.parameters()),
                    *(t._version for t in (self.k_norm.parameters() if self.qk_norm else ())))
        if caching and cache is not None and cache[0]() is memory and cache[1] == versions:
            return cache[2]
        B, S, _ = memory.shape
        kv, d = self.kv_heads, self.head_dim
        k, v = self.kv(memory).view(B, S, 2 * kv, d).transpose(1, 2).chunk(2, dim=1)  # [B, kv, S, d] each
        if self.qk_norm:
            k = self.k_norm(k)
        if caching:
            self.__dict__["_memory_cache"] = (weakref.ref(memory), versions, (k, v))
        else:
            self.__dict__.pop("_memory_cache", None)
        return k, v

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init): the
        value rows of `kv` and `out` (queries and keys keep gain 1)."""
        return [self.kv.weight[self.kv_heads * self.head_dim:], self.out.weight]
