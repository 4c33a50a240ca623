"""Output folders and files: never delete what plmgraph did not write, never half-write, and a
bad ``-o`` is one message and exit status 1 (no traceback) for build, import-hf, export-hf,
draw, diff and export.  Also: ``config.json`` shapes the importer cannot read."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli
from plmgraph.cli import app, build_cmds, diff_cmds, export_cmds, hf_cmds, spec_cmds  # noqa: F401  (register)
from plmgraph.errors import CheckpointError

TINY = ["-O", "layers=2,hidden=64,heads=4,ffn=128,vocab=128,max_positions=64"]
OWN = ["model.safetensors", "spec.yaml"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(plmgraph.cli.out, "width", 200)
    monkeypatch.setattr(plmgraph.cli.err, "width", 400)  # one message, one line
    return CliRunner()


def invoke(cli: CliRunner, *args: str, code: int = 0) -> tuple[str, str]:
    r = cli.invoke(app, [str(a) for a in args])
    out, err = r.stdout, _err(r)
    assert r.exit_code == code, (r.exit_code, out, err, r.exception)
    assert "Traceback" not in out + err
    if code:
        assert not isinstance(r.exception, (AssertionError, TypeError, AttributeError, KeyError)), r.exception
    return out, err


def _err(r) -> str:
    try:
        return r.stderr
    except ValueError:
        return r.output


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def build(cli: CliRunner, out: Path, *extra: str, code: int = 0) -> tuple[str, str]:
    return invoke(cli, "build", "gpt2", *TINY, "--device", "cpu", "-o", out, *extra, code=code)


# ---------------------------------------------------------------------- build -o


def test_build_into_a_new_folder_and_again_replaces_only_its_files(cli, tmp_path):
    ck = tmp_path / "a" / "ck"  # parents are created
    build(cli, ck, "--seed", "1")
    assert names(ck) == OWN
    first = (ck / "model.safetensors").read_bytes()
    build(cli, ck, "--seed", "2")  # a folder holding only plmgraph's files: replaced, no --force needed
    assert names(ck) == OWN and (ck / "model.safetensors").read_bytes() != first
    assert names(tmp_path) == ["a"] and names(tmp_path / "a") == ["ck"]  # no temporary folder left behind


def test_build_refuses_a_folder_with_other_files_and_force_keeps_them(cli, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "notes.txt").write_text("mine")
    (ck / "data").mkdir()
    _, err = build(cli, ck, code=1)
    assert "already holds files plmgraph did not write (data, notes.txt)" in err and "--force" in err
    assert names(ck) == ["data", "notes.txt"]  # untouched, and nothing was written
    build(cli, ck, "--force")
    assert names(ck) == sorted(["data", *OWN, "notes.txt"])
    assert (ck / "notes.txt").read_text() == "mine"
    assert pg.load(ck).num_params() > 0


def test_build_into_the_current_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.py").write_text("x = 1\n")
    _, err = build(cli, Path("."), code=1)
    assert "already holds files plmgraph did not write (keep.py)" in err
    build(cli, Path("."), "--force")
    assert names(tmp_path) == sorted(["keep.py", *OWN])
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    build(cli, Path("."))  # an empty current folder needs no --force
    assert names(empty) == OWN


@pytest.mark.parametrize("where", ["file/sub", "file", "/proc/plmgraph-out"])
def test_build_to_an_unwritable_place_is_one_message(cli, tmp_path, where):
    (tmp_path / "file").write_text("a file")
    out = where if where.startswith("/") else tmp_path / where
    _, err = build(cli, Path(out), code=1)
    assert err.count("error:") == 1 and str(out) in err
    assert any(w in err for w in ("is a file", "cannot write there")), err
    assert names(tmp_path) == ["file"] and (tmp_path / "file").read_text() == "a file"


def test_save_in_python_guards_foreign_files_too(tmp_path):
    from helpers import tiny

    model = pg.build(tiny("gpt2"), seed=0)
    (tmp_path / "other.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"already holds files plmgraph did not write \(other\.bin\)"):
        pg.save(model, tmp_path)
    pg.save(model, tmp_path, force=True)
    assert names(tmp_path) == sorted([*OWN, "other.bin"])
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        pg.save(model, tmp_path / "other.bin")
    with pytest.raises(CheckpointError, match=r"cannot create the folder, .*other\.bin is a file"):
        pg.save(model, tmp_path / "other.bin" / "x")


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from helpers import tiny

    from plmgraph.compile import io

    model = pg.build(tiny("gpt2"), seed=0)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(CheckpointError, match="cannot write there .No space left on device"):
        io.save(model, tmp_path / "new" / "ck")
    assert names(tmp_path) == []  # neither the folder nor the parent it created
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "spec.yaml").write_text("previous")
    with pytest.raises(CheckpointError):
        io.save(model, tmp_path / "old")
    assert names(tmp_path / "old") == ["spec.yaml"] and (tmp_path / "old" / "spec.yaml").read_text() == "previous"


# ------------------------------------------------------------- import-hf, export-hf


@pytest.fixture
def hf_folder(tmp_path) -> Path:
    """A tiny Hugging Face GPT-2 checkpoint, written by export-hf from a plmgraph build."""
    runner = CliRunner()
    r = runner.invoke(app, ["build", "gpt2", *TINY, "--device", "cpu", "-o", str(tmp_path / "pg")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export-hf", str(tmp_path / "pg"), "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    return tmp_path / "hf"


def test_export_hf_and_import_hf_guard_their_output_folders(cli, tmp_path, hf_folder):
    assert names(hf_folder) == ["config.json", "model.safetensors"]
    (hf_folder / "tokenizer.json").write_text("{}")
    _, err = invoke(cli, "export-hf", tmp_path / "pg", "-o", hf_folder, code=1)
    assert "already holds files plmgraph did not write (tokenizer.json)" in err
    invoke(cli, "export-hf", tmp_path / "pg", "-o", hf_folder, "--force")
    assert names(hf_folder) == ["config.json", "model.safetensors", "tokenizer.json"]

    back = tmp_path / "back"
    invoke(cli, "import-hf", hf_folder, "-o", back)
    assert names(back) == OWN
    _, err = invoke(cli, "import-hf", hf_folder, "-o", hf_folder, code=1)  # into the HF folder itself
    assert "already holds files plmgraph did not write (config.json, tokenizer.json)" in err
    invoke(cli, "import-hf", hf_folder, "-o", back, "--spec-only")
    assert names(back) == OWN


@pytest.mark.parametrize("command", ["import-hf", "export-hf"])
@pytest.mark.parametrize("where", ["file/sub", "/proc/plmgraph-out"])
def test_hf_commands_to_an_unwritable_place(cli, tmp_path, hf_folder, command, where):
    (tmp_path / "file").write_text("a file")
    src = hf_folder if command == "import-hf" else tmp_path / "pg"
    out = where if where.startswith("/") else tmp_path / where
    _, err = invoke(cli, command, src, "-o", out, code=1)
    assert err.count("error:") == 1 and str(out) in err


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ([{"model_type": "gpt2"}], "a Hugging Face config.json is a JSON object .* got a JSON list"),
        ("gpt2", "got a JSON string"),
        ({"model_type": ["gpt2"]}, r'model_type must be a string such as "llama", got a JSON list \(\["gpt2"\]\)'),
        ({"model_type": 3}, "model_type must be a string .* got a JSON number"),
    ],
)
@pytest.mark.parametrize("spec_only", [False, True])
def test_import_hf_config_json_of_the_wrong_shape(cli, tmp_path, config, match, spec_only):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    _, err = invoke(cli, "import-hf", d, "-o", tmp_path / "out", *(["--spec-only"] if spec_only else []), code=1)
    assert re.search(match, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec_only", [False, True])
def test_import_hf_config_json_nested_too_deeply_is_one_message(cli, tmp_path, spec_only):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    _, err = invoke(cli, "import-hf", d, "-o", tmp_path / "out", *(["--spec-only"] if spec_only else []), code=1)
    assert err.count("error:") == 1 and "config.json" in err
    assert not (tmp_path / "out").exists()



# --------------------------------------------------------------- draw, diff, export


@pytest.mark.parametrize("where", ["file/sub.svg", "/proc/plmgraph.svg"])
@pytest.mark.parametrize("command", [["draw", "gpt2"], ["diff", "gpt2", "llama2-7b"], ["draw", "--zoo"]])
def test_draw_and_diff_to_an_unwritable_place(cli, tmp_path, where, command):
    (tmp_path / "file").write_text("a file")
    out = where if where.startswith("/") else tmp_path / where
    _, err = invoke(cli, *command, "-o", out, code=1)
    assert err.count("error:") == 1 and f"{out}: cannot write there" in err
    assert names(tmp_path) == ["file"]


def test_draw_into_a_folder_with_an_extension_is_refused(cli, tmp_path):
    (tmp_path / "x.svg").mkdir()
    _, err = invoke(cli, "draw", "gpt2", "-o", tmp_path / "x.svg", code=1)
    assert "is a folder; give a file name" in err


def test_export_onnx_to_an_unwritable_place(cli, tmp_path):
    (tmp_path / "file").write_text("a file")
    _, err = invoke(cli, "export", "gpt2", *TINY, "-o", tmp_path / "file" / "m.onnx", code=1)
    assert "cannot write there" in err and "is a file" in err


def test_an_os_error_inside_a_command_is_a_message(cli, tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.dot"))

    monkeypatch.setattr("plmgraph.exporters.graphviz.draw", denied)
    _, err = invoke(cli, "draw", "gpt2", "-o", tmp_path / "x.dot", code=1)
    assert f"error: {tmp_path / 'x.dot'}: Permission denied" in err.replace("\n", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to show that os.access is not enough")
def test_root_is_still_refused_where_nothing_can_be_written(cli):
    _, err = invoke(cli, "draw", "gpt2", "-o", "/proc/self/plmgraph.svg", code=1)
    assert "cannot write there" in err
