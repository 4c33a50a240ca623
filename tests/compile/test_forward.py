"""Forward semantics: KV cache, padding masks, positions, sliding window, checkpointing, compile, autocast."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

from plmgraph.compile import build
from plmgraph.compile.position import Rotary, apply_rotary, t5_bucket

DECODERS = ["gpt2", "llama2-7b", "mixtral-8x7b", "chatglm2-6b", "llama3-8b"]
ENC_DEC = ["t5-small", "bart-base", "transformer-base"]


def ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", DECODERS)
def test_kv_cache_steps_equal_full_forward(name):
    model = build(tiny(name), seed=0).eval()
    x = ids(2, 9)
    full = model(x).logits
    a = model(x[:, :5], use_cache=True)
    b = model(x[:, 5:7], past_key_values=a.past_key_values, use_cache=True)
    c = model(x[:, 7:], past_key_values=b.past_key_values, use_cache=True)
    torch.testing.assert_close(torch.cat([a.logits, b.logits, c.logits], 1), full)
    k, v = c.past_key_values[0]
    at = model.spec.decoder.block.attention
    assert k.shape == v.shape == (2, at.kv_heads, 9, at.head_dim)


@pytest.mark.parametrize("name", ENC_DEC)
def test_enc_dec_cache_and_encoder_padding(name):
    model = build(tiny(name), seed=0).eval()
    src, tgt = ids(2, 6), ids(2, 8, seed=1)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    full = model(src, attention_mask=mask, decoder_input_ids=tgt)
    a = model(src, attention_mask=mask, decoder_input_ids=tgt[:, :5], use_cache=True)
    b = model(attention_mask=mask, decoder_input_ids=tgt[:, 5:], past_key_values=a.past_key_values, use_cache=True,
              encoder_outputs=a.encoder_last_hidden_state)
    torch.testing.assert_close(torch.cat([a.logits, b.logits], 1), full.logits)
    src2 = src.clone()
    src2[1, 4:] = 7  # padded encoder tokens must not matter to the decoder
    torch.testing.assert_close(model(src2, attention_mask=mask, decoder_input_ids=tgt).logits, full.logits)
    assert full.encoder_last_hidden_state.shape == (2, 6, 64)


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b", "bert-base", "roberta-base", "albert-base", "t5-small"])
def test_padding_does_not_affect_kept_tokens(name):
    spec = tiny(name)
    model = build(spec, seed=0).eval()
    x = ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    y = x.clone()
    y[1, 5:] = 3
    kw = {"decoder_input_ids": ids(2, 4)} if spec.family == "encoder-decoder" else {}
    h1 = model(x, attention_mask=mask, **kw).last_hidden_state
    h2 = model(y, attention_mask=mask, **kw).last_hidden_state
    n = 4 if kw else 5
    torch.testing.assert_close(h1[1, :n], h2[1, :n])
    if not kw:  # a row without padding is unchanged by the other row's padding
        torch.testing.assert_close(h1[0], model(x[:1]).last_hidden_state[0], atol=1e-5, rtol=1e-5)


def test_causal_decoder_ignores_future_tokens():
    model = build(tiny("gpt2"), seed=0).eval()
    x = ids(1, 8)
    y = x.clone()
    y[0, 6:] = (y[0, 6:] + 1) % 128
    torch.testing.assert_close(model(x).logits[:, :6], model(y).logits[:, :6])


def test_roberta_positions_count_kept_tokens_and_bart_does_not():
    rob = build(tiny("roberta-base"), seed=0).eval()
    x = ids(1, 6)
    left = torch.cat([torch.ones(1, 2, dtype=torch.long), x], 1)
    mask = torch.cat([torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], 1)
    # left padding shifts nothing: kept tokens still get positions 0.. (table rows offset + 0..)
    torch.testing.assert_close(rob(left, attention_mask=mask).last_hidden_state[:, 2:],
                               rob(x).last_hidden_state, atol=1e-5, rtol=1e-5)


def test_sliding_window_limits_attention():
    spec = tiny("llama2-7b")
    spec.decoder.block.attention.window = 3
    model = build(spec, seed=0).eval()
    x = ids(1, 10)
    y = x.clone()
    y[0, 0] = (y[0, 0] + 1) % 128  # token 0 is outside the window of late tokens... in layer 1 only
    out_x, out_y = model(x).last_hidden_state, model(y).last_hidden_state
    # two layers of window 3 reach back at most 4 tokens: position 9 cannot see position 0
    torch.testing.assert_close(out_x[:, 9], out_y[:, 9])
    assert not torch.allclose(out_x[:, 1], out_y[:, 1])
    a = model(x[:, :6], use_cache=True)
    b = model(x[:, 6:], past_key_values=a.past_key_values)
    torch.testing.assert_close(torch.cat([a.logits, b.logits], 1), model(x).logits)


def test_rotary_halves_and_interleaved_match_complex_rotation():
    rot = Rotary(8, 10000.0, interleaved=True, scaling=None, max_positions=None)
    q = torch.randn(1, 1, 5, 12)
    cos, sin = rot(torch.arange(5)[None])
    out = apply_rotary(q, cos, sin, interleaved=True)
    inv = 1.0 / 10000 ** (torch.arange(0, 8, 2).float() / 8)
    z = torch.view_as_complex(q[..., :8].reshape(1, 1, 5, 4, 2).contiguous())
    want = torch.view_as_real(z * torch.polar(torch.ones(5, 4), torch.arange(5)[:, None] * inv)).flatten(-2)
    torch.testing.assert_close(out[..., :8], want)
    torch.testing.assert_close(out[..., 8:], q[..., 8:])  # partial rotary: the rest passes through


def test_t5_buckets_match_hugging_face():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    rel = torch.arange(-300, 300)[None, :] - torch.arange(0, 40)[:, None]
    for bidirectional in (True, False):
        want = t5.T5Attention._relative_position_bucket(rel, bidirectional, 32, 128)
        assert torch.equal(t5_bucket(rel, bidirectional, 32, 128), want)


def test_gradient_checkpointing_gives_same_gradients():
    spec = tiny("llama2-7b")
    a, b = build(spec, seed=0), build(spec, seed=0)
    b.gradient_checkpointing(True)
    x = ids(2, 6)
    for m in (a, b):
        m(x).logits.square().mean().backward()
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=k)


def test_autocast_bf16_runs():
    model = build(tiny("llama2-7b"), seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids(2, 6), attention_mask=torch.ones(2, 6, dtype=torch.long))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()


def test_torch_compile_block_fullgraph():
    model = build(tiny("llama2-7b"), seed=0).eval()
    stack = model.decoder
    block = stack.layers["0"]
    x = torch.randn(2, 6, 64)
    rotary = stack.position(torch.arange(6)[None])
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    got, _ = compiled(x, None, True, rotary, None, None, None)
    want, _ = block(x, None, True, rotary, None, None, None)
    torch.testing.assert_close(got, want)


def test_torch_compile_whole_model():
    model = build(tiny("gpt2"), seed=0).eval()
    x = ids(2, 6)
    compiled = torch.compile(model, backend="eager")
    torch.testing.assert_close(compiled(x).logits, model(x).logits)


def test_blocks_lists_each_layer_once():
    model = build(tiny("t5-small"), device="meta")
    assert len(model.blocks()) == 4
