"""`plmgraph train / eval / generate`: a run end to end, resume, and user errors (exit 1, no traceback)."""

import json

import pytest
from helpers import pydoc_corpus
from typer.testing import CliRunner

import plmgraph.cli.train_cmds  # noqa: F401  (registers train, eval, generate)
from plmgraph.cli import app

SIZES = "layers=2,hidden=32,heads=2,vocab=512,max_positions=64"
SMALL = ["--batch-size", "4", "--seq-len", "32", "--checkpoint-every", "3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return pydoc_corpus(tmp_path_factory.mktemp("data"))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_resume_eval_generate(tmp_path, corpus):
    run = tmp_path / "run"
    r = invoke("train", "gpt2", "-O", SIZES, "--data", corpus, "--steps", "4", "-o", run, *SMALL)
    assert r.exit_code == 0, r.output
    assert "held-out loss" in r.output and (run / "loss.png").is_file()
    r = invoke("train", run, "--steps", "6")
    assert r.exit_code == 0, r.output
    steps = [json.loads(x).get("step") for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s is not None][:6] == [1, 2, 3, 4, 4, 5] or 6 in steps
    assert (run / "LATEST").read_text().strip() == "step-000006"
    r = invoke("eval", run, "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout[r.stdout.index("{"):])
    assert ev["tokens"] > 0 and abs(ev["perplexity"] - __import__("math").exp(ev["loss"])) < 1e-6 * ev["perplexity"]
    r = invoke("eval", run, "--data", corpus)
    assert r.exit_code == 0 and "perplexity" in r.output, r.output
    r = invoke("generate", run, "--prompt", "The", "--max-new-tokens", "8", "--temperature", "0.8", "--top-k", "20",
               "--top-p", "0.95", "--seed", "0")
    assert r.exit_code == 0, r.output
    again = invoke("generate", run, "--prompt", "The", "--max-new-tokens", "8", "--temperature", "0.8", "--top-k",
                   "20", "--top-p", "0.95", "--seed", "0")
    assert again.stdout == r.stdout and r.stdout.startswith("The")


@pytest.mark.parametrize("args, message, code", [
    (["train", "gpt2", "--data", "pydoc"], "a new run needs -o RUN", 2),
    (["train", "gpt2", "-O", SIZES, "--data", "/nonexistent.txt", "-o", "{tmp}/r"], "corpus file not found", 1),
    (["train", "gpt2", "-O", SIZES + ",vocab=100", "--data", "pydoc", "-o", "{tmp}/r"], "vocabulary of at least", 1),
    (["train", "bert-base", "-O", SIZES, "-O", "objectives=[{kind: span_corruption}]", "--data", "pydoc", "-o",
      "{tmp}/r"], "needs an encoder-decoder", 1),
    (["train", "{tmp}", "--steps", "3"], "not a plmgraph training run", 1),
    (["eval", "{tmp}"], "neither a training run", 1),
    (["generate", "{tmp}", "--prompt", "x"], "neither a training run", 1),
])
def test_user_errors_exit_cleanly(tmp_path, args, message, code):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = invoke(*args)
    assert r.exit_code == code, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r").exists()
