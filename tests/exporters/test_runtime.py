"""`plmgraph.exporters.runtime` (finding ONNX Runtime) and `plmgraph.runtime` (generation on it)."""

import sys

import deploy_models
import numpy as np
import pytest
from plmgraph.exporters import runtime

from plmgraph.errors import InputError, PlmgraphError
from plmgraph.runtime import OrtModel
from plmgraph.runtime import providers as ort_providers
from plmgraph.train.generate import generate


def test_onnxruntime_is_found_with_a_cpu_provider():
    assert "CPUExecutionProvider" in runtime.providers()


def test_missing_onnxruntime_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(PlmgraphError, match=r"plmgraph\[cpu\].*plmgraph\[gpu\].*not be installed together"):
        runtime.import_onnxruntime()


# ------------------------------------------------------------------ plmgraph.runtime: generation on ORT
# Folders come from tests/deploy_models.py (one export per model per test process); the reference is
# plmgraph's PyTorch `generate`, which tests/train checks token for token against transformers'.

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [40, 41, 42], [100, 3, 250, 17, 9]]  # left-padded to 7 in a batch


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_greedy_left_padded_batch_equals_pytorch(name):
    model, folder = deploy_models.folder(name)
    m = OrtModel(folder)
    tok = deploy_models.tokenizer()
    want = generate(model, tok, PROMPTS, 12, temperature=0.0)
    got = m.generate(PROMPTS, 12, temperature=0.0)
    np.testing.assert_array_equal(got, want.numpy())
    assert got[1, :4].tolist() == [m.pad] * 4 and got[1, 4:7].tolist() == [40, 41, 42]
    assert len(set(got[0, 7:].tolist())) > 3  # the model says something, not one token over and over
    for i, p in enumerate(PROMPTS):  # each row as it would alone: the padding is invisible
        alone = m.generate([p], 12, temperature=0.0)[0]
        np.testing.assert_array_equal(alone, got[i, 7 - len(p):][:len(alone)])


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_seeded_sampling_equals_pytorch(name):
    model, folder = deploy_models.folder(name)
    m, tok = OrtModel(folder), deploy_models.tokenizer()
    for kw in ({"temperature": 0.8, "top_k": 20, "seed": 3}, {"top_p": 0.9, "seed": 4},
               {"temperature": 1.3, "top_k": 50, "top_p": 0.8, "repetition_penalty": 1.2, "seed": 5}):
        want = generate(model, tok, PROMPTS, 10, **kw)
        np.testing.assert_array_equal(m.generate(PROMPTS, 10, **kw), want.numpy())
    a, b = m.generate(PROMPTS, 10, top_p=0.9, seed=1), m.generate(PROMPTS, 10, top_p=0.9, seed=2)
    assert (a != b).any()


def test_a_graph_without_a_cache_reruns_the_sequence_and_gives_pytorchs_tokens(tmp_path):
    """An export without --kv-cache: every step feeds the whole sequence (its step length grows), the
    logits still bound into one host array, replaced as the length changes."""
    import plmgraph as pg
    from plmgraph.runtime import _Stepper

    model = deploy_models.model("llama2-7b")
    m = OrtModel(pg.export_onnx(model, tmp_path / "nocache.onnx", verify=False))
    assert not m.past
    want = generate(model, None, PROMPTS, 6, temperature=0.0)
    np.testing.assert_array_equal(m.generate(PROMPTS, 6, temperature=0.0), want.numpy())
    step = _Stepper(m, 1)
    for t in (3, 4):
        ids = np.arange(1, t + 1)[None]
        step(ids[:, -1:], np.ones((1, t), np.int64), ids)
        assert step._logits.shape == (1, t, 300)  # one array, the current step's


def test_stop_tokens_text_prompts_and_the_cache_on_the_device():
    model, folder = deploy_models.folder("llama2-7b")
    m, tok = OrtModel(folder), deploy_models.tokenizer()
    free = m.generate([PROMPTS[0]], 10, temperature=0.0, ignore_eos=True)[0, 7:].tolist()
    stop = free[3]
    got = m.generate(PROMPTS, 10, temperature=0.0, stop=[stop])
    want = generate(model, tok, PROMPTS, 10, temperature=0.0, stop=[stop])
    np.testing.assert_array_equal(got, want.numpy())
    row = got[0, 7:].tolist()
    assert row[:free.index(stop) + 1] == free[:free.index(stop) + 1] and set(row[free.index(stop) + 1:]) <= {m.pad}
    texts = ["the quick brown", "a model"]
    np.testing.assert_array_equal(m.generate(texts, 6, temperature=0.0),
                                  generate(model, tok, texts, 6, temperature=0.0).numpy())
    # I/O binding: the presents stay OrtValues on the session's device and are bound as the next pasts
    from plmgraph.runtime import _Stepper

    step = _Stepper(m, 1)
    ids = np.array([[5, 6, 7]])
    step(ids, np.ones((1, 3), np.int64), ids)
    assert step.presents is not None and len(step.presents) == 4
    assert all(v.device_name().lower() == m.device for v in step.presents)
    assert step.presents[0].shape() == [1, 4, 3, 16]


def test_providers_best_first_and_a_missing_one_named():
    assert ort_providers()[-1] == "CPUExecutionProvider"
    assert ort_providers("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort_providers():
        with pytest.raises(InputError, match=r"--provider 'cuda' is not available.*available: cpu"):
            ort_providers("cuda")


def test_bad_inputs_at_run_time_are_named():
    _, folder = deploy_models.folder("llama2-7b")
    m = OrtModel(folder)
    feed = m.complete(np.array([[1, 2, 3]]))
    assert list(feed) == ["input_ids", "attention_mask"] + m.past  # rotary: no position_ids (onnx.signature)
    with pytest.raises(InputError, match=r"no input 'input_idz'; its inputs are input_ids, attention_mask"):
        m.forward({**feed, "input_idz": feed["input_ids"]})
    with pytest.raises(InputError, match=r"no input 'position_ids'; its inputs are input_ids, attention_mask, "
                                         r"past_key_values.0.key"):
        m.forward({**feed, "position_ids": np.zeros((1, 3), np.int64)})
    with pytest.raises(InputError, match=r"missing input attention_mask"):
        m.forward({k: v for k, v in feed.items() if k != "attention_mask"})
    with pytest.raises(InputError, match=r"input input_ids must have 2 dimensions \[batch, seq\], got shape \[3\]"):
        m.forward({**feed, "input_ids": np.array([1, 2, 3])})
    bad = {**feed, "past_key_values.0.key": np.zeros((1, 3, 0, 16), np.float32)}
    with pytest.raises(InputError, match=r"past_key_values.0.key must have shape \[batch, 4, past, 16\].*"
                                         r"dimension 1 is 3, not 4"):
        m.forward(bad)
    with pytest.raises(InputError, match=r"attention_mask has batch = 2 .* but input_ids has batch = 1"):
        m.forward({**feed, "attention_mask": np.ones((2, 3), np.int64)})
    with pytest.raises(InputError, match=r"must hold integers"):
        m.forward({**feed, "input_ids": np.array([[1.5, 2, 3]])})
    with pytest.raises(InputError, match=r"token id 300 is outside the vocabulary \(0..299\)"):
        m.generate([[1, 300]], 2)
    with pytest.raises(InputError, match=r"top_p in \(0, 1\]"):
        m.generate([[1, 2]], 2, top_p=0)
    with pytest.raises(InputError, match=r"fills the model's 64 positions"):
        m.generate([list(range(64))], 2)


@pytest.mark.parametrize("name", ["t5-small"])
def test_encoder_decoder_file_generates_pytorchs_tokens(tmp_path, name):
    import plmgraph as pg

    model = deploy_models.model(name, layers=1)
    path = pg.export_onnx(model, tmp_path / f"{name}.onnx", verify=False)
    m = OrtModel(path)
    prompts = [[5, 6, 7, 8, 9], [20, 21, 22]]
    got = m.generate(prompts, 8, temperature=0.0)
    np.testing.assert_array_equal(got, generate(model, None, prompts, 8, temperature=0.0).numpy())
    assert got.shape == (2, 9) and (got[:, 0] == 0).all() and len(set(got[0, 1:].tolist())) > 1
    sampled = m.generate(prompts, 8, top_k=10, temperature=0.9, seed=7)
    np.testing.assert_array_equal(sampled, generate(model, None, prompts, 8, top_k=10, temperature=0.9,
                                                    seed=7).numpy())
