"""Evaluation and encoder-decoder decoding: sliding-window perplexity against an independent
computation, the cross-attention K/V cache (projected once per generation, equal to recomputing
them, refreshed when the weights change), and the trainer's fp16 / checkpointing / compile /
layer-decay options."""

import math

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile.attention import CrossAttention
from plmgraph.errors import InputError
from plmgraph.train.evaluate import perplexity
from plmgraph.train.generate import generate
from plmgraph.train.trainer import TrainConfig, Trainer, param_groups


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return pg.build(tiny("gpt2", max_positions=32), seed=0).eval()


def token_logprob(model, context, target):
    """log p(target | context), one forward pass over the context alone."""
    with torch.no_grad():
        logits = model(torch.tensor([context])).logits[0, -1].double()
    return float(logits.log_softmax(-1)[target])


@pytest.mark.parametrize("window, stride", [(16, 15), (16, 5), (16, 1), (32, 8)])
def test_sliding_window_perplexity_is_exp_of_the_mean_token_loss(gpt, window, stride):
    ids = torch.randint(3, 128, (61,), generator=torch.Generator().manual_seed(0)).tolist()
    got = perplexity(gpt, ids, window=window, stride=stride)
    # independently, one forward pass per token: target t is in chunk (t - 1) // stride, scored by the
    # window of at most `window` tokens that ends with that chunk
    nll = []
    for t in range(1, len(ids)):
        end = min(1 + ((t - 1) // stride + 1) * stride, len(ids))
        nll.append(-token_logprob(gpt, ids[max(0, end - window):t], ids[t]))
    assert got["tokens"] == len(ids) - 1
    assert got["loss"] == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)


def test_perplexity_refuses_what_it_cannot_score(gpt):
    with pytest.raises(InputError, match="need 1 <= stride <= window"):
        perplexity(gpt, list(range(3, 40)), window=8, stride=9)
    with pytest.raises(InputError, match="longer than gpt2's 32 positions"):
        perplexity(gpt, list(range(3, 40)), window=40, stride=8)
    with pytest.raises(InputError, match="needs a causal decoder; bert-base is an encoder"):
        perplexity(pg.build(tiny("bert-base")), list(range(3, 40)))


@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(0)
    return pg.build(tiny("t5-small"), seed=0).eval()


def count_kv(model):
    calls = []
    hooks = [m.kv.register_forward_hook(lambda *a: calls.append(1)) for m in model.modules()
             if isinstance(m, CrossAttention)]
    return calls, hooks


def test_cross_attention_keys_and_values_are_projected_once_per_generation(t5, monkeypatch):
    x = torch.randint(3, 128, (2, 9), generator=torch.Generator().manual_seed(1))
    layers = sum(isinstance(m, CrossAttention) for m in t5.modules())
    calls, hooks = count_kv(t5)
    cached = generate(t5, None, x, max_new_tokens=12, eos_token_id=-1)
    assert len(calls) == layers  # once, in the first forward (the encoder pass); every step reuses them
    calls.clear()
    original = CrossAttention.memory_kv

    def uncached(self, memory):
        self.__dict__.pop("_memory_cache", None)
        return original(self, memory)

    monkeypatch.setattr(CrossAttention, "memory_kv", uncached)
    recomputed = generate(t5, None, x, max_new_tokens=12, eos_token_id=-1)
    assert len(calls) == 13 * layers  # every step projects the encoder output again
    assert torch.equal(cached, recomputed) and cached.shape == (2, 13)
    for h in hooks:
        h.remove()


def test_cross_attention_cache_follows_the_weights(t5):
    x = torch.randint(3, 128, (1, 7), generator=torch.Generator().manual_seed(2))
    dec = torch.zeros(1, 1, dtype=torch.long)
    model = pg.build(t5.spec, seed=0).eval()
    with torch.no_grad():
        memory = model(x, decoder_input_ids=dec).encoder_last_hidden_state
        first = model(decoder_input_ids=dec, encoder_outputs=memory).logits
        cross = next(m for m in model.modules() if isinstance(m, CrossAttention))
        cross.kv.weight.mul_(1.5)  # an optimizer step changes the weights in place
        after = model(decoder_input_ids=dec, encoder_outputs=memory).logits
        fresh = model(decoder_input_ids=dec, encoder_outputs=memory.clone()).logits
    assert not torch.equal(first, after)
    torch.testing.assert_close(after, fresh, rtol=0, atol=0)


# ---------------------------------------------------------------- trainer options

def test_layer_wise_learning_rate_decay_groups():
    model = pg.build(tiny("bert-base", layers=3))
    groups = param_groups(model, TrainConfig(layer_decay=0.5))
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale[id(named["embed.token.weight"])] == 0.5 ** 4
    for i in range(3):
        assert scale[id(named[f"encoder.layers.{i}.attn.qkv.weight"])] == 0.5 ** (3 - i)
    assert scale[id(named["heads.nsp.weight"])] == 1.0
    assert len(scale) == len(named)
    assert {g["lr_scale"] for g in param_groups(model, TrainConfig())} == {1.0}
    with pytest.raises(InputError, match="layer_decay must be in"):
        TrainConfig(layer_decay=1.5)
    with pytest.raises(InputError, match="choose one of bf16 and fp16"):
        TrainConfig(bf16=True, fp16=True)


def test_fp16_checkpointing_and_layer_decay_train(tmp_path):
    spec = pg.load_spec("gpt2", ["layers=2,hidden=32,heads=2,vocab=512,max_positions=32"])
    cfg = TrainConfig(steps=4, batch_size=2, seq_len=16, lr=3e-3, warmup=1, fp16=True, checkpointing=True,
                      layer_decay=0.8, checkpoint_every=2, eval_batches=1)
    t = Trainer.create(spec, tmp_path / "run", "pydoc", cfg)
    assert all(s.checkpointing for s in t.model.stacks())
    result = t.run_steps()
    assert math.isfinite(result.last["loss"]) and t.scaler.is_enabled()
    lrs = sorted({g["lr"] for g in t.opt.param_groups})
    assert len(lrs) == 4 and lrs[-1] == pytest.approx(cfg.lr_at(3))  # embeddings, 2 blocks, heads
    again = Trainer.resume(tmp_path / "run", steps=5)
    assert again.scaler.get_scale() == t.scaler.get_scale()


def test_compile_wraps_the_model(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    spec = pg.load_spec("gpt2", ["layers=1,hidden=32,heads=2,vocab=512,max_positions=32"])
    t = Trainer.create(spec, tmp_path / "run", "pydoc", TrainConfig(steps=1, batch_size=2, seq_len=16, compile=True))
    assert compiled == [t.model]


# ---------------------------------------------------------------- corpora larger than memory

def test_token_file_round_trip(tmp_path):
    from plmgraph.train.data import TokenFile

    small = TokenFile.write(tmp_path / "a.bin", [[1, 2, 3], [65535, 0]], vocab=65536)
    assert small.ids.dtype.name == "uint16" and len(small) == 5 and small[1:4] == [2, 3, 65535]
    big = TokenFile.write(tmp_path / "b.bin", [[70000, 5]], vocab=100000)
    assert big.ids.dtype.name == "uint32" and big[0:2] == [70000, 5]
    assert (tmp_path / "a.bin").stat().st_size == 10


def test_memmap_run_streams_a_folder_and_resumes(tmp_path):
    from pydoc_data.topics import topics

    from plmgraph.train.data import TokenBlocks, load_corpus
    from plmgraph.train.objectives import collator_for

    folder = tmp_path / "corpus"
    folder.mkdir()
    for k in sorted(topics)[:8]:
        (folder / f"{k}.txt").write_text(topics[k].strip().replace("\n\n", "\n") + "\n", encoding="utf-8")
    spec = pg.load_spec("gpt2", ["layers=1,hidden=32,heads=2,vocab=512,max_positions=32"])
    cfg = TrainConfig(steps=4, batch_size=2, seq_len=16, warmup=1, checkpoint_every=2, eval_batches=1, memmap=True,
                      held_out=0.0)
    full = Trainer.create(spec, tmp_path / "full", str(folder), cfg)
    assert isinstance(full.examples, TokenBlocks) and (tmp_path / "full" / "tokens-train.bin").is_file()
    # the same blocks as the in-memory layout of the same corpus
    memory = collator_for(spec, full.tok).examples(load_corpus(folder), 16)
    assert len(memory) == len(full.examples)
    assert all(memory[i].ids == full.examples[i].ids for i in range(0, len(memory), 7))
    full.run_steps()

    def stop_at_2(m):
        if m["step"] == 2:
            raise KeyboardInterrupt

    part = Trainer.create(spec, tmp_path / "part", str(folder), cfg)
    part.run_steps(on_step=stop_at_2)
    again = Trainer.resume(tmp_path / "part")
    again.run_steps()
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    with pytest.raises(InputError, match=r"memory-mapped corpus holds token ids .* only, and unit 'whole_word'"):
        Trainer.create(pg.load_spec("bert-base", ["layers=1,hidden=32,heads=2,vocab=512,max_positions=32",
                                                  "objectives.0.unit=whole_word"]), tmp_path / "b", str(folder), cfg)
    assert not (tmp_path / "b").exists()  # nothing half-written


def losses(run):
    import json

    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_cli_trains_and_evaluates_vit_on_digits_and_a_memmap_run(tmp_path):
    import json

    pytest.importorskip("sklearn")
    from typer.testing import CliRunner

    import plmgraph.cli.train_cmds  # noqa: F401
    from plmgraph.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    r = invoke("train", "vit-base", "-O", "layers=1,hidden=32,heads=2", "-O", "embeddings.patches.image_size=8",
               "-O", "embeddings.patches.patch_size=4", "-O", "embeddings.patches.channels=1", "-O",
               "heads.0.labels=10", "--data", "digits", "--steps", "2", "--batch-size", "8", "-o", tmp_path / "vit")
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and not (tmp_path / "vit" / "tokenizer.json").exists()
    r = invoke("eval", tmp_path / "vit", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["examples"] == 90 and "accuracy" in json.loads(r.output)  # 5 % of 1,797 held out
    r = invoke("train", "gpt2", "-O", "layers=1,hidden=32,heads=2,vocab=512,max_positions=32", "--data", "pydoc",
               "--memmap", "--fp16", "--layer-decay", "0.9", "--steps", "2", "--batch-size", "2", "--seq-len", "16",
               "-o", tmp_path / "mm")
    assert r.exit_code == 0, r.output
    r = invoke("eval", tmp_path / "mm", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tokens"] > 0
