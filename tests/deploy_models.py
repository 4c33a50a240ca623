"""Export folders shared by the deploy tests (tests/exporters/test_folder.py, test_runtime.py,
tests/cli/test_deploy.py): each tiny model is exported once per test process.

The models are tiny (2 layers, hidden 64, vocabulary 300) with a byte-level BPE tokenizer trained
on a few sentences.  GPT-2's weights are redrawn with a larger spread: at the default init a
random GPT-2 (or T5) repeats one token, which would let a runtime that ignored positions or the
cache pass.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from helpers import tiny

import plmgraph as pg

VOCAB = 300
TEXTS = ["the quick brown fox jumps over the lazy dog", "a model of language predicts the next word",
         "deploy the graph and generate the same tokens"] * 40
_ROOT = Path(tempfile.mkdtemp(prefix="plmgraph-deploy-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)


SPREAD = {"gpt2": 0.3, "t5-small": 0.2}  # weights redrawn at this std (see the module docstring)


def model(name: str, **sizes: int) -> Any:
    m = pg.build(tiny(name, vocab=VOCAB, **sizes), seed=0).eval()
    if name in SPREAD:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * SPREAD[name])
    return m


@functools.cache
def tokenizer() -> Any:
    from plmgraph.train.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS, tiny("gpt2", vocab=VOCAB), vocab_size=VOCAB)


@functools.cache
def folder(name: str) -> tuple[Any, Path]:
    """(the PyTorch model, its export folder with tokenizer) for a zoo name."""
    from plmgraph.exporters.onnx_folder import export_folder

    m = model(name)
    out = _ROOT / name
    if name == "gpt2":  # through the command line: a saved model folder with its tokenizer.json beside it
        from typer.testing import CliRunner

        from plmgraph.cli import app, export_cmds  # noqa: F401  (registers `export`)

        ck = _ROOT / f"{name}-ck"
        pg.save(m, ck)
        tokenizer().save(ck / "tokenizer.json")
        r = CliRunner().invoke(app, ["export", str(ck), "-o", str(out), "--kv-cache", "--no-verify"])
        assert r.exit_code == 0, r.output
    else:
        export_folder(m, out, tokenizer=tokenizer(), verify=False)
    return m, out


def copy(name: str, dest: Path) -> Path:
    """A private copy of `name`'s folder (for tests that break files)."""
    _, src = folder(name)
    shutil.copytree(src, dest)
    return dest
