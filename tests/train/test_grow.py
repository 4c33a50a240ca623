"""Progressive stacking (`plmgraph grow`, `pg.grow`): the copy rule, the spec diff, shared layers, the
grown run trains on through the same trainer and beats a fresh model as deep, and bad input."""

import json

import pytest
import torch
from helpers import pydoc_corpus
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.train_cmds  # noqa: F401  (registers train, grow)
from plmgraph.cli import app
from plmgraph.errors import InputError
from plmgraph.train.trainer import TrainConfig, Trainer, latest_checkpoint

TINY = "hidden=32,heads=2,vocab=512,max_positions=64,ffn=64"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return pydoc_corpus(tmp_path_factory.mktemp("data"))


def cfg(**kw):
    base = dict(steps=12, batch_size=8, seq_len=32, lr=3e-3, warmup=3, checkpoint_every=100, eval_batches=4)
    base.update(kw)
    return TrainConfig(**base)


def params(model):
    return {n: p.detach() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["bert-base", "gpt2"])
def test_layer_i_plus_n_is_a_copy_of_layer_i(name):
    model = pg.build(pg.load_spec(name, [f"layers=3,{TINY}"]), seed=0)
    deeper = pg.grow(model, 6)
    stack = next(iter(deeper.spec.stacks))
    assert deeper.spec.stacks[stack].layers == 6 and model.spec.stacks[stack].layers == 3
    old, new = params(model), params(deeper)
    assert len(new) == len(old) + 3 * len([n for n in old if f"{stack}.layers.0." in n])
    for n, t in new.items():
        if f"{stack}.layers." in n:
            i = int(n.split(f"{stack}.layers.")[1].split(".")[0])
            src = n.replace(f"{stack}.layers.{i}.", f"{stack}.layers.{i % 3}.")
            assert torch.equal(t, old[src]), n
        else:
            assert torch.equal(t, old[n]), n  # embeddings, final norm, heads: as they were
    # a copy, not an alias: training the grown model leaves the old one alone
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(new.values(), old.values(), strict=False))
    # the graph transformation: the spec differs in the number of layers and nothing else
    changes = pg.diff(model.spec, deeper.spec).changes
    assert [(c.axis, c.what, c.before, c.after) for c in changes] == [("dims", "layers", "3", "6")]
    assert pg.resolve(deeper.spec).num_params() == deeper.num_params()


def test_growing_by_less_than_n_stacks_the_first_layers():
    model = pg.build(pg.load_spec("gpt2", [f"layers=3,{TINY}"]), seed=0)
    deeper = pg.grow(model, 5)
    old, new = params(model), params(deeper)
    for i, src in [(3, 0), (4, 1)]:
        assert torch.equal(new[f"decoder.layers.{i}.attn.qkv.weight"], old[f"decoder.layers.{src}.attn.qkv.weight"])


def test_stacking_keeps_the_function_of_shared_layers():
    """ALBERT (every layer the one shared block): the grown model applies that same block 2N times."""
    spec = pg.load_spec("albert-base", [f"layers=2,{TINY}", "embeddings.dropout=0"])
    model = pg.build(spec, seed=0).eval()
    deeper = pg.grow(model, 4).eval()
    assert deeper.num_params() == model.num_params()
    assert [(c.what, c.before, c.after) for c in pg.diff(model.spec, deeper.spec).changes] == [("layers", "2", "4")]
    # the same output as applying the old model's stack twice: build a 4-layer model with the same weights
    ref = pg.build(pg.load_spec(spec, ["layers=4"]), device="meta")
    ref.load_state_dict(model.state_dict(), assign=True)
    ids = torch.randint(5, 500, (2, 9))
    torch.testing.assert_close(deeper(ids).logits, ref.eval()(ids).logits, rtol=0, atol=0)


def test_sharing_groups_keep_their_size():
    spec = pg.load_spec("albert-base", [f"layers=4,{TINY}", "sharing.kind=groups", "sharing.groups=2"])
    model = pg.build(spec, seed=0)
    deeper = pg.grow(model, 8)
    assert deeper.spec.sharing.groups == 4 and deeper.spec.encoder.layers == 8
    old, new = params(model), params(deeper)
    key = "encoder.layers.{}.attn.qkv.weight"
    assert sorted(n for n in new if n.endswith("attn.qkv.weight")) == [key.format(i) for i in (0, 2, 4, 6)]
    for i, src in [(0, 0), (2, 2), (4, 0), (6, 2)]:
        assert torch.equal(new[key.format(i)], old[key.format(src)])
    with pytest.raises(InputError, match="groups of 2 layers.*multiple of 2"):
        pg.grow(model, 5)


def test_bad_layers_are_refused():
    model = pg.build(pg.load_spec("gpt2", [f"layers=2,{TINY}"]), device="meta")
    for bad in (2, 1, 0):
        with pytest.raises(InputError, match="must be more than 2"):
            pg.grow(model, bad)
    with pytest.raises(InputError, match="whole number"):
        pg.grow(model, 4.0)


def evaluated(trainer):
    trainer.run_steps()
    return trainer.evaluate()["loss"]


def test_grown_run_trains_on_and_beats_a_fresh_deep_model(tmp_path, corpus):
    shallow_spec = pg.load_spec("gpt2", [f"layers=2,{TINY}"])
    shallow = Trainer.create(shallow_spec, tmp_path / "shallow", corpus, cfg())
    shallow.run_steps()
    r = CliRunner().invoke(app, ["grow", str(tmp_path / "shallow"), "--layers", "4", "-o", str(tmp_path / "deep")])
    assert r.exit_code == 0, r.output
    assert "layers: 2 → 4" in r.output
    deep = tmp_path / "deep"
    meta = json.loads((deep / "train.json").read_text())
    assert meta["grown_from"]["layers"] == {"decoder": 2} and meta["grown_from"]["to"] == 4
    ck = latest_checkpoint(deep)
    assert ck.name == "step-000000"
    assert json.loads((ck / "state.json").read_text())["position"] == 12 * 8  # the data goes on
    grown = pg.load(ck)
    assert grown.spec.decoder.layers == 4
    assert torch.equal(params(grown)["decoder.layers.3.mlp.up.weight"],
                       params(shallow.model)["decoder.layers.1.mlp.up.weight"])

    k = 4  # a few steps of each 4-layer model: same seed, schedule and tokenizer
    r = CliRunner().invoke(app, ["train", str(deep), "--steps", str(k)])  # the same trainer, fresh AdamW
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (deep / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if "loss" in x] == list(range(1, k + 1))
    grown_loss = rows[-1]["eval"]["loss"]
    fresh = Trainer.create(pg.load_spec("gpt2", [f"layers=4,{TINY}"]), tmp_path / "fresh", corpus, cfg(steps=k),
                           tokenizer=tmp_path / "shallow" / "tokenizer.json")
    fresh_loss = evaluated(fresh)  # held-out loss, as the grown run's
    assert grown_loss < fresh_loss - 0.1, (grown_loss, fresh_loss)


def test_cli_bad_input_writes_nothing(tmp_path, corpus):
    run = tmp_path / "run"
    t = Trainer.create(pg.load_spec("gpt2", [f"layers=2,{TINY}"]), run, corpus, cfg(steps=1))
    t.run_steps()

    def grow(*args):
        return CliRunner().invoke(app, ["grow", *map(str, args)])

    before = sorted(p.name for p in tmp_path.iterdir())
    for args, message in [
        ((run, "--layers", "2", "-o", tmp_path / "new"), "must be more than 2"),
        ((run, "--layers", "1", "-o", tmp_path / "new"), "must be more than 2"),
        ((tmp_path, "--layers", "4", "-o", tmp_path / "new"), "not a plmgraph training run"),
        ((tmp_path / "nope", "--layers", "4", "-o", tmp_path / "new"), "no such run folder"),
        ((run, "--layers", "4", "-o", run), "already exists"),
        ((run, "--layers", "4", "-o", run / "train.json" / "x"), "is a file"),
    ]:
        r = grow(*args)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, r.output
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
    r = grow(run, "--layers", "four", "-o", tmp_path / "new")
    assert r.exit_code == 2
