"""`plmgraph diff` and `plmgraph draw`: output, exit codes and messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plmgraph.cli
import plmgraph.cli.diff_cmds  # noqa: F401  (registers diff, draw)
import plmgraph.cli.spec_cmds  # noqa: F401
from plmgraph.cli import app
from plmgraph.spec import zoo_names

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(plmgraph.cli.out, "width", 160)  # a wide terminal: table cells are not wrapped
    return CliRunner()


def _ok(cli: CliRunner, *args: str) -> str:
    r = cli.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def _err(r) -> str:
    try:
        return r.stderr
    except ValueError:  # click < 8.2 without mix_stderr=False
        return r.output


def test_diff_table(cli: CliRunner) -> None:
    text = _ok(cli, "diff", "gpt2", "llama2-7b")
    for s in ("gpt2 → llama2-7b: 17 changes (6 structural)", "learned → rotary (theta 10000)",
              "LayerNorm → RMSNorm", "GELU (tanh) → SwiGLU", "tied → untied", "768 → 4096", "on → off",
              "parameters", "124.4M", "6.74B", "+6.61B", "FLOPs/token (T=1024)", "KV cache/token"):
        assert s in text, s


def test_diff_structure_only(cli: CliRunner) -> None:
    text = _ok(cli, "diff", "gpt2", "llama2-7b", "--structure")
    assert "6 structural changes" in text
    assert "GELU (tanh) → SwiGLU" in text and "LayerNorm → RMSNorm" in text
    assert "768 → 4096" not in text and "dropout" not in text and "parameters" not in text


def test_diff_json(cli: CliRunner) -> None:
    data = json.loads(_ok(cli, "diff", "bert-base", "albert-base", "--json"))
    assert (data["a"], data["b"]) == ("bert-base", "albert-base")
    texts = {(c["axis"], c["what"]): (c["before"], c["after"]) for c in data["changes"]}
    assert texts[("sharing", "layer weights")] == ("none", "one shared set for all layers")
    assert texts[("heads", "head")] == ("NSP head", "SOP head")
    assert texts[("dims", "embedding size")] == ("768", "128")
    assert data["cost"]["params"]["a"] == 110_106_428


def test_diff_identical_and_override(cli: CliRunner) -> None:
    assert "no differences" in _ok(cli, "diff", "llama2-7b", "llama2-7b")
    text = _ok(cli, "diff", "llama2-7b", "llama2-7b", "-O", "attention.kv_heads=4")
    assert "MHA → GQA (4 kv heads)" in text
    text = _ok(cli, "diff", "gpt2", "gpt2", "--override-a", "layers=6", "--structure")
    assert "no structural differences" in text


@needs_dot
def test_diff_picture(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "diff.svg"
    text = _ok(cli, "diff", "gpt2", "llama2-7b", "-o", str(out))
    assert f"wrote {out}" in text.replace("\n", "")
    svg = out.read_text()
    assert "<svg" in svg and "llama2" in svg


def test_diff_dot_output_and_json_path(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "diff.dot"
    data = json.loads(_ok(cli, "diff", "bert-base", "roberta-base", "--json", "-o", str(out)))
    assert data["output"] == str(out)
    assert "cluster_side_a" in out.read_text()


def test_diff_unknown_extension_is_usage_error(cli: CliRunner, tmp_path: Path) -> None:
    r = cli.invoke(app, ["diff", "gpt2", "llama2-7b", "-o", str(tmp_path / "diff.gif")])
    assert r.exit_code == 2
    assert "unknown output extension '.gif'; use one of .svg, .png, .pdf, .dot" in _err(r)
    assert not (tmp_path / "diff.gif").exists()


def test_diff_invalid_spec_exits_1_without_traceback(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfamily: decoder\nsizes: {vocab: 10, hidden: 64, layers: 2, heads: 5}\n")
    r = cli.invoke(app, ["diff", "gpt2", str(bad)])
    assert r.exit_code == 1
    assert "hidden (64) must be divisible by heads (5)" in _err(r)
    assert "Traceback" not in r.output
    r = cli.invoke(app, ["diff", "gtp2", "gpt2"])
    assert r.exit_code == 1 and "did you mean 'gpt2'" in _err(r)


@needs_dot
def test_draw(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "t5.svg"
    _ok(cli, "draw", "t5-base", "-o", str(out))
    svg = out.read_text()
    assert "Cross" in svg and "× 12" in svg
    png = tmp_path / "albert.png"
    _ok(cli, "draw", "albert-base", "-o", str(png), "--layers", "all", "-O", "layers=2")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_draw_dot_and_default_name(cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "llama.dot"
    _ok(cli, "draw", "llama2-7b", "-o", str(out))
    assert "SwiGLU MLP" in out.read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda _: None)  # no Graphviz: the .svg cannot be rendered
    r = cli.invoke(app, ["draw", "gpt2"])
    assert r.exit_code == 1
    assert "apt-get install graphviz" in _err(r) and "Traceback" not in r.output
    assert (tmp_path / "gpt2.dot").exists()


def test_draw_zoo(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "zoo.dot"
    _ok(cli, "draw", "--zoo", "-o", str(out))
    src = out.read_text()
    for name in zoo_names():
        assert f"<B>{name}</B>" in src, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["draw"], "missing SPEC"),
        (["draw", "gpt2", "--zoo"], "either SPEC or --zoo"),
        (["draw", "--zoo", "-O", "layers=2"], "cannot be used with --zoo"),
        (["draw", "gpt2", "--layers", "some"], "--layers must be 'one' or 'all'"),
        (["draw", "gpt2", "-o", "gpt2.jpeg"], "use one of .svg, .png, .pdf, .dot"),
    ],
)
def test_draw_usage_errors(cli: CliRunner, args: list[str], message: str) -> None:
    r = cli.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in _err(r)


def test_draw_invalid_spec(cli: CliRunner, tmp_path: Path) -> None:
    r = cli.invoke(app, ["draw", "gpt2", "-O", "attention.kv_heads=5", "-o", str(tmp_path / "x.svg")])
    assert r.exit_code == 1
    assert "heads (12) must be divisible by kv_heads (5)" in _err(r)
