"""`plmgraph eval RUN --stride N`: sliding-window perplexity of a trained decoder on the held-out
text as one token stream.  stride = the window is the plain perplexity of non-overlapping blocks
(checked against `evaluate` on those blocks, a batched padded path); a smaller stride gives every
token more context, a different (here lower) number, the API's `perplexity`."""

import json
import math

import pytest
import torch
from helpers import pydoc_corpus
from typer.testing import CliRunner

import plmgraph.cli.train_cmds  # noqa: F401  (registers train, eval)
from plmgraph.cli import app
from plmgraph.train.data import load_corpus
from plmgraph.train.evaluate import evaluate, perplexity
from plmgraph.train.objectives import Example, collator_for
from plmgraph.train.trainer import load_run_model

SIZES = "layers=2,hidden=64,heads=2,vocab=512,max_positions=64"
W = 32


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def as_json(r):
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{"):])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stride")
    corpus = pydoc_corpus(tmp, slice(20))
    held = tmp / "held.txt"  # text the run never saw: three other topics
    held.write_text("\n\n".join(load_corpus("pydoc").subset([40, 41]).texts), encoding="utf-8")
    run = tmp / "run"
    r = invoke("train", "gpt2", "-O", SIZES, "--data", corpus, "--steps", "60", "-o", run, "--batch-size", "8",
               "--seq-len", W, "--lr", "3e-3", "--checkpoint-every", "1000")
    assert r.exit_code == 0, r.output
    return run, held


def test_stride_equal_to_the_window_is_the_plain_perplexity_and_a_smaller_one_the_apis(trained):
    run, held = trained
    plain = as_json(invoke("eval", run, "--data", held, "--stride", W, "--json"))
    assert plain["window"] == W and plain["stride"] == W
    model, tok = load_run_model(run)
    col = collator_for(model.spec, tok)
    ids = col.stream(load_corpus(held))[0]
    blocks = [Example(ids[i:i + W]) for i in range(0, len(ids), W) if len(ids) - i >= 2]
    ref = evaluate(model, col, blocks, batch_size=5)  # every block, the last one shorter, right-padded
    assert plain["tokens"] == ref["tokens"] == len(ids) - len(blocks)
    assert plain["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert plain["perplexity"] == pytest.approx(math.exp(ref["loss"]), rel=1e-5)

    rich = as_json(invoke("eval", run, "--data", held, "--stride", 8, "--json"))
    api = perplexity(model, torch.tensor(ids), window=W, stride=8)
    assert rich["tokens"] == len(ids) - 1 == api["tokens"]
    assert rich["loss"] == pytest.approx(api["loss"], rel=1e-6)
    # at least 24 tokens of context for every token instead of 0..31: a trained model does better
    assert rich["perplexity"] < plain["perplexity"] * (1 - 1e-4), (rich, plain)

    held_default = as_json(invoke("eval", run, "--stride", 16, "--json"))  # the run's own held-out split
    assert held_default["tokens"] > 0 and held_default["stride"] == 16
    r = invoke("eval", run, "--data", held, "--stride", 16)
    assert r.exit_code == 0 and "perplexity" in r.output and "stride 16" in r.output, r.output


@pytest.mark.parametrize("args, message", [
    (["--stride", "40"], "need 1 <= stride <= window"),
    (["--stride", "8", "--seq-len", "80"], "longer than gpt2's 64 positions"),
])
def test_stride_errors_exit_cleanly(trained, args, message):
    run, held = trained
    r = invoke("eval", run, "--data", held, *args)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
