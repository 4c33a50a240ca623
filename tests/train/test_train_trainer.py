"""The trainer: exact resume, Ctrl-C checkpoints, checkpoint contents (no pickle), schedule, bad input."""

import json

import pytest
import torch
from helpers import pydoc_corpus

import plmgraph as pg
from plmgraph.errors import CheckpointError, InputError
from plmgraph.train.trainer import TrainConfig, Trainer, latest_checkpoint, load_run_model

SIZES = "layers=2,hidden=32,heads=2,vocab=512,max_positions=64"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A slice of Python's own documentation (pydoc_data.topics) in BERT's format."""
    return pydoc_corpus(tmp_path_factory.mktemp("data"))


def cfg(**kw):
    base = dict(steps=8, batch_size=4, seq_len=32, lr=3e-3, warmup=2, checkpoint_every=4, eval_batches=2)
    base.update(kw)
    return TrainConfig(**base)


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.parametrize("name", ["gpt2", "bert-base"])
def test_resume_equals_uninterrupted(tmp_path, corpus, name):
    spec = pg.load_spec(name, [SIZES])
    full = Trainer.create(spec, tmp_path / "full", corpus, cfg())
    full.run_steps()

    def stop_at_3(m):
        if m["step"] == 3:
            raise KeyboardInterrupt  # what Ctrl-C does inside the loop

    # The same tokenizer: WordPiece training picks among pieces tied at the vocabulary cut in hash
    # order, so two trainings on one corpus can differ by a piece (tokenizer.py renumbers, it cannot
    # choose); what this test compares is the trainer's resume.
    part = Trainer.create(spec, tmp_path / "part", corpus, cfg(), tokenizer=tmp_path / "full" / "tokenizer.json")
    r = part.run_steps(on_step=stop_at_3)
    assert r.interrupted and r.step == 3 and latest_checkpoint(tmp_path / "part").name == "step-000003"
    again = Trainer.resume(tmp_path / "part")
    assert again.step == 3
    again.run_steps()
    assert losses(tmp_path / "part") == losses(tmp_path / "full")  # bit-for-bit on the CPU
    a = dict(full.model.named_parameters())
    for n, p in again.model.named_parameters():
        assert torch.equal(p, a[n]), n


def test_checkpoint_contents_are_safetensors_and_json(tmp_path, corpus):
    spec = pg.load_spec("gpt2", [SIZES])
    t = Trainer.create(spec, tmp_path / "run", corpus, cfg(steps=4, keep=1))
    t.run_steps()
    run = tmp_path / "run"
    ck = latest_checkpoint(run)
    assert sorted(p.name for p in ck.iterdir()) == ["model.safetensors", "optimizer.safetensors", "spec.yaml",
                                                    "state.json"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000004"]  # keep=1
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "tokenizer.json").is_file()
    state = json.loads((ck / "state.json").read_text())
    assert state["step"] == 4 and state["position"] == 16
    model = pg.load(ck)
    assert model.num_params() == t.model.num_params()
    m2, tok = load_run_model(run)
    assert tok.vocab_size <= 512
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s"} <= set(rows[0])
    assert "perplexity" in rows[-1]["eval"]


def test_schedule_warmup_then_cosine():
    c = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr=0.1)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(9) == pytest.approx(1.0)
    assert c.lr_at(10) == pytest.approx(1.0) and c.lr_at(100) == pytest.approx(0.1)
    assert c.lr_at(55) == pytest.approx(0.55)
    lin = TrainConfig(steps=100, warmup=0, lr=1.0, min_lr=0.0, schedule="linear")
    assert lin.lr_at(50) == pytest.approx(0.5)


def test_accumulation_and_bf16_run(tmp_path, corpus):
    spec = pg.load_spec("gpt2", [SIZES])
    t = Trainer.create(spec, tmp_path / "run", corpus, cfg(steps=2, accumulate=2, bf16=True, held_out=0.0))
    r = t.run_steps()
    assert r.step == 2 and t.position == 16 and r.eval is None


def test_bad_runs_are_clear_errors(tmp_path, corpus):
    spec = pg.load_spec("gpt2", [SIZES])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="already holds files"):
        Trainer.create(spec, tmp_path / "x", corpus, cfg())
    with pytest.raises(CheckpointError, match="not a plmgraph training run"):
        Trainer.resume(tmp_path / "x")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(InputError, match="the corpus is empty"):
        Trainer.create(spec, tmp_path / "r1", str(empty), cfg())
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"abc\0def")
    with pytest.raises(InputError, match="binary"):
        Trainer.create(spec, tmp_path / "r2", str(binary), cfg())
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        Trainer.create(spec, tmp_path / "r3", str(latin), cfg())
    short = tmp_path / "s.txt"
    short.write_text("a few words only\n")
    with pytest.raises(InputError, match="shorter than one sequence"):
        Trainer.create(spec, tmp_path / "r4", str(short), cfg(held_out=0.0))
    big = pg.load_spec("gpt2", ["layers=2000,hidden=8192,heads=64"])
    with pytest.raises(InputError, match=r"needs about .* GiB .*weights .* this machine has"):
        Trainer.create(big, tmp_path / "r5", corpus, cfg())
    assert not (tmp_path / "r5").exists()


def test_tokenizer_bigger_than_the_vocab_is_refused(tmp_path, corpus):
    spec = pg.load_spec("gpt2", [SIZES])
    t = Trainer.create(spec, tmp_path / "run", corpus, cfg(steps=1))
    small = pg.load_spec("gpt2", ["layers=2,hidden=32,heads=2,vocab=300,max_positions=64"])
    with pytest.raises(InputError, match=r"tokenizer has 512 tokens but gpt2's vocabulary has 300 rows"):
        Trainer.create(small, tmp_path / "run2", corpus, cfg(), tokenizer=tmp_path / "run" / "tokenizer.json")
    del t
