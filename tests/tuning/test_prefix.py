"""Prefix tuning (plmgraph/kinds/tuning/prefix.py, plmgraph/tuning/prefix.py) against Hugging Face PEFT.

The reference is `peft.PeftModel` on the Hugging Face model: a prefix written by plmgraph in PEFT's
PREFIX_TUNING layout gives PEFT the same logits, a PEFT-trained prefix (with its reparameterisation
MLP) read by plmgraph gives PEFT's logits, and greedy decoding with the KV cache is PEFT's token for
token.  Besides: cached steps equal the full forward, only the prefix trains, the counts agree, and
bad options are one clear message.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.hf_cmds  # noqa: F401  (registers import-hf, export-hf)
from plmgraph.cli import app
from plmgraph.errors import InputError
from plmgraph.kinds import KINDS
from plmgraph.spec.errors import SpecError
from plmgraph.tuning import TuningError
from plmgraph.tuning.core import write_hf
from plmgraph.tuning.prefix import peft_tuning

tf = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

VOCAB = 101
runner = CliRunner()


def _hf(kind: str):  # noqa: ANN202
    torch.manual_seed(0)
    if kind == "gpt2":
        hf = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                              n_inner=48))
    else:  # LLaMA with grouped kv heads: the prefix has kv_heads heads
        hf = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                                                max_position_embeddings=64))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_((1 + 0.2 * torch.randn(p.shape, generator=g)) if p.dim() == 1 and name.endswith("weight")
                    else 0.15 * torch.randn(p.shape, generator=g))
    return hf.eval()


def _tuned(hf, tmp_path, **opts):  # noqa: ANN001, ANN202
    """The HF model imported by plmgraph, with prefix tuning; the prefix randomised."""
    hf.save_pretrained(tmp_path / "hf")
    base = pg.from_hf(tmp_path / "hf")
    tuning = ", ".join(f"{k}: {'null' if v is None else v}" for k, v in {"length": 3, **opts}.items())
    model = pg.build(pg.load_spec(base.spec, f"tuning={{kind: prefix, {tuning}}}"), seed=0)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("prefix_tuning.") for k in missing)
    with torch.no_grad():
        for p in model.prefix_tuning.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def _batch(T: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(3, VOCAB, (2, T), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, T - 2:] = 0
    return x, mask


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_peft_reads_our_prefix_and_gives_the_same_logits(arch, tmp_path):
    model = _tuned(_hf(arch), tmp_path, projection=16)  # the MLP's output is what PEFT stores
    assert write_hf(model, tmp_path / "out")[-1] == "adapter/adapter_model.safetensors"  # what export-hf writes
    cfg = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "PREFIX_TUNING" and cfg["prefix_projection"] is False
    hf = tf.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    ref = peft.PeftModel.from_pretrained(hf, str(tmp_path / "out" / "adapter")).eval()
    x, mask = _batch()
    with torch.no_grad():
        want = ref(input_ids=x, attention_mask=mask).logits
        got = model(x, attention_mask=mask).logits
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=1e-5)
    # greedy decoding with the KV cache (the prefix re-attached at every step) is greedy decoding by PEFT's full
    # forward, token for token (PEFT's own `generate` is not the reference: with transformers 5 its first cached
    # step already differs from PEFT's forward on the same sequence)
    prompt = x[:1, :4]
    want_ids = prompt
    with torch.no_grad():
        for _ in range(6):
            nxt = ref(input_ids=want_ids, attention_mask=torch.ones_like(want_ids)).logits[:, -1].argmax(-1)
            want_ids = torch.cat([want_ids, nxt[:, None]], 1)
    got_ids = pg.generate(model, prompt=prompt, max_new_tokens=6, do_sample=False)
    assert got_ids.tolist() == want_ids.tolist()


def test_we_read_a_peft_trained_prefix_with_its_mlp(tmp_path):
    hf = _hf("llama")
    hf.save_pretrained(tmp_path / "base")
    cfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=True,
                                  encoder_hidden_size=24)
    trained = peft.get_peft_model(copy.deepcopy(hf), cfg)
    with torch.no_grad():
        for p in trained.prompt_encoder.parameters():
            p.normal_(0, 0.5)
    trained.save_pretrained(tmp_path / "adapter")
    r = runner.invoke(app, ["import-hf", str(tmp_path / "base"), "--adapter", str(tmp_path / "adapter"),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0 and "trainable" in r.output, r.output
    model = pg.load(tmp_path / "out")
    assert model.spec.tuning.model_dump() == {"kind": "prefix", "length": 4, "projection": None}
    ref = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    x, mask = _batch()
    with torch.no_grad():
        want, got = ref(input_ids=x, attention_mask=mask).logits, model.eval()(x, attention_mask=mask).logits
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], rtol=1e-4, atol=1e-5)


def test_a_peft_adapter_for_another_model_is_refused(tmp_path):
    model = _tuned(_hf("gpt2"), tmp_path)
    write_hf(model, tmp_path / "out")
    other = _hf("llama")
    other.save_pretrained(tmp_path / "other")
    r = runner.invoke(app, ["import-hf", str(tmp_path / "other"), "--adapter", str(tmp_path / "out" / "adapter"),
                            "-o", str(tmp_path / "bad")])
    assert r.exit_code == 1 and "Traceback" not in r.output and not (tmp_path / "bad").exists()
    assert "made for another model: it has 2 layers of 32 key/value features" in r.output, r.output
    config, tensors = KINDS["tuning/prefix"].to_peft(model, model.tuning)
    with pytest.raises(TuningError, match="not a prefix-tuning adapter: peft_type 'LORA'"):
        peft_tuning({**config, "peft_type": "LORA"}, tensors, model.graph)
    with pytest.raises(TuningError, match="holds one prompt_embeddings tensor; this one has"):
        peft_tuning(config, {**tensors, "x": tensors["prompt_embeddings"]}, model.graph)


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b", "bert-base"])
def test_cached_steps_equal_the_full_forward_and_counts_agree(name):
    spec = pg.load_spec(tiny(name), "tuning={kind: prefix, length: 5, projection: 32}")
    model = pg.build(spec, seed=0).eval()
    st = pg.stats(spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert st.trainable == model.tuning.trainable == trainable == sum(
        p.numel() for p in model.prefix_tuning.parameters())
    assert st.params == sum(p.numel() for p in model.parameters())
    x = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(x)
        if spec.family == "encoder":
            base = pg.build(tiny(name), seed=0).eval()
            assert not torch.allclose(full.last_hidden_state, base(x).last_hidden_state)  # the prefix is seen
            return
        a = model(x[:, :5], use_cache=True)
        assert a.past_key_values[0][0].shape[2] == 5  # the cache holds the real tokens only
        b = model(x[:, 5:6], past_key_values=a.past_key_values, use_cache=True)
        c = model(x[:, 6:], past_key_values=b.past_key_values, use_cache=True)
    torch.testing.assert_close(torch.cat([a.logits, b.logits, c.logits], 1), full.logits, rtol=1e-5, atol=1e-5)


def test_left_padded_generation_is_the_same_with_and_without_the_cache():
    model = pg.build(pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 4, projection: null}"), seed=0)
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    a = pg.generate(model, prompt=prompts, max_new_tokens=6, do_sample=False, use_cache=True)
    b = pg.generate(model, prompt=prompts, max_new_tokens=6, do_sample=False, use_cache=False)
    assert a.tolist() == b.tolist()
    alone = pg.generate(model, prompt=[prompts[1]], max_new_tokens=6, do_sample=False)
    assert a[1, 3:].tolist() == alone[0].tolist()  # a padded row generates what it would alone


def test_only_the_prefix_trains():
    model = pg.build(pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 4, projection: 16}"), seed=0)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("prefix_tuning.")}
    tuned = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("prefix_tuning.")}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(3, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # dropout draws from the global generator: the same losses in any test order
    model.train()
    losses = []
    for _ in range(3):
        loss = model(x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    now = dict(model.named_parameters())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(now[n], t) for n, t in base.items())
    assert all(not torch.equal(now[n], t) for n, t in tuned.items())
    assert losses[-1] < losses[0]


def test_a_deep_copy_runs_its_own_prefix():
    model = pg.build(pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 4}"), seed=0).eval()
    twin = copy.deepcopy(model)
    x = torch.randint(3, 100, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(twin(x).logits, model(x).logits, rtol=0, atol=0)
        twin.prefix_tuning.embedding.weight.add_(1.0)
        assert not torch.allclose(twin(x).logits, model(x).logits)


def test_words_diff_and_plan():
    spec = pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 4, projection: 16}")
    assert "tuning: full → prefix (length 4, projection 16)" in pg.diff(tiny("gpt2"), spec).lines()
    from exporters.graphviz import arch_dot

    assert "tuning: prefix tuning" in arch_dot(spec).source and "length 4, projection 16" in arch_dot(spec).source
    p = pg.tuning.plan(spec)
    assert p.added == {"prefix_tuning.embedding.weight": (4, 64), "prefix_tuning.transform.0.weight": (16, 64),
                       "prefix_tuning.transform.0.bias": (16,), "prefix_tuning.transform.2.weight": (2 * 2 * 64, 16),
                       "prefix_tuning.transform.2.bias": (2 * 2 * 64,)}
    direct = pg.tuning.plan(pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 4, projection: null}"))
    assert direct.added == {"prefix_tuning.embedding.weight": (4, 2 * 2 * 64)}


def test_bad_options_and_models_are_one_clear_message():
    with pytest.raises(SpecError, match=r"tuning.length: must be greater than 0, got 0"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 0}")
    # what prefix tuning cannot do is refused by the validator, not at build
    with pytest.raises(SpecError, match=r"tuning.length: prefix tuning: length 64 leaves no position for the text "
                                        r"\(gpt2 has max_positions 64, .*choose a length below 64"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 64}")
    for name, why in [("t5-small", "encoder-decoder models"), ("albert-base", "shared layers"),
                      ("xlnet-base", r"attention/two_stream \(relative attention\)")]:
        with pytest.raises(SpecError, match=f"tuning.kind: prefix tuning is not compiled for {why}"):
            pg.load_spec(tiny(name), "tuning={kind: prefix}")
    for pos, why in [("alibi", "alibi positions"), ("t5_relative", "t5_relative positions")]:
        with pytest.raises(SpecError, match=f"tuning.kind: .*{why}"):
            pg.load_spec(tiny("gpt2"), [f"position={{kind: {pos}}}", "tuning={kind: prefix, length: 2}"])


def test_the_prefix_counts_against_max_positions_at_run_time():
    model = pg.build(pg.load_spec(tiny("gpt2"), "tuning={kind: prefix, length: 10}"), seed=0)  # 64 positions
    model(torch.zeros(1, 54, dtype=torch.long))
    with pytest.raises(InputError, match=r"the 10 prefix positions \+ 55 tokens .* exceed max_positions \(64\); "
                                         r"at most 54 tokens fit"):
        model(torch.zeros(1, 55, dtype=torch.long))
