"""Cold-start time of the command line: each command in a fresh Python process.

    python tools/bench_coldstart.py                # table: median seconds, ratio to `import torch`
    python tools/bench_coldstart.py --repeats 15 --json coldstart.json
    python tools/bench_coldstart.py --only validate show

Every command runs `--repeats` times in a new interpreter (``python -m plmgraph ...``, so a
console-script shim such as pyenv's is not measured) after one untimed warm-up run, and the
median wall time (and the child's CPU time, which moves less on a busy machine) is reported
next to ``python -c "import torch"`` (the floor of anything that builds a model) and
``python -c pass`` (the interpreter itself), with the ratios to ``import torch`` (of the wall
times and of the CPU times).  An extra,
untimed run of each command reports which heavy modules it imported: spec-only commands must
never import torch, and a meta-device build never ``torch._dynamo``.

Bytecode caches are on, as for an installed package (pip compiles on install), even when the
environment sets PYTHONDONTWRITEBYTECODE: without them every run also compiles plmgraph's
sources, which measures the sandbox, not plmgraph.  The machine's other load moves the
numbers; the ratios move less.  ``--instructions`` also counts each command's instructions
once under valgrind's callgrind (slow, 30 to 100 times a run, but the same on a busy machine as
on a quiet one: the measure to compare two versions by when the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torch._dynamo", "networkx", "pydantic", "onnx", "transformers")


def commands(out: Path) -> dict[str, list[str]]:
    """name -> argv after ``python``; ``plmgraph`` commands run as ``-m plmgraph``."""
    pg = ["-m", "plmgraph"]
    return {
        "python -c pass": ["-c", "pass"],
        "import torch": ["-c", "import torch"],
        "--help": [*pg, "--help"],
        "--version": [*pg, "--version"],
        "list": [*pg, "list"],
        "validate gpt2": [*pg, "validate", "gpt2"],
        "show gpt2": [*pg, "show", "gpt2"],
        "show llama2-7b": [*pg, "show", "llama2-7b"],
        "schema": [*pg, "schema"],
        "diff gpt2 llama-7b": [*pg, "diff", "gpt2", "llama-7b"],
        "diff gpt2 llama2-7b": [*pg, "diff", "gpt2", "llama2-7b"],
        "draw gpt2 (.dot)": [*pg, "draw", "gpt2", "-o", str(out / "gpt2.dot")],
        "draw gpt2 (.svg)": [*pg, "draw", "gpt2", "-o", str(out / "gpt2.svg")],
        "build llama2-7b --device meta": [*pg, "build", "llama2-7b", "--device", "meta"],
    }


#: The commands that read specs only: they must not import torch.
SPEC_ONLY = ("--help", "--version", "list", "validate gpt2", "show gpt2", "show llama2-7b", "schema",
             "diff gpt2 llama-7b", "diff gpt2 llama2-7b", "draw gpt2 (.dot)", "draw gpt2 (.svg)")
BASELINES = ("python -c pass", "import torch")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("COLUMNS", "200")
    return env


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the child (user + system), exit status, stderr)."""
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=errf)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        stderr = errf.read().decode("utf-8", "replace")
    return wall, usage.ru_utime + usage.ru_stime, p.returncode, stderr


_PROBE = """
import atexit, os, sys
def _report():
    os.write(2, ("\\n@@modules " + ",".join(m for m in {heavy!r} if m in sys.modules) + "\\n").encode())
atexit.register(_report)
sys.argv = ["plmgraph", *{args!r}]
from plmgraph.cli import main
main()
"""


def _imports(argv: list[str], env: dict[str, str]) -> list[str] | None:
    """The heavy modules a plmgraph command imported (None for a baseline)."""
    if argv[:2] != ["-m", "plmgraph"]:
        return None
    code = _PROBE.format(heavy=HEAVY, args=argv[2:])
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    line = next((ln for ln in r.stderr.splitlines() if ln.startswith("@@modules")), "@@modules ")
    return [m for m in line.removeprefix("@@modules").strip().split(",") if m]


def _instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions executed by ``python ARGV`` under callgrind (None without valgrind)."""
    import re
    import shutil

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    r = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *argv],
                       env={**env, "PYTHONHASHSEED": "0"}, cwd=ROOT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    return int(m.group(1)) if m else None


def measure(repeats: int, only: list[str] | None = None, instructions: bool = False) -> dict[str, Any]:
    env = _env()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp))
        names = [n for n in cmds if n in BASELINES or not only or any(o in n for o in only)]
        rows: dict[str, dict[str, Any]] = {}
        for name in names:
            argv = cmds[name]
            _, _, rc, stderr = _run(argv, env)  # warm-up: page cache, bytecode cache
            if rc != 0:
                rows[name] = {"command": name, "rc": rc, "error": stderr.strip().splitlines()[-1:]}
                print(f"{name}: exit status {rc}: {stderr.strip()[-300:]}", file=sys.stderr)
                continue
            runs = [_run(argv, env) for _ in range(repeats)]
            times, cpu = [r[0] for r in runs], [r[1] for r in runs]
            rows[name] = {"command": name, "argv": ["python", *argv], "rc": rc,
                          "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                          "cpu_median_s": statistics.median(cpu), "times_s": times, "cpu_s": cpu,
                          "imports": _imports(argv, env)}
            if instructions:
                rows[name]["instructions"] = _instructions(argv, env)
    torch_s = rows.get("import torch", {}).get("median_s")
    torch_cpu = rows.get("import torch", {}).get("cpu_median_s")
    for row in rows.values():
        if torch_s and "median_s" in row:
            row["ratio_to_import_torch"] = row["median_s"] / torch_s
        if torch_cpu and "cpu_median_s" in row:
            row["cpu_ratio_to_import_torch"] = row["cpu_median_s"] / torch_cpu
    problems = []
    for name in SPEC_ONLY:
        imported = (rows.get(name) or {}).get("imports") or []
        if "torch" in imported:
            problems.append(f"{name} imported torch")
    build = (rows.get("build llama2-7b --device meta") or {}).get("imports") or []
    if "torch._dynamo" in build:
        problems.append("build --device meta imported torch._dynamo")
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "repeats": repeats, "bytecode_cache": True,
            "rows": list(rows.values()), "problems": problems}


def print_table(result: dict[str, Any]) -> None:
    print(f"cold start, fresh process each run: median of {result['repeats']} (python {result['python']}, "
          f"{result['cpus']} CPUs)")
    print(f"{'command':34} {'median':>8} {'min':>8} {'cpu':>8} {'x import torch':>15} {'cpu x torch':>12}"
          "  heavy imports")
    for row in result["rows"]:
        if "median_s" not in row:
            print(f"{row['command']:34} {'failed':>8}  exit status {row['rc']}")
            continue
        ratio, cpu_ratio = row.get("ratio_to_import_torch"), row.get("cpu_ratio_to_import_torch")
        imports = row.get("imports")
        print(f"{row['command']:34} {row['median_s']:7.3f}s {row['min_s']:7.3f}s {row['cpu_median_s']:7.3f}s "
              f"{(f'{ratio:.2f}' if ratio is not None else '-'):>15} "
              f"{(f'{cpu_ratio:.2f}' if cpu_ratio is not None else '-'):>12}  "
              f"{'-' if imports is None else (', '.join(imports) or 'none')}"
              + (f"  {row['instructions'] / 1e9:.3f} G instructions" if row.get("instructions") else ""))
    for p in result["problems"]:
        print(f"PROBLEM: {p}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per command (default 7)")
    ap.add_argument("--only", nargs="+", metavar="WORD", help="only the commands whose name contains WORD")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="write the results as JSON to FILE (or stdout with no FILE)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count each command's instructions once under valgrind (slow; steady on a busy machine)")
    args = ap.parse_args(argv)
    result = measure(max(1, args.repeats), args.only, args.instructions)
    if args.json == "-":
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["problems"] or any(r.get("rc") for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
