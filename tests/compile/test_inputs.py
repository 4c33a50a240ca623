"""Input checks: clear InputError messages before any heavy work."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

from plmgraph.compile import build
from plmgraph.errors import InputError


@pytest.fixture(scope="module")
def gpt2():
    return build(tiny("gpt2"), seed=0).eval()


def test_input_ids_rank_dtype_range(gpt2):
    with pytest.raises(InputError, match=r"input_ids must have shape \[batch, seq\], got \(5,\)"):
        gpt2(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="input_ids must be an integer tensor.*torch.float32"):
        gpt2(torch.zeros(1, 5))
    with pytest.raises(InputError, match=r"input_ids contains 128, outside \[0, 128\) \(vocab = 128\)"):
        gpt2(torch.tensor([[1, 128]]))
    with pytest.raises(InputError, match=r"contains -1, outside \[0, 128\)"):
        gpt2(torch.tensor([[-1, 2]]))
    with pytest.raises(InputError, match="input_ids is required"):
        gpt2()


def test_range_check_can_be_switched_off():
    model = build(tiny("gpt2"), seed=0)
    model.check_inputs = False
    with pytest.raises(IndexError):  # torch's own error, no host sync from plmgraph
        model(torch.tensor([[1, 128]]))


def test_sequence_longer_than_positions(gpt2):
    with pytest.raises(InputError, match=r"sequence length 65 .* exceeds max_positions \(64\)"):
        gpt2(torch.zeros(1, 65, dtype=torch.long))
    past = gpt2(torch.zeros(1, 60, dtype=torch.long), use_cache=True).past_key_values
    with pytest.raises(InputError, match="sequence length 65"):
        gpt2(torch.zeros(1, 5, dtype=torch.long), past_key_values=past)


def test_mask_and_cache_shapes(gpt2):
    with pytest.raises(InputError, match=r"attention_mask must have shape \[batch, past \+ seq\] = \(1, 4\)"):
        gpt2(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3))
    with pytest.raises(InputError, match="past_key_values must be a tuple of 2"):
        gpt2(torch.zeros(1, 4, dtype=torch.long), past_key_values=((torch.zeros(1, 4, 2, 16),) * 2,))


def test_encoder_decoder_needs_decoder_input_ids():
    model = build(tiny("t5-small"), device="meta")
    with pytest.raises(InputError, match="encoder-decoder models need decoder_input_ids"):
        model(torch.zeros(1, 4, dtype=torch.long))


def test_segments():
    bert = build(tiny("bert-base"), seed=0)
    with pytest.raises(InputError, match=r"token_type_ids contains 2, outside \[0, 2\) \(segments = 2\)"):
        bert(torch.zeros(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]]))
    distil = build(tiny("distilbert"), seed=0)
    with pytest.raises(InputError, match="no segment embeddings"):
        distil(torch.zeros(1, 3, dtype=torch.long), token_type_ids=torch.zeros(1, 3, dtype=torch.long))


def test_pixel_values():
    vit = build(tiny("vit-base"), seed=0)
    with pytest.raises(InputError, match="this model reads images"):
        vit(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(InputError, match=r"pixel_values must have shape \[batch, 3, 32, 32\], got \(1, 3, 16, 16\)"):
        vit(pixel_values=torch.zeros(1, 3, 16, 16))
    assert vit(pixel_values=torch.zeros(2, 3, 32, 32)).logits.shape == (2, 1000)
