"""`torchrun --nproc-per-node 2 -m plmgraph train ... --strategy ddp|fsdp` on the gloo backend, against
one-process training on the same global batch; DCP checkpoints written by 2 processes resume in 1.

Two torchrun jobs (DDP for 6 steps, FSDP2 for 3) run side by side while the one-process reference
trains in this process.  Dropout is off and the schedule is constant after warmup, so the reference's
first 3 steps are the FSDP run's and its last 3 are what the FSDP checkpoint must resume into.

Tolerance: fp32 losses agree to 2e-5 (absolute) and weights to 1e-5: DDP averages the two ranks'
gradients and FSDP reduce-scatters them, which sums in another order than one process does.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import pydoc_corpus
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.train_cmds  # noqa: F401  (registers train)
from plmgraph.cli import app
from plmgraph.train.distributed import SHARDS
from plmgraph.train.trainer import TrainConfig, Trainer, latest_checkpoint, load_run_model

SIZES = ("layers=2,hidden=32,heads=2,vocab=512,max_positions=64,ffn=64,"
         "embeddings.dropout=0,block.dropout=0,attention.dropout=0")
CONFIG = dict(batch_size=4, seq_len=32, lr=3e-3, warmup=2, schedule="constant", checkpoint_every=3, eval_batches=2)
FLAGS = ["--batch-size", "4", "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--schedule", "constant",
         "--checkpoint-every", "3"]
ATOL = 2e-5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return pydoc_corpus(tmp_path_factory.mktemp("data"))


def torchrun(corpus, out, strategy, steps):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "plmgraph", "train", "gpt2", "-O", SIZES, "--data", corpus, "--steps", str(steps), "-o", str(out),
           "--strategy", strategy, *FLAGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("dist")
    jobs = {"ddp": (torchrun(corpus, root / "ddp", "ddp", 6), root / "ddp"),
            "fsdp": (torchrun(corpus, root / "fsdp", "fsdp", 3), root / "fsdp")}
    ref = Trainer.create(pg.load_spec("gpt2", [SIZES]), root / "ref", corpus, TrainConfig(steps=6, **CONFIG))
    ref.run_steps()
    done = {}
    for name, (proc, path) in jobs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        assert proc.returncode == 0, f"{name}: {stdout}\n{stderr[-4000:]}"
        done[name] = (path, stdout, stderr)
    return ref, done


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.parametrize("strategy,steps", [("ddp", 6), ("fsdp", 3)])
def test_two_processes_train_like_one(runs, strategy, steps):
    ref, done = runs
    path, stdout, stderr = done[strategy]
    got, want = losses(path), losses(ref.run)[:steps]
    assert len(got) == steps  # rank 0 alone writes the metrics
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=0, atol=ATOL)
    assert stdout.count("train loss") == 1 and f"{strategy} on 2 processes" in stderr  # rank 0 alone reports
    rows = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(x) for x in (ref.run / "metrics.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in rows if "loss" in r] == [r["tokens"] for r in ref_rows if "loss" in r][:steps]
    if strategy == "ddp":
        mine, _ = load_run_model(path)  # what eval and generate load: the DCP shards gathered into one model
        for n, p in ref.model.named_parameters():
            torch.testing.assert_close(dict(mine.named_parameters())[n], p.detach(), rtol=0, atol=1e-5)


def test_checkpoints_are_sharded_safetensors_without_pickle(runs):
    from safetensors import safe_open

    _, done = runs
    for strategy in ("ddp", "fsdp"):
        ck = latest_checkpoint(done[strategy][0])
        assert sorted(p.name for p in ck.iterdir()) == [SHARDS, "spec.yaml", "state.json"]
        files = sorted(p.name for p in (ck / SHARDS).iterdir())
        assert files == ["shard-00001-model-00001-of-00001.safetensors",
                         "shard-00002-model-00001-of-00001.safetensors"]  # one per rank, nothing else
        state = json.loads((ck / "state.json").read_text())
        assert state["world_size"] == 2 and state["strategy"] == strategy and state["format"] == "dcp"
    # FSDP: each rank holds half of every sharded tensor, and the header says where it goes
    ck = latest_checkpoint(done["fsdp"][0])
    rows = {}
    for f in sorted((ck / SHARDS).iterdir()):
        with safe_open(str(f), "pt") as st:
            info = json.loads(st.metadata()["DCP_SHARDING_INFO"])
            rows[f.name] = (st.get_slice("model.embed.token.weight").get_shape(),
                            info["model.embed.token.weight"]["saved_offsets"])
    assert sorted(rows.values()) == [([256, 32], [0, 0]), ([256, 32], [256, 0])]


def test_sharded_checkpoint_from_two_processes_resumes_in_one(runs):
    ref, done = runs
    path = done["fsdp"][0]
    assert latest_checkpoint(path).name == "step-000003"
    t = Trainer.resume(path, steps=6)
    assert t.step == 3 and t.position == 12 and not t.parallel.distributed
    t.run_steps()
    torch.testing.assert_close(torch.tensor(losses(path)), torch.tensor(losses(ref.run)), rtol=0, atol=ATOL)
    for n, p in ref.model.named_parameters():
        torch.testing.assert_close(dict(t.model.named_parameters())[n], p.detach(), rtol=0, atol=1e-5)
    assert (latest_checkpoint(path) / "model.safetensors").is_file()  # one process writes one file again


def test_strategies_refuse_without_torchrun(tmp_path, corpus, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    base = ["train", "gpt2", "-O", SIZES, "--data", corpus, "--steps", "2", "-o", str(tmp_path / "x")]
    for args, code, message in [
        (["--strategy", "fsdp"], 1, "torchrun"),
        (["--strategy", "ddp"], 1, "torchrun"),
        (["--strategy", "zero"], 2, "not one of: none, ddp, fsdp"),
        (["--cpu-offload"], 2, "FSDP option"),
        (["--strategy", "ddp", "--mixed-precision", "bf16"], 2, "FSDP option"),
        (["--strategy", "fsdp", "--mixed-precision", "fp8"], 2, "not one of: bf16, fp16"),
    ]:
        r = CliRunner().invoke(app, base + args)
        assert r.exit_code == code, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var, value in [("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "localhost"), ("MASTER_PORT", "1")]:
        monkeypatch.setenv(var, value)
    r = CliRunner().invoke(app, base)  # two processes, each about to train alone into one folder
    assert r.exit_code == 2 and "--strategy ddp or fsdp" in r.output
    assert not (tmp_path / "x").exists()


def test_a_sharded_run_grows(runs, tmp_path):
    """`plmgraph grow` reads DCP shards like a one-process checkpoint (progressive stacking, then train on)."""
    _, done = runs
    path = done["ddp"][0]
    from plmgraph.train.distributed import load_checkpoint_model

    before = dict(load_checkpoint_model(latest_checkpoint(path)).named_parameters())
    new = pg.grow(path, 4, tmp_path / "deep")
    after = dict(pg.load(latest_checkpoint(new)).named_parameters())
    for n, p in after.items():
        src = n.replace("layers.2.", "layers.0.").replace("layers.3.", "layers.1.")
        assert torch.equal(p, before[src]), n


def test_a_sharded_run_is_a_tuning_base(runs):
    """`train RUN --tuning ...` starts from the run's weights; a torchrun run's are DCP shards."""
    ref, done = runs
    path = done["ddp"][0]
    from plmgraph.train.distributed import is_sharded
    from plmgraph.tuning.core import load_folder

    assert is_sharded(latest_checkpoint(path))
    got = dict(load_folder(path).named_parameters())
    want = dict(ref.model.named_parameters())  # one-process training on the same global batch
    assert got.keys() == want.keys()
    for n, p in want.items():
        torch.testing.assert_close(got[n], p.detach(), rtol=0, atol=1e-5)
