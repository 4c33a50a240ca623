"""Position encodings.

Two families, by where they act:

* added to the embeddings (`LearnedPosition`, `SinusoidalPosition`): ``positions [B, T] ->
  [B, T, E]``;
* inside attention, computed once per stack and shared by its layers: `Rotary` returns
  ``(cos, sin)`` for the query/key rotation; `Alibi` and `T5RelativeBias` return an additive
  score bias ``[1, heads, T, S]`` (``bias = True`` on the class tells the stack which).

Nothing here holds a buffer: frequencies, slopes and tables are computed from constants in
``forward`` (a few hundred flops), so the model builds on ``meta``, moves with ``to_empty``
and its ``state_dict`` is exactly its parameters.  The modules are built from graph nodes
by the position kinds' ``build`` facets (plmgraph/kinds/position/).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .embedding import Embedding

# ------------------------------------------------------------- added to the input


class LearnedPosition(Embedding):  # no random init on the meta device
    """A learned table of absolute positions; row ``offset + i`` is position ``i``
    (RoBERTa and BART keep two rows before the first position)."""

    def __init__(self, rows: int, dim: int, offset: int = 0, max_positions: int | None = None) -> None:
        super().__init__(rows, dim)
        self.offset = offset
        self.max_positions = max_positions if max_positions is not None else rows - offset


class SinusoidalPosition(nn.Module):
    """Fixed sin/cos positions (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""

    max_positions = None  # extrapolates to any length

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, positions: Tensor) -> Tensor:
        inv = torch.exp(torch.arange(0, self.dim, 2, device=positions.device, dtype=torch.float32)
                        * (-math.log(10000.0) / self.dim))  # [d/2]
        angle = positions.float()[..., None] * inv  # [B, T, d/2]
        pe = torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)  # [B, T, d]: sin, cos interleaved
        return pe[..., : self.dim]


# ------------------------------------------------------------------------- rotary


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021): cos/sin of ``position * inv_freq``.

    Rotates the first ``rotary_dim`` dimensions of each head (``fraction`` < 1 is partial
    rotary, GLM/NeoX); ``interleaved`` pairs dims (0,1),(2,3)... (GPT-J, GLM) instead of the
    two halves (LLaMA).  Context scaling: linear, dynamic (NTK), llama3 and yarn, following
    Hugging Face ``modeling_rope_utils``.
    """

    bias = False

    def __init__(self, rotary_dim: int, theta: float, interleaved: bool, scaling: dict | None,
                 max_positions: int | None) -> None:
        super().__init__()
        self.rotary_dim, self.theta, self.interleaved = rotary_dim, theta, interleaved
        self.scaling = scaling or {}
        self.max_positions = max_positions

    def inv_freq(self, device: torch.device, seq_len: int) -> tuple[Tensor, float]:
        """Inverse frequencies [rotary_dim / 2] and the cos/sin attention factor."""
        d, base, sc = self.rotary_dim, self.theta, self.scaling
        kind, factor = sc.get("kind"), sc.get("factor", 1.0)
        orig = sc.get("original_max_positions") or self.max_positions
        if kind == "dynamic" and orig and seq_len > orig:
            base = base * ((factor * seq_len / orig) - (factor - 1)) ** (d / (d - 2))
        exponents = torch.arange(0, d, 2, device=device, dtype=torch.float32) / d
        inv = 1.0 / (base**exponents)
        attention_factor = 1.0
        if kind == "linear":
            inv = inv / factor
        elif kind == "llama3":
            low, high = sc.get("low_freq_factor") or 1.0, sc.get("high_freq_factor") or 4.0
            low_wavelen, high_wavelen = orig / low, orig / high
            wavelen = 2 * math.pi / inv
            scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
            smooth = (orig / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
            inv = torch.where(medium, smoothed, scaled)
        elif kind == "yarn":
            attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

            def correction_dim(rotations: float) -> float:
                return (d * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(base))

            lo, hi = max(math.floor(correction_dim(32)), 0), min(math.ceil(correction_dim(1)), d - 1)
            hi = hi + 0.001 if lo == hi else hi
            ramp = ((torch.arange(d // 2, device=device, dtype=torch.float32) - lo) / (hi - lo)).clamp(0, 1)
            extrapolate = 1 - ramp
            inv = (inv / factor) * (1 - extrapolate) + inv * extrapolate
        return inv, attention_factor

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions [B, T] -> cos, sin [B, 1, T, rotary_dim] (fp32)."""
        # dynamic NTK rescales by the longest position seen so far (HF: max(position_ids) + 1);
        # reading it syncs, so only that scaling pays for it
        seq_len = int(positions.max()) + 1 if self.scaling.get("kind") == "dynamic" else 0
        inv, attention_factor = self.inv_freq(positions.device, seq_len)
        freqs = positions.float()[..., None] * inv  # [B, T, rd/2]
        if self.interleaved:
            emb = freqs.repeat_interleave(2, dim=-1)  # [B, T, rd]: f0 f0 f1 f1 ...
        else:
            emb = torch.cat((freqs, freqs), dim=-1)  # [B, T, rd]: f0 f1 ... f0 f1 ...
        return (emb.cos() * attention_factor)[:, None], (emb.sin() * attention_factor)[:, None]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, interleaved: bool) -> Tensor:
    """Rotate the first ``cos.shape[-1]`` dims of each head of x [B, h, T, d]; the rest pass through."""
    rd = cos.shape[-1]
    rot, rest = x[..., :rd], x[..., rd:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        turned = torch.stack((-x2, x1), dim=-1).flatten(-2)
    else:
        x1, x2 = rot[..., : rd // 2], rot[..., rd // 2 :]
        turned = torch.cat((-x2, x1), dim=-1)
    rot = (rot.float() * cos + turned.float() * sin).to(x.dtype)
    return torch.cat((rot, rest), dim=-1) if rest.shape[-1] else rot


# ------------------------------------------------------------------ score biases


def alibi_slopes(heads: int) -> list[float]:
    """Per-head slopes 2^(-8i/n) (Press et al. 2021), with the interleaved extension for
    head counts that are not a power of two (as in HF BLOOM / MPT)."""
    closest = 2 ** math.floor(math.log2(heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest != heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra ** (2 * i + 1) for i in range(heads - closest)]
    return slopes


class Alibi(nn.Module):
    """ALiBi: ``-slope * distance`` added to each head's scores.  Causal stacks use the signed
    distance ``k - q`` (<= 0 where visible; equal to BLOOM's ``slope * k`` up to a per-row
    constant); bidirectional stacks use ``-|k - q|``."""

    bias = True

    def __init__(self, heads: int, bidirectional: bool) -> None:
        super().__init__()
        self.heads, self.bidirectional = heads, bidirectional

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        slopes = torch.tensor(alibi_slopes(self.heads), device=q_pos.device, dtype=torch.float32)
        dist = (k_pos[None, :] - q_pos[:, None]).float()  # [T, S]
        dist = -dist.abs() if self.bidirectional else dist
        return slopes[:, None, None] * dist[None]  # [h, T, S]


def t5_bucket(relative: Tensor, bidirectional: bool, buckets: int, max_distance: int) -> Tensor:
    """Hugging Face T5's ``_relative_position_bucket``: exact buckets for small distances,
    log-spaced up to `max_distance`; `relative` is ``key - query``."""
    out = torch.zeros_like(relative)
    if bidirectional:
        buckets //= 2
        out = out + (relative > 0).long() * buckets
        relative = relative.abs()
    else:
        relative = -torch.min(relative, torch.zeros_like(relative))
    max_exact = buckets // 2
    is_small = relative < max_exact
    large = max_exact + (
        torch.log(relative.float() / max_exact) / math.log(max_distance / max_exact) * (buckets - max_exact)
    ).long()
    large = torch.min(large, torch.full_like(large, buckets - 1))
    return out + torch.where(is_small, relative, large)


class T5RelativeBias(nn.Module):
    """T5's learned relative position bias: one scalar per (distance bucket, head)."""

    bias = True

    def __init__(self, buckets: int, heads: int, max_distance: int, bidirectional: bool) -> None:
        super().__init__()
        self.buckets, self.max_distance, self.bidirectional = buckets, max_distance, bidirectional
        self.weight = nn.Parameter(torch.empty(buckets, heads))

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        relative = k_pos[None, :] - q_pos[:, None]  # [T, S]
        bucket = t5_bucket(relative, self.bidirectional, self.buckets, self.max_distance)
        return nn.functional.embedding(bucket, self.weight).permute(2, 0, 1)  # [h, T, S]

