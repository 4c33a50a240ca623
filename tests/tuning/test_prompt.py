"""Prompt tuning: soft tokens in front of the input; masks, positions and the KV cache account for them."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from helpers_tuning import perturb, tuned

import plmgraph as pg
from plmgraph.errors import InputError
from plmgraph.tuning import TuningError
from plmgraph.tuning.options import apply_options

X = torch.randint(1, 128, (2, 8), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b"])
def test_the_cache_holds_the_prompt(name):
    m = perturb(tuned(tiny(name), "prompt:length=4"))
    full = m(X).logits
    assert full.shape == (2, 8, 128)
    out = m(X[:, :5], use_cache=True)
    assert out.past_key_values[0][0].shape[2] == 4 + 5
    torch.testing.assert_close(out.logits, full[:, :5], atol=1e-5, rtol=1e-4)
    step = m(X[:, 5:6], past_key_values=out.past_key_values, use_cache=True, attention_mask=torch.ones(2, 6).long(),
             position_ids=torch.full((2, 1), 5))
    torch.testing.assert_close(step.logits[:, 0], full[:, 5], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b"])
def test_left_padding_with_mask_and_positions(name):
    m = perturb(tuned(tiny(name), "prompt:length=3"))
    row = X[:1, :5]
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), row], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    got = m(padded, attention_mask=mask, position_ids=pos).logits[:, 3:]
    torch.testing.assert_close(got, m(row).logits, atol=1e-5, rtol=1e-4)


def test_the_prompt_changes_the_output_and_labels_line_up():
    base = pg.build(tiny("gpt2"), seed=0).eval()
    m = tuned(tiny("gpt2"), "prompt:length=2")
    assert not torch.allclose(m(X).logits, base(X).logits)
    out = m(X, labels=X)
    logits = out.logits[:, :-1].reshape(-1, 128)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(logits, X[:, 1:].reshape(-1)))


@pytest.mark.parametrize("name", ["bert-base", "t5-small"])
def test_encoders_and_encoder_decoders(name):
    m = perturb(tuned(tiny(name), "prompt:length=3,init=random"))
    kw = {"decoder_input_ids": X[:, :4]} if m.family == "encoder-decoder" else {}
    out = m(X, attention_mask=torch.ones_like(X), **kw)
    assert out.logits.shape[:2] == ((2, 4) if kw else (2, 8))
    if kw:
        assert out.encoder_last_hidden_state.shape[1] == 3 + 8  # the decoder reads the prompt's states


def test_too_long_inputs_and_prompts():
    m = tuned(tiny("gpt2"), "prompt:length=10")  # 64 positions
    with pytest.raises(InputError, match=r"55 tokens and 10 soft prompt tokens exceed the model's 64 positions"):
        m(torch.zeros(1, 55, dtype=torch.long))
    with pytest.raises(TuningError, match=r"length 64 leaves no room for text"):
        pg.build(apply_options(tiny("gpt2"), "prompt:length=64"), device="meta")
    with pytest.raises(TuningError, match=r"an image model has no token embeddings"):
        pg.build(apply_options(tiny("vit-base"), "prompt"), device="meta")


def test_generate_with_and_without_the_cache():
    from plmgraph.train.generate import generate

    m = perturb(tuned(tiny("gpt2"), "prompt:length=4"), scale=1.0)
    prompts = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    a = generate(m, None, prompts, 6, temperature=0.0, attention_mask=mask)
    b = generate(m, None, prompts, 6, temperature=0.0, attention_mask=mask, use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 11)
    alone = generate(m, None, prompts[:1, 2:], 6, temperature=0.0)
    assert torch.equal(alone[0], a[0, 2:])  # the left-padded row generates what it would alone
