"""`plmgraph list`, `validate`, `show`, `schema`: output, JSON, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import plmgraph.cli
import plmgraph.cli.spec_cmds  # noqa: F401  (registers list, validate, show, schema)
from plmgraph.cli import app
from plmgraph.graph import resolve
from plmgraph.spec import load_spec, zoo_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(plmgraph.cli.out, "width", 200)  # a wide terminal: table cells are not cut
    return CliRunner()


def _run(cli: CliRunner, *args: str, code: int = 0):
    r = cli.invoke(app, list(args))
    assert r.exit_code == code, (r.exit_code, r.output, _err(r))
    assert "Traceback" not in r.output + _err(r)
    if code == 0:
        assert r.exception is None or isinstance(r.exception, SystemExit)
    return r


def _err(r) -> str:
    try:
        return r.stderr
    except ValueError:  # click < 8.2 mixes stderr into output
        return r.output


def _bad(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- list


def test_list_table_names_every_zoo_spec(cli):
    out = _run(cli, "list").stdout
    for name in zoo_names():
        assert name in out
    assert "124,439,808" in out  # gpt2's parameter count


def test_list_json_has_every_spec_with_its_params(cli):
    rows = json.loads(_run(cli, "list", "--json").stdout)
    assert [r["name"] for r in rows] == zoo_names()
    by_name = {r["name"]: r for r in rows}
    assert by_name["gpt2"]["params"] == 124_439_808
    assert by_name["gpt2"]["family"] == "decoder"
    assert by_name["llama3-8b"]["extends"] == "llama2-7b"
    assert by_name["gpt2"]["extends"] is None
    for name in ("bert-base", "t5-small", "vit-base"):
        assert by_name[name]["params"] == resolve(name).num_params()
    assert all(r["source"] for r in rows)


# ------------------------------------------------------------------------- validate


def test_validate_ok(cli):
    r = _run(cli, "validate", "gpt2", "llama3-8b")
    assert "ok gpt2" in r.stdout and "ok llama3-8b" in r.stdout


def test_validate_json(cli, tmp_path):
    bad = _bad(tmp_path, "extends: gpt2\nname: bad\nblock:\n  attention: {kv_heads: 5}\n")
    r = _run(cli, "validate", "--json", "gpt2", str(bad), code=1)
    results = json.loads(r.stdout)
    assert results[0] == {"spec": "gpt2", "ok": True, "name": "gpt2", "problems": []}
    assert results[1]["ok"] is False
    [problem] = results[1]["problems"]
    assert problem == {
        "file": str(bad.resolve()),
        "line": 4,
        "column": 15,
        "field": "block.attention.kv_heads",
        "message": "heads (12) must be divisible by kv_heads (5)",
    }


def test_validate_bad_spec_exits_1_with_the_message_on_stderr(cli, tmp_path):
    bad = _bad(tmp_path, "extends: gpt2\nname: bad\nblock:\n  norm: {kind: rmsnrom}\n")
    r = _run(cli, "validate", str(bad), code=1)
    err = _err(r)
    assert f"{bad.resolve()}:4:10: block.norm.kind: unknown kind 'rmsnrom'; did you mean 'rmsnorm'? " in err
    assert "allowed: layernorm, rmsnorm" in err
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsizes: {hidden: 64\n", "YAML syntax error"),
        ("name: !!python/object/apply:os.system [ls]\n", "YAML tag '!!python/object/apply:os.system' is not allowed"),
        ("extends: gpt2\nname: x\nsizs: {}\n", "unknown field 'sizs'; did you mean 'sizes'?"),
        ("extends: bad.yaml\n", "a spec cannot extend itself"),
        ("name: x\nsource: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 32 levels"),
    ],
    ids=["syntax", "python-tag", "unknown-field", "self-extends", "deep-nesting"],
)
def test_user_errors_never_show_a_traceback(cli, tmp_path, text, message):
    bad = _bad(tmp_path, text)
    for command in (["validate"], ["show"], ["show", "--resolved"]):
        r = _run(cli, *command, str(bad), code=1)
        assert message in _err(r)


def test_missing_spec_exits_1(cli):
    r = _run(cli, "validate", "gtp2", code=1)
    assert "'gtp2' is not a spec file or zoo name; did you mean 'gpt2'" in _err(r)
    r = _run(cli, "show", "no/such.yaml", code=1)
    assert "no such spec file: 'no/such.yaml'" in _err(r)


def test_validate_with_override(cli):
    _run(cli, "validate", "gpt2", "--override", "layers=2,attention.kv_heads=4")
    r = _run(cli, "validate", "gpt2", "--override", "attention.kv_heads=5", code=1)
    assert "--override: block.attention.kv_heads: heads (12) must be divisible by kv_heads (5)" in _err(r)
    r = _run(cli, "validate", "gpt2", "-O", "layers", code=1)
    assert "'layers' is not key=value" in _err(r)


def test_bad_option_is_a_usage_error(cli):
    assert cli.invoke(app, ["validate", "gpt2", "--no-such-option"]).exit_code == 2
    assert cli.invoke(app, ["show"]).exit_code == 2  # missing SPEC
    assert cli.invoke(app, ["show", "gpt2", "--seq-len", "0"]).exit_code == 2
    assert cli.invoke(app, ["no-such-command"]).exit_code == 2


# ----------------------------------------------------------------------------- show


def test_show_table(cli):
    out = _run(cli, "show", "llama2-7b").stdout
    assert "llama2-7b" in out and "decoder" in out
    assert "6,738,415,616" in out
    assert "FLOPs/token" in out and "KV cache per token" in out


def test_show_json_has_spec_and_stats(cli):
    data = json.loads(_run(cli, "show", "gpt2", "--json").stdout)
    assert set(data) == {"spec", "stats"}
    assert data["spec"]["name"] == "gpt2" and data["spec"]["sizes"]["hidden"] == 768
    stats = data["stats"]
    for key in ("name", "params", "by_block", "by_stack", "per_layer", "seq_len", "flops_per_token",
                "flops_by_block", "kv_bytes_per_token", "weight_bytes"):
        assert key in stats
    assert stats["params"] == 124_439_808
    assert stats["seq_len"] == 1024


def test_show_with_override(cli):
    data = json.loads(_run(cli, "show", "gpt2", "--json", "--override", "layers=2,attention.kv_heads=4").stdout)
    block = data["spec"]["decoder"]["block"]
    assert data["spec"]["decoder"]["layers"] == 2 and block["attention"]["kv_heads"] == 4
    assert data["stats"]["params"] < 124_439_808


@pytest.mark.parametrize("name", ["llama3-8b", "t5-small", "albert-base", "vit-base"])
def test_show_resolved_is_a_spec_that_validates_to_the_same_model(cli, tmp_path, name):
    out = _run(cli, "show", name, "--resolved").stdout
    assert out.startswith("# merged from: ")
    data = yaml.safe_load(out)
    assert "extends" not in data
    path = tmp_path / f"{name}.yaml"
    path.write_text(out)
    again, original = load_spec(path), load_spec(name)
    assert again.model_dump(exclude={"extends"}) == original.model_dump(exclude={"extends"})
    assert resolve(again).num_params() == resolve(original).num_params()


def test_show_resolved_applies_overrides_and_has_json(cli):
    out = _run(cli, "show", "llama3-8b", "--resolved", "--override", "layers=2,attention.kv_heads=4").stdout
    data = yaml.safe_load(out)
    assert data["sizes"]["layers"] == 2 and data["block"]["attention"]["kv_heads"] == 4
    assert data["position"] == {"kind": "rope", "theta": 500000.0}  # from llama3-8b over llama-7b
    as_json = json.loads(_run(cli, "show", "llama3-8b", "--resolved", "--json").stdout)
    assert as_json["name"] == "llama3-8b" and as_json["sizes"]["vocab"] == 128256


def test_show_resolved_prints_nothing_for_an_invalid_spec(cli, tmp_path):
    bad = _bad(tmp_path, "extends: gpt2\nname: bad\nsizes: {hidden: 770}\n")
    r = _run(cli, "show", str(bad), "--resolved", code=1)
    assert r.stdout == ""
    assert "hidden (770) must be divisible by heads (12)" in _err(r)


# --------------------------------------------------------------------------- schema


def test_schema_is_a_documented_json_schema(cli):
    schema = json.loads(_run(cli, "schema").stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    props = schema["properties"]
    for key in ("plmgraph", "name", "extends", "family", "sizes", "block", "heads", "objectives", "tuning"):
        assert key in props
        assert props[key].get("description"), key
    assert set(schema["required"]) >= {"name", "family", "sizes"}
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert defs["Sizes"]["properties"]["hidden"]["description"]
    assert all(p.get("description") for p in defs["RMSNorm"]["properties"].values() if p.get("title") != "Kind")


def test_committed_schema_is_current(cli):
    committed = json.loads((ROOT / "plmgraph.schema.json").read_text())
    assert committed == json.loads(_run(cli, "schema").stdout), "run `plmgraph schema > plmgraph.schema.json`"


# ------------------------------------------------------------------ real processes


def _python(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
                          **kw)


def test_console_script_in_a_subprocess(tmp_path):
    ok = _python("-m", "plmgraph", "validate", "gpt2")
    assert ok.returncode == 0 and "ok gpt2" in ok.stdout, ok.stderr
    bad = _bad(tmp_path, "extends: gpt2\nname: bad\nsizes: {layers: -1}\n")
    r = _python("-m", "plmgraph", "validate", str(bad))
    assert r.returncode == 1
    assert f"{bad.resolve()}:3:9: sizes.layers: must be greater than 0, got -1" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_spec_commands_do_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import plmgraph.cli.spec_cmds\n"
        "from plmgraph.cli import app\n"
        "runner = CliRunner()\n"
        "for args in (['list'], ['validate', 'gpt2'], ['show', 'llama2-7b'], ['show', 't5-small', '--resolved']):\n"
        "    assert runner.invoke(app, args).exit_code == 0, args\n"
        "assert 'torch' not in sys.modules, 'a spec command imported torch'\n"
    )
    r = _python("-c", code)
    assert r.returncode == 0, r.stderr


def test_validate_zoo_checks_every_zoo_spec(cli):
    r = _run(cli, "validate", "--zoo", "--json")
    assert sorted(row["name"] for row in json.loads(r.stdout)) == zoo_names()


def test_validate_without_specs_is_a_usage_error(cli):
    r = _run(cli, "validate", code=2)
    assert "give at least one SPEC, or --zoo" in r.stderr
