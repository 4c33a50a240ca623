"""`plmgraph build`: compile a spec into a PyTorch module, summarise it, optionally save it.

    plmgraph build gpt2                              # meta device: shapes and counts, instant
    plmgraph build llama2-7b -O layers=2 --json      # machine-readable summary
    plmgraph build gpt2 --device cpu -o gpt2-init/   # random init, written as spec.yaml + model.safetensors

torch is imported inside the command, never at import time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, err, out, print_json, run

DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("meta", "cpu", "cuda")


def summary(model: Any) -> list[dict[str, Any]]:
    """One row per top-level block (``embed``, ``decoder.layers``, ``heads.lm``, ...): module
    parameters, graph parameters, and the module type."""
    graph_counts: dict[str, int] = {}
    for name, shape in model.graph.param_shapes().items():
        key = _block(name)
        graph_counts[key] = graph_counts.get(key, 0) + math.prod(shape)
    rows: dict[str, dict[str, Any]] = {}
    modules = dict(model.named_modules())
    for name, p in model.named_parameters():
        key = _block(name)
        row = rows.setdefault(key, {"block": key, "type": type(modules.get(key, model)).__name__, "params": 0})
        row["params"] += p.numel()
    for key, row in rows.items():
        row["graph_params"] = graph_counts.get(key, 0)
        if key.endswith(".layers"):
            stack = model.get_submodule(key.rsplit(".", 1)[0])
            row["type"] = f"{len(stack.schedule)} x Block" + (f" ({len(stack.layers)} distinct)"
                                                              if len(stack.layers) != len(stack.schedule) else "")
    return list(rows.values())


def _block(param: str) -> str:
    """``decoder.layers.3.attn.qkv.weight`` -> ``decoder.layers``; ``heads.lm.bias`` -> ``heads.lm``."""
    parts = param.split(".")
    if parts[0] in ("encoder", "decoder", "heads", "embed") and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


@app.command("build")
def build_cmd(
    spec: Annotated[str, typer.Argument(help="Zoo name or path to a spec .yaml file.", metavar="SPEC")],
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="meta (shapes only, instant) or cpu/cuda (random init). Default: meta, "
                     "or cpu with -o."),
    ] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help=f"Parameter dtype: {', '.join(DTYPES)}.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the random initialisation.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write spec.yaml + model.safetensors to this folder.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into an -o folder that holds other files too (they are kept; "
                           "only spec.yaml and model.safetensors are replaced).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Compile SPEC into a PyTorch module: a table of parameters per block, checked against the graph."""

    def go() -> None:
        from ..errors import UsageError

        dev = device or ("cpu" if output is not None else "meta")
        if dev.split(":")[0] not in DEVICES:
            raise UsageError(f"--device {dev!r} is not one of: {', '.join(DEVICES)}")
        if dtype is not None and dtype not in DTYPES:
            raise UsageError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPES)}")
        if output is not None and dev == "meta":
            raise UsageError("-o needs weights; use --device cpu (or cuda), not meta")
        from ..spec import load_spec

        spec_obj = load_spec(spec, override)
        if output is not None:  # before the build: a bad -o costs a message, not a model's init
            from ..compile.io import check_folder

            check_folder(output, force=force)
        with err.status(f"building {spec_obj.name} on {dev}", spinner="dots"):
            from ..compile import build

            model = build(spec_obj, device=dev, dtype=dtype, seed=seed)
        rows = summary(model)
        total, expected = model.num_params(), model.graph.num_params()
        if output is not None:
            from ..compile.io import save

            with err.status(f"writing {output}", spinner="dots"):
                save(model, output, force=force)
        if as_json:
            print_json({"name": spec_obj.name, "device": dev, "dtype": str(next(model.parameters()).dtype),
                        "params": total, "graph_params": expected, "match": total == expected, "blocks": rows,
                        "output": str(output) if output else None})
        else:
            _print(spec_obj.name, dev, rows, total, expected, output)
        if total != expected:  # a compiler bug; build() checks names and shapes, so this should never fire
            raise RuntimeError(f"module has {total:,} parameters but the graph counts {expected:,}")

    run(go)


def _print(name: str, dev: str, rows: list[dict[str, Any]], total: int, expected: int, output: Path | None) -> None:
    from rich.table import Table

    t = Table(title=f"{name} on {dev}", title_justify="left")
    t.add_column("block")
    t.add_column("module")
    t.add_column("params", justify="right")
    t.add_column("graph", justify="right")
    for r in rows:
        ok = "" if r["params"] == r["graph_params"] else " [red]!=[/]"
        t.add_row(r["block"], r["type"], f"{r['params']:,}", f"{r['graph_params']:,}{ok}")
    t.add_section()
    t.add_row("total", "", f"{total:,}", f"{expected:,}")
    out.print(t)
    verdict = "[green]matches the graph[/]" if total == expected else "[red]differs from the graph[/]"
    out.print(f"{total:,} parameters; {verdict}")
    if output is not None:
        out.print(f"wrote {output}/spec.yaml and model.safetensors", highlight=False)
