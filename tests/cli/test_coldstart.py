"""Start-up cost: what each command imports, in a fresh interpreter through the real entry point.

Spec-only commands never import torch; ``--help`` and ``--version`` not even pydantic or
networkx; a spec that extends a chain of parents resolves without networkx; a meta-device
build never imports ``torch._dynamo`` (seconds of import for nothing).  Timing itself is
`tools/bench_coldstart.py`'s job: a shared machine makes wall-clock asserts flaky.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torch._dynamo", "networkx", "pydantic", "onnx", "graphviz")

PROBE = """
import atexit, os, sys
atexit.register(lambda: os.write(2, ("\\n@@modules " + ",".join(m for m in {heavy!r} if m in sys.modules)
                                     + "\\n").encode()))
sys.argv = ["plmgraph", *{args!r}]
from plmgraph.cli import main
main()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def imported(*args: str, cwd: Path = ROOT) -> set[str]:
    """The heavy modules `plmgraph ARGS` imported; the command must succeed."""
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, args=list(args))], capture_output=True,
                       text=True, cwd=cwd, env=_env(), timeout=300)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("@@modules"))
    return {m for m in line.removeprefix("@@modules").strip().split(",") if m}


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_spec_machinery(args):
    mods = imported(*args)
    assert not mods & {"torch", "pydantic", "networkx"}, mods


@pytest.mark.parametrize("args", [["build", "--help"], ["export", "--help"], ["diff", "--help"]])
def test_command_help_imports_neither_torch_nor_networkx(args):
    # (typer converts every subcommand's parameters through pydantic, so that one is typer's)
    mods = imported(*args)
    assert not mods & {"torch", "networkx"}, mods


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["validate", "gpt2", "llama3-8b"],
        ["show", "t5-small"],
        ["show", "llama2-7b", "--resolved"],
        ["schema"],
        ["diff", "gpt2", "llama2-7b"],
        ["diff", "bert-base", "albert-base", "--json"],
    ],
)
def test_spec_only_commands_never_import_torch(args):
    mods = imported(*args)
    assert "torch" not in mods
    assert "networkx" not in mods  # the graph's DiGraph is built on first use of ArchGraph.nx


def test_draw_never_imports_torch(tmp_path):
    mods = imported("draw", "gpt2", "-o", str(tmp_path / "gpt2.dot"))
    assert not mods & {"torch", "networkx"}, mods
    assert (tmp_path / "gpt2.dot").is_file()


def test_schema_needs_no_networkx():
    assert "networkx" not in imported("schema")


def test_a_chain_of_extends_resolves_without_networkx_and_a_merge_with_it(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: gpt2\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: [gpt2, a.yaml]\nname: b\n")
    code = (
        "import sys\n"
        "from plmgraph.spec import load_merged, load_spec\n"
        f"load_spec({str(tmp_path / 'a.yaml')!r})\n"
        "assert 'networkx' not in sys.modules, 'a chain imported networkx'\n"
        f"m = load_merged({str(tmp_path / 'b.yaml')!r})\n"
        "assert 'networkx' in sys.modules, 'two parents: the DAG is networkx'\n"
        "import json; print(json.dumps([[u.name, v.name] for u, v in m.graph.edges]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [["b.yaml", "gpt2.yaml"], ["b.yaml", "a.yaml"],
                                                       ["a.yaml", "gpt2.yaml"]]


def test_meta_build_never_imports_dynamo():
    mods = imported("build", "llama2-7b", "--device", "meta")
    assert "torch" in mods
    assert "torch._dynamo" not in mods, "a meta build imported torch._dynamo (an init drew random numbers on meta)"


def test_embedding_tables_draw_no_init_on_meta_but_do_on_cpu():
    torch = pytest.importorskip("torch")
    from plmgraph.compile.embedding import Embedding, TokenEmbedding

    with torch.device("meta"):
        e = TokenEmbedding(10, 4)
    assert e.weight.is_meta and e.weight.shape == (10, 4)
    torch.manual_seed(0)
    cpu = Embedding(10, 4)
    torch.manual_seed(0)
    ref = torch.nn.Embedding(10, 4)
    torch.testing.assert_close(cpu.weight, ref.weight)  # off meta: nn.Embedding's init, unchanged


def test_bench_coldstart_reports_every_command_as_json(tmp_path):
    out = tmp_path / "cold.json"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_coldstart.py"), "--repeats", "1", "--only",
                        "validate", "version", "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                       env=_env(), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    rows = {row["command"]: row for row in data["rows"]}
    assert {"python -c pass", "import torch", "validate gpt2", "--version"} <= set(rows)
    assert data["problems"] == []
    assert rows["validate gpt2"]["ratio_to_import_torch"] > 0
    assert "torch" not in rows["validate gpt2"]["imports"]
    assert "x import torch" in r.stdout and "validate gpt2" in r.stdout


def test_import_plmgraph_is_free_and_every_public_name_resolves():
    code = (
        "import sys, plmgraph\n"
        "assert not {'pydantic', 'networkx', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
        "assert set(plmgraph.__all__) - {'__version__'} == set(plmgraph._LAZY)\n"
        "for name in plmgraph.__all__:\n"
        "    assert getattr(plmgraph, name) is not None, name\n"
        "assert callable(plmgraph.load_spec) and plmgraph.spec.validate.__name__ == 'validate'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("first", ["plmgraph.graph", "plmgraph.kinds", "plmgraph.compile", "plmgraph.errors",
                                   "plmgraph.spec.validate", "plmgraph.exporters.graphviz", "plmgraph.cli.spec_cmds"])
def test_any_subpackage_can_be_imported_first(first):
    """Nothing is imported for you by ``import plmgraph`` any more, so no import order may matter."""
    code = (f"import {first}\nfrom plmgraph.spec import load_spec, validate\n"
            "assert callable(validate)\nload_spec('gpt2')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
