"""Transformer-XL's segment-memory attention (``attention/segment_memory``), proven without HF
(transformers 5 removed TransfoXL): against a hand-written reference of Dai et al. 2019's
equations, by the recurrence property, and by the memory being detached.  XLNet's
two-stream attention is proven against HF in ``tests/parity/test_xlnet.py``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import _blocks, tiny

import plmgraph as pg
from plmgraph.errors import InputError
from plmgraph.spec import validate
from plmgraph.spec.extends import Merged

V = 128


@pytest.fixture(scope="module")
def txl():
    model = pg.build(tiny("transformer-xl"), seed=0).eval()
    with torch.no_grad():  # nonzero biases and norms, so a dropped term shows
        g = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "norm" in name or p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            if name.endswith(("r_w_bias", "r_r_bias")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def reference(model, x: torch.Tensor, mems: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list]:
    """Dai et al. 2019, section 3.3, written from the paper with explicit distances (no shift trick):

        A_ij = (E q_i + u)^T k_j + (E q_i + v)^T W_r R_{i-j},  causal over [memory; segment],
        h = LayerNorm(h + Attn(h)),  h = LayerNorm(h + FF(h)),  logits = h E^T + b.

    Reads only the model's parameters by their graph names.  Returns logits and each layer's input."""
    p = dict(model.named_parameters())
    spec = model.spec
    H, n = spec.sizes.hidden, spec.sizes.heads
    d = H // n
    eps = spec.block.norm.eps
    h = p["embed.token.weight"][x] * math.sqrt(H)  # [B, T, H]
    B, T, _ = h.shape
    M = mems[0].shape[1] if mems else 0
    inv = 1.0 / 10000 ** (torch.arange(0, H, 2).float() / H)
    dist = (M + torch.arange(T))[:, None] - torch.arange(M + T)[None, :]  # [T, S]: i - j in absolute positions
    R = torch.cat((torch.sin(dist[..., None] * inv), torch.cos(dist[..., None] * inv)), -1)  # [T, S, H]
    inputs = []
    for i in range(spec.sizes.layers):
        L = f"decoder.layers.{i}"
        inputs.append(h)
        cat = h if not mems else torch.cat((mems[i], h), 1)
        wq, wk, wv = p[f"{L}.attn.qkv.weight"].chunk(3)
        q = (h @ wq.T).view(B, T, n, d)
        k = (cat @ wk.T).view(B, M + T, n, d)
        v = (cat @ wv.T).view(B, M + T, n, d)
        r = (R @ p[f"{L}.attn.r.weight"].T).view(T, M + T, n, d)
        u, vb = p[f"{L}.attn.r_w_bias"], p[f"{L}.attn.r_r_bias"]
        score = torch.einsum("bind,bjnd->bnij", q + u, k) + torch.einsum("bind,ijnd->bnij", q + vb, r)
        score = score / math.sqrt(d)
        score = score.masked_fill((dist < 0)[None, None], float("-inf"))
        a = torch.einsum("bnij,bjnd->bind", score.softmax(-1), v).reshape(B, T, H)
        h = F.layer_norm(h + a @ p[f"{L}.attn.out.weight"].T, (H,), p[f"{L}.attn_norm.weight"],
                         p[f"{L}.attn_norm.bias"], eps)
        ff = F.linear(F.relu(F.linear(h, p[f"{L}.mlp.up.weight"], p[f"{L}.mlp.up.bias"])),
                      p[f"{L}.mlp.down.weight"], p[f"{L}.mlp.down.bias"])
        h = F.layer_norm(h + ff, (H,), p[f"{L}.mlp_norm.weight"], p[f"{L}.mlp_norm.bias"], eps)
    return h @ p["embed.token.weight"].T + p["heads.lm.bias"], inputs


def ids(t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (2, t), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_causal_segment_without_memory_matches_paper_reference(txl):
    x = ids(9)
    want, _ = reference(txl, x)
    torch.testing.assert_close(txl(x).logits, want, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_segment_with_memory_matches_paper_reference(txl):
    first, second = ids(6, seed=1), ids(4, seed=2)
    out = txl(first, use_cache=True)
    _, inputs = reference(txl, first)
    for mine, theirs in zip(out.past_key_values, inputs, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    want, _ = reference(txl, second, list(out.past_key_values))
    torch.testing.assert_close(txl(second, past_key_values=out.past_key_values).logits, want, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_two_segments_with_memory_equal_one_pass(txl):
    """The recurrence: a memory covering the prefix gives the last segment exactly the one-pass outputs."""
    x = ids(10, seed=3)
    whole = txl(x).logits
    out = txl(x[:, :4], use_cache=True)
    out = txl(x[:, 4:7], past_key_values=out.past_key_values, use_cache=True)
    assert out.past_key_values[0].shape[1] == 7  # memory: 0 in the spec keeps every state
    torch.testing.assert_close(out.logits, whole[:, 4:7], rtol=1e-4, atol=1e-5)
    last = txl(x[:, 7:], past_key_values=out.past_key_values)
    torch.testing.assert_close(last.logits, whole[:, 7:], rtol=1e-4, atol=1e-5)
    # padding in the memory hides it exactly as in the one pass
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :2] = 0
    whole = txl(x, attention_mask=mask).logits
    out = txl(x[:, :6], attention_mask=mask[:, :6], use_cache=True)
    last = txl(x[:, 6:], attention_mask=mask, past_key_values=out.past_key_values)
    torch.testing.assert_close(last.logits, whole[:, 6:], rtol=1e-4, atol=1e-5)


def test_memory_is_detached_and_bounded():
    model = pg.build(tiny("transformer-xl"), seed=0).train()
    first, second = ids(5, seed=4), ids(3, seed=5)
    out = model(first, use_cache=True)
    assert all(m.grad_fn is None and not m.requires_grad for m in out.past_key_values)
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks in both runs
    model(second, past_key_values=out.past_key_values).logits.square().mean().backward()
    through = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    copies = tuple(m.clone() for m in out.past_key_values)
    torch.manual_seed(0)
    model(second, past_key_values=copies).logits.square().mean().backward()
    for k, p in model.named_parameters():  # the first segment's graph adds nothing
        torch.testing.assert_close(through[k], p.grad, msg=k)
    data = tiny("transformer-xl").model_dump(mode="json", exclude_none=True, exclude={"extends"})
    for block in _blocks(data):
        block["attention"]["memory"] = 3
    bounded = pg.build(validate(Merged(data, file="test")), seed=0)
    mems = bounded(first, use_cache=True).past_key_values
    mems = bounded(second, past_key_values=mems, use_cache=True).past_key_values
    assert mems[0].shape == (2, 3, 64)  # the last 3 of 8 states


def test_memory_and_two_stream_inputs_are_checked(txl):
    x = ids(4)
    with pytest.raises(InputError, match=r"must be 2 tensors \[batch=2, memory, hidden=64\]"):
        txl(x, past_key_values=((torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4)),) * 2)
    with pytest.raises(InputError, match="perm_mask and target_mapping are for two-stream attention"):
        txl(x, perm_mask=torch.zeros(2, 4, 4))
    with pytest.raises(InputError, match="perm_mask and target_mapping are for two-stream attention"):
        pg.build(tiny("gpt2"), seed=0)(x, target_mapping=torch.zeros(2, 1, 4))
    xl = pg.build(tiny("xlnet-base"), seed=0)
    with pytest.raises(InputError, match=r"perm_mask must have shape \[batch, seq, seq\] = \(2, 4, 4\)"):
        xl(x, perm_mask=torch.zeros(2, 4, 3))
    with pytest.raises(InputError, match=r"target_mapping must have shape \[batch, predictions, seq\]"):
        xl(x, target_mapping=torch.zeros(2, 4))
