"""Generation: greedy equals transformers' generate token for token; cached equals uncached; left padding;
sampling knobs."""

import pytest
import torch

tf = pytest.importorskip("transformers")
from parity_util import randomize, save_and_import  # noqa: E402

import plmgraph as pg  # noqa: E402
from plmgraph.errors import InputError  # noqa: E402
from plmgraph.train.generate import process_logits  # noqa: E402

V = 101


def hf_model(arch):
    torch.manual_seed(0)
    if arch == "gpt2":
        hf = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                              bos_token_id=1, eos_token_id=2))
    elif arch == "llama":
        hf = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                                                max_position_embeddings=64, bos_token_id=1, eos_token_id=2))
    else:
        hf = tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=V, d_model=32, d_kv=8, d_ff=40, num_layers=2,
                                                       num_heads=4, relative_attention_num_buckets=8,
                                                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    randomize(hf, std=0.3)
    return hf


@pytest.fixture(scope="module", params=["gpt2", "llama", "t5"])
def pair(request, tmp_path_factory):
    hf = hf_model(request.param)
    return request.param, hf, save_and_import(hf, tmp_path_factory.mktemp(request.param))


def prompt(b=1, t=5, seed=1):
    return torch.randint(3, V, (b, t), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_greedy_equals_transformers_generate(pair):
    arch, hf, model = pair
    x = prompt()
    ref = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=20, do_sample=False, pad_token_id=0,
                      eos_token_id=None)
    got = pg.generate(model, None, x, 20, eos_token_id=None)
    assert got.tolist() == ref.tolist()


def test_cached_equals_uncached(pair):
    arch, hf, model = pair
    x = prompt(2)
    a = pg.generate(model, None, x, 15, eos_token_id=None)
    b = pg.generate(model, None, x, 15, eos_token_id=None, use_cache=False)
    assert torch.equal(a, b)
    s1 = pg.generate(model, None, x, 15, eos_token_id=None, top_k=20, temperature=0.8, seed=3)
    s2 = pg.generate(model, None, x, 15, eos_token_id=None, top_k=20, temperature=0.8, seed=3, use_cache=False)
    assert torch.equal(s1, s2)


def test_padded_batch_generates_what_each_row_would_alone(pair):
    """Decoders pad prompts on the left; T5 pads its encoder inputs on the right (with the mask)."""
    arch, hf, model = pair
    rows = [prompt(1, 3, 5)[0].tolist(), prompt(1, 6, 6)[0].tolist()]
    batch = pg.generate(model, None, rows, 10, eos_token_id=None)
    for i, r in enumerate(rows):
        alone = pg.generate(model, None, [r], 10, eos_token_id=None)
        assert batch[i, -10:].tolist() == alone[0, -10:].tolist()


def test_stop_tokens_end_a_row_and_pad_it(pair):
    arch, hf, model = pair
    x = prompt(1)
    free = pg.generate(model, None, x, 12, eos_token_id=None)
    new = free[0, -12:].tolist() if arch != "t5" else free[0, 1:].tolist()
    stop = new[3]
    got = pg.generate(model, None, x, 12, eos_token_id=None, stop=[stop], pad_token_id=0)
    tail = got[0, -len(got[0]) + (x.shape[1] if arch != "t5" else 1):].tolist()
    first = tail.index(stop)
    assert tail[:first + 1] == new[:first + 1] and all(t == 0 for t in tail[first + 1:])


def test_sampling_knobs():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    seen = torch.tensor([[0]])
    k = process_logits(logits, seen, temperature=1.0, top_k=2, top_p=1.0, repetition_penalty=1.0)
    assert torch.isinf(k[0, 2:]).all() and not torch.isinf(k[0, :2]).any()
    p = process_logits(logits, seen, temperature=1.0, top_k=0, top_p=0.5, repetition_penalty=1.0)
    assert torch.isfinite(p[0]).tolist() == [True, False, False, False]  # p(top) = 0.61 >= 0.5
    r = process_logits(logits, torch.tensor([[0, 3]]), temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=2.0)
    assert r[0].tolist() == [1.0, 1.0, 0.5, -2.0]
    t = process_logits(logits, seen, temperature=0.5, top_k=0, top_p=1.0, repetition_penalty=1.0)
    assert torch.allclose(t, logits / 0.5)


def test_bad_generation_arguments(pair):
    arch, hf, model = pair
    with pytest.raises(InputError, match="temperature must be >= 0"):
        pg.generate(model, None, prompt(), 3, top_p=0)
    with pytest.raises(InputError, match="a text prompt needs a tokenizer"):
        pg.generate(model, None, "hello", 3)
