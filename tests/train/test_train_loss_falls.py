"""Loss falls within a few dozen steps on the real offline corpus (Python's own documentation)."""

import json

import pytest

import plmgraph as pg
from plmgraph.train.trainer import TrainConfig, Trainer

SIZES = "layers=2,hidden=64,heads=4,vocab=1024,max_positions=64"


@pytest.mark.parametrize("name, extra, drop", [
    ("gpt2", [], 0.6),            # CLM
    ("bert-base", [], 0.5),       # MLM + NSP
    ("t5-small", ["objectives.0.sentinels=20"], 0.6),  # span corruption
])
def test_loss_falls_on_pydoc(tmp_path, name, extra, drop):
    spec = pg.load_spec(name, [SIZES, *extra])
    cfg = TrainConfig(steps=40, batch_size=8, seq_len=64, lr=3e-3, warmup=4, checkpoint_every=1000, eval_batches=4)
    t = Trainer.create(spec, tmp_path / "run", "pydoc", cfg)
    result = t.run_steps()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < first - drop, losses
    assert result.eval["loss"] < first - drop / 2
