"""The hostile front door: inputs an adversarial user (or a corrupt download) would hand plmgraph.

Each case goes through the command line and must end with exit 1, one short paragraph (no
traceback, at most a short excerpt of the offending input), in bounded time, leaving nothing
half-written. The corpus is built here, in code, so it is readable and needs no binary files:
YAML (alias bombs, deep nesting, huge/negative/NaN numbers, wrong types, Python tags,
non-UTF-8, gigantic strings and keys, extends cycles, paths outside the folder or to non-spec
files, symlink loops, absurd sizes), checkpoints (truncated, lying headers, NaN weights, int
weights, shard indexes pointing outside the folder), config.json, and ONNX files.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from plmgraph.cli import app, build_cmds, diff_cmds, export_cmds, hf_cmds, spec_cmds  # noqa: F401 (register)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_hf_import_errors import LLAMA, checkpoint  # noqa: E402

MAX_OUTPUT = 4000  # characters: a paragraph (at most ten problems), never a file's worth
SECONDS = 30  # generous: a hang or a quadratic blow-up takes minutes


def run_hostile(*args: str) -> str:
    t0 = time.perf_counter()
    r = CliRunner().invoke(app, list(args))
    elapsed = time.perf_counter() - t0
    text = r.output
    assert r.exit_code == 1, (r.exit_code, text[:2000], r.exception)
    assert "Traceback" not in text
    assert not isinstance(r.exception, (KeyError, TypeError, AttributeError, IndexError, RecursionError)), r.exception
    assert len(text) <= MAX_OUTPUT, f"{len(text)} characters: {text[:300]}..."
    assert elapsed < SECONDS, f"took {elapsed:.0f} s"
    return text


BASE = "plmgraph: 1\nname: h\nfamily: decoder\nsizes: {vocab: 32, hidden: 16, layers: 1, heads: 2}\n"

YAML_CASES: dict[str, str | bytes] = {
    "alias_bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)),
    "deep_nesting": "name: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep_mapping": "".join(" " * i + f"k{i}:\n" for i in range(400)) + " " * 400 + "v: 1\n",
    "huge_number": BASE.replace("hidden: 16", "hidden: " + "9" * 5000),
    "negative": BASE.replace("heads: 2", "heads: -2"),
    "nan": BASE.replace("hidden: 16", "hidden: .nan"),
    "inf_eps": BASE + "block: {norm: {kind: layernorm, eps: .inf}}\n",
    "wrong_type": BASE.replace("layers: 1", "layers: [1, 2]"),
    "bool_for_int": BASE.replace("layers: 1", "layers: true"),
    "python_tag": "name: !!python/object/apply:os.system ['echo pwned']\nfamily: decoder\n",
    "python_name": "name: !!python/name:os.system\n",
    "non_utf8": b"name: \xff\xfe\xfa\nfamily: decoder\n",
    "gigantic_string": BASE.replace("name: h", "name: " + "x" * 200_000),
    "gigantic_key": BASE + "y" * 200_000 + ": 1\n",
    "many_keys": BASE + "".join(f"k{i}: {i}\n" for i in range(20_000)),
    "list_top": "- 1\n- 2\n",
    "scalar_top": "just a string " * 1000 + "\n",
    "empty": "",
    "binary": bytes(range(256)) * 40,
    "layers_million": BASE.replace("layers: 1", "layers: 1000000"),
    "layers_billion": BASE.replace("layers: 1", "layers: 1000000000"),
    "huge_vocab_head": BASE.replace("vocab: 32", "vocab: 1000000000000") + "heads: [{kind: lm, name: ''}]\n",
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_yaml(tmp_path, case):
    content = YAML_CASES[case]
    p = tmp_path / f"{case}.yaml"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    text = run_hostile("validate", str(p))
    if case == "gigantic_string":
        assert "x" * 200 not in text
    if case.startswith("python"):
        assert "pwned" not in text or "tag" in text.lower()


def _extends(tmp_path: Path, target: str, name: str = "child.yaml") -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(f"extends: {target}\nname: c\n")
    return p


@pytest.mark.parametrize("target, match", [
    ("/etc/passwd", "not a spec file"),
    ("/etc/hostname", "not a spec file"),
    ("../outside.yaml", "outside the spec's folder"),
    ("/tmp/../etc/passwd.yaml", None),
    ("self.yaml", "cycle|itself|extends"),
])
def test_hostile_extends(tmp_path, target, match):
    (tmp_path / "outside.yaml").write_text(BASE)
    p = _extends(tmp_path, target, "self.yaml" if target == "self.yaml" else "child.yaml")
    text = run_hostile("validate", str(p))
    assert "root:" not in text  # never the content of /etc/passwd
    if match:
        import re

        assert re.search(match, text), text


def test_extends_cycle_and_symlink_loop(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (d / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    assert "cycle" in run_hostile("validate", str(d / "a.yaml")).lower()
    os.symlink(d / "loop2.yaml", d / "loop1.yaml")
    os.symlink(d / "loop1.yaml", d / "loop2.yaml")
    (d / "c.yaml").write_text("extends: loop1.yaml\nname: c\n")
    run_hostile("validate", str(d / "c.yaml"))
    run_hostile("validate", str(d / "loop1.yaml"))


def test_extends_through_a_symlink_out_of_the_folder(tmp_path):
    (tmp_path / "secret.yaml").write_text(BASE)
    d = tmp_path / "specs"
    d.mkdir()
    os.symlink(tmp_path / "secret.yaml", d / "link.yaml")
    (d / "c.yaml").write_text("extends: link.yaml\nname: c\n")
    assert "outside" in run_hostile("validate", str(d / "c.yaml"))


# ------------------------------------------------------------------------- checkpoints


def _edit(d: Path, fn: Callable[[dict[str, torch.Tensor]], Any]) -> None:
    t = load_file(str(d / "model.safetensors"))
    fn(t)
    save_file(t, str(d / "model.safetensors"))


def _truncate(d: Path) -> None:
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _lying_header(d: Path) -> None:
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(struct.pack("<Q", 10**15) + data[8:])


def _nan(d: Path) -> None:
    _edit(d, lambda t: t.update({k: torch.full_like(v, float("nan")) for k, v in t.items()}))


def _one_inf(d: Path) -> None:
    _edit(d, lambda t: t.__setitem__("model.norm.weight", torch.full_like(t["model.norm.weight"], float("inf"))))


def _int_weights(d: Path) -> None:
    _edit(d, lambda t: t.update({k: torch.zeros(v.shape, dtype=torch.int64) for k, v in t.items()}))


def _index_outside(d: Path) -> None:
    names = list(load_file(str(d / "model.safetensors")))
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: "../../etc/passwd" for k in names}}))


def _index_list(d: Path) -> None:
    (d / "model.safetensors.index.json").write_text("[1, 2, 3]")


def _config_list(d: Path) -> None:
    (d / "config.json").write_text("[1, 2]")


def _config_type_list(d: Path) -> None:
    (d / "config.json").write_text(json.dumps({**LLAMA, "model_type": ["llama"]}))


def _config_huge(d: Path) -> None:
    (d / "config.json").write_text(json.dumps({**LLAMA, "hidden_size": 10**30}))


def _config_nan(d: Path) -> None:
    (d / "config.json").write_text(json.dumps({**LLAMA, "rms_norm_eps": float("nan")}))


def _config_not_json(d: Path) -> None:
    (d / "config.json").write_bytes(b"\xff\xfe{not json")


def _config_deep(d: Path) -> None:
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)


CHECKPOINTS = {f.__name__[1:]: f for f in (_truncate, _lying_header, _nan, _one_inf, _int_weights, _index_outside,
                                            _index_list, _config_list, _config_type_list, _config_huge, _config_nan,
                                            _config_not_json, _config_deep)}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_hostile_checkpoint(tmp_path, case):
    d = checkpoint(tmp_path, LLAMA)
    CHECKPOINTS[case](d)
    out = tmp_path / "out"
    text = run_hostile("import-hf", str(d), "-o", str(out))
    assert not out.exists() or not any(out.iterdir()), "half-written output"
    assert "root:" not in text


def test_nan_plmgraph_checkpoint_refused(tmp_path):
    from helpers import tiny

    import plmgraph as pg

    model = pg.build(tiny("gpt2"), seed=0)
    pg.save(model, tmp_path / "m")
    t = load_file(str(tmp_path / "m" / "model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in t.items()}, str(tmp_path / "m" / "model.safetensors"))
    text = run_hostile("export-hf", str(tmp_path / "m"), "-o", str(tmp_path / "hf"))
    assert "NaN" in text
    assert not (tmp_path / "hf").exists()


# ------------------------------------------------------------------------- sizes at build


def test_build_refuses_what_does_not_fit_before_allocating(tmp_path):
    text = run_hostile("build", "gpt2", "-O", "vocab=1000000000000", "--device", "cpu", "-o", str(tmp_path / "o"))
    assert "GiB" in text and "free" in text
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------- ONNX files


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage" * 100, b"\xff" * 4096])
def test_hostile_onnx_file_is_a_clean_error(tmp_path, content):
    """verify_onnx reads an .onnx file the user points at; garbage is an ExportError, not a crash."""
    pytest.importorskip("onnxruntime")
    from helpers import tiny

    import plmgraph as pg
    from exporters.onnx import verify_onnx
    from plmgraph.errors import PlmgraphError

    p = tmp_path / "m.onnx"
    p.write_bytes(content)
    with pytest.raises(PlmgraphError):
        verify_onnx(pg.build(tiny("gpt2"), seed=0).eval(), p)


@pytest.mark.parametrize("size", [10**12, 10**30])
def test_absurd_config_size_is_one_short_message(tmp_path, size):
    """A config.json whose hidden_size is absurd names the size the checkpoint lacks, in a few lines
    (not one line per tensor)."""
    d = checkpoint(tmp_path, LLAMA)
    (d / "config.json").write_text(json.dumps({**LLAMA, "hidden_size": size}))
    text = run_hostile("import-hf", str(d), "-o", str(tmp_path / "out"))
    assert len(text) < 700, text
    assert str(size) in text and "hidden_size" in text and "e.g." in text
    assert not (tmp_path / "out").exists()


def _onnx_with_wrong_inputs() -> bytes:
    """A valid ONNX graph that is not a language model: one float input named x."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    return helper.make_model(graph).SerializeToString()


def _onnx_external_data_outside() -> bytes:
    """A graph whose weight points at external data outside its folder (../../etc/passwd)."""
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph([helper.make_node("Add", ["input_ids", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4])], initializer=[w])
    return helper.make_model(graph).SerializeToString()


ONNX_FILES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "garbage": lambda: b"\x08\x07garbage" * 100,
    "ff": lambda: b"\xff" * 4096,
    "truncated": lambda: _onnx_with_wrong_inputs()[:20],
    "not_a_language_model": _onnx_with_wrong_inputs,
    "external_data_outside": _onnx_external_data_outside,
}


@pytest.mark.parametrize("case", sorted(ONNX_FILES))
def test_hostile_onnx_through_plmgraph_run(tmp_path, case):
    """`plmgraph run FILE.onnx` on a file that is not a plmgraph export: one message, exit 1."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from plmgraph.cli import deploy_cmds  # noqa: F401  (registers run)

    path = tmp_path / "m.onnx"
    path.write_bytes(ONNX_FILES[case]())
    text = run_hostile("run", str(path), "--input-ids", "1,2,3")
    assert "root:" not in text


def test_hostile_export_folder_through_plmgraph_run(tmp_path):
    """An export folder whose model.onnx is garbage and whose config is a JSON list."""
    pytest.importorskip("onnxruntime")
    from plmgraph.cli import deploy_cmds  # noqa: F401

    d = tmp_path / "deploy"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x00" * 100)
    (d / "config.json").write_text("[1, 2]")
    (d / "spec.yaml").write_text("name: !!python/name:os.system\n")
    run_hostile("run", str(d), "--input-ids", "1,2,3")
