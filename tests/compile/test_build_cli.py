"""`plmgraph build`: summary table, JSON, -o checkpoint, usage errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, diff_cmds, hf_cmds, spec_cmds  # noqa: F401  (register commands)

runner = CliRunner()
TINY = ["-O", "layers=2,hidden=64,heads=4,ffn=128,vocab=128"]


def test_build_table_on_meta():
    r = runner.invoke(app, ["build", "gpt2"])
    assert r.exit_code == 0, r.output
    assert "decoder.layers" in r.output and "12 x Block" in r.output
    assert "124,439,808 parameters; matches the graph" in r.output


def test_build_json_and_output(tmp_path):
    r = runner.invoke(app, ["build", "albert-base", *TINY, "--json", "-o", str(tmp_path / "ck"), "--seed", "1"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["match"] and data["device"] == "cpu" and data["params"] == data["graph_params"]
    assert {"block": "encoder.layers", "type": "2 x Block (1 distinct)"}.items() <= data["blocks"][2].items()
    model = pg.load(tmp_path / "ck")
    assert model.num_params() == data["params"]


def test_build_usage_and_spec_errors():
    r = runner.invoke(app, ["build", "gpt2", "-o", "x", "--device", "meta"])
    assert r.exit_code == 2 and "-o needs weights" in r.output
    r = runner.invoke(app, ["build", "gpt2", "--dtype", "int8"])
    assert r.exit_code == 2 and "--dtype 'int8' is not one of" in r.output
    r = runner.invoke(app, ["build", "xlnet-base", "-O", "attention.qk_norm=true"])
    assert r.exit_code == 1 and "two_stream attention has no q/k norm" in r.output  # refused at validation
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["build", "no-such-spec"])
    assert r.exit_code == 1 and "Traceback" not in r.output
