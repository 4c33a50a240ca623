"""Command-line details: full names in piped tables, --version, hints that point at the right
field, and a test suite that collects without the optional test tools."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

import plmgraph
import plmgraph.cli
import plmgraph.cli.spec_cmds  # noqa: F401  (registers validate, show)
from plmgraph.cli import app
from plmgraph.spec import SpecError, load_spec, zoo_names

ROOT = Path(__file__).resolve().parents[2]


def _python(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
                          stdin=subprocess.DEVNULL, **kw)


# ------------------------------------------------------------------- piped tables


@pytest.mark.parametrize("columns", [None, "80", "40"])
def test_piped_list_prints_every_name_in_full(columns):
    env = {"COLUMNS": columns} if columns else {}
    if columns is None:
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    r = _python("-m", "plmgraph", "list", env=env)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout and "..." not in r.stdout
    rows = [line for line in r.stdout.splitlines() if "│" in line or "|" in line]
    for name in zoo_names():
        assert re.search(rf"[│|]\s*{re.escape(name)}\s*[│|]", r.stdout), f"{name} cut or missing"
        spec = load_spec(name)
        if spec.source:
            assert spec.source in r.stdout, f"{name}: source cut"
    assert len(rows) >= len(zoo_names())


def test_piped_show_and_diff_tables_are_not_cut():
    r = _python("-m", "plmgraph", "show", "t5-small", env={"COLUMNS": "40"})
    assert r.returncode == 0 and "…" not in r.stdout, r.stdout
    r = _python("-m", "plmgraph", "diff", "bert-base", "albert-base", env={"COLUMNS": "40"})
    assert r.returncode == 0 and "…" not in r.stdout, r.stdout


def test_a_width_set_by_hand_still_wins(monkeypatch):
    monkeypatch.setattr(plmgraph.cli.out, "width", 50)
    assert plmgraph.cli.out.width == 50


def test_piped_into_a_closed_pipe_is_quiet():
    p = subprocess.Popen(f"{sys.executable} -m plmgraph list | head -1", shell=True, cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = p.communicate(timeout=300)
    assert "plmgraph zoo" in out
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# ----------------------------------------------------------------------- --version


def test_version():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout == f"plmgraph {plmgraph.__version__}\n"
    assert CliRunner().invoke(app, ["-V"]).stdout == r.stdout
    r = _python("-m", "plmgraph", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"plmgraph {plmgraph.__version__}"


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project.get("dynamic", []), "pyproject reads the version from plmgraph.__version__"
    attr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]["version"]
    assert attr == {"attr": "plmgraph.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", plmgraph.__version__)


# ------------------------------------------------------------------------- hints


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("kv_heads=4", "attention.kv_heads"),
        ("kvheads=4", "attention.kv_heads"),
        ("theta=500000", "position.theta"),
        ("tie_embeddings=false", "heads.0.tie_embeddings"),
        ("activation=relu", "mlp.activation"),
        ("window=8", "attention.window"),
        ("layer=3", "layers"),
        ("hiden=64", "hidden"),
    ],
)
def test_override_of_a_nested_field_suggests_its_path(override, hint):
    with pytest.raises(SpecError, match=rf"did you mean {re.escape(repr(hint))}\?") as e:
        load_spec("gpt2", override)
    assert e.value.problems[0].file == "--override"


def test_the_suggested_override_works():
    assert load_spec("gpt2", "attention.kv_heads=4").stacks["decoder"].block.attention.kv_heads == 4


def test_override_suggestion_keeps_the_rest_of_the_key():
    with pytest.raises(SpecError, match=r"did you mean 'position\.scaling\.factor'\?"):
        load_spec("llama3-8b", "scaling.factor=2")


@pytest.mark.parametrize("key", ["layers", "hidden", "vocab", "ffn", "max_positions", "heads"])
def test_a_size_at_the_top_level_says_to_write_it_under_sizes(tmp_path, key):
    f = tmp_path / "s.yaml"
    f.write_text(f"extends: gpt2\nname: s\n{key}: 8\n")
    with pytest.raises(SpecError) as e:
        load_spec(f)
    (p,) = e.value.problems
    assert (p.file, p.line, p.column, p.path) == (str(f), 3, 1, (key,))
    assert f"a size goes under `sizes:`, as in `sizes: {{{key}: 8}}`" in p.message


def test_top_level_sizes_in_the_cli_name_every_one(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("extends: gpt2\nname: s\nlayers: 2\nhidden: 64\n")
    r = CliRunner().invoke(app, ["validate", str(f)])
    assert r.exit_code == 1
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert f"{f}:3:1: layers: a size goes under `sizes:`" in err.replace("\n", "")
    assert f"{f}:4:1: hidden: a size goes under `sizes:`" in err.replace("\n", "")


def test_heads_as_a_list_of_heads_is_not_a_size(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("extends: gpt2\nname: s\nheads: [{kind: lm, tie_embeddings: false}]\n")
    assert load_spec(f).heads[0].tie_embeddings is False


# ------------------------------------------------------- collection without extras


def test_the_suite_collects_without_the_optional_test_tools(tmp_path):
    """hypothesis (and transformers, matplotlib) are test extras: without them their tests skip, the rest run."""
    for mod in ("hypothesis", "transformers", "matplotlib"):
        (tmp_path / f"{mod}.py").write_text(f"raise ModuleNotFoundError(\"No module named {mod!r}\", name={mod!r})\n")
    # the whole suite, as `pytest` collects it (testpaths); -p no:hypothesispytest: without hypothesis
    # its pytest plugin is not installed either
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        "-p", "no:hypothesispytest"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "tests/spec/test_zoo.py" in r.stdout and "tests/cli/test_spec_cli.py" in r.stdout
    assert "test_fuzz" not in r.stdout and "tests/parity/" not in r.stdout  # skipped, not collected
