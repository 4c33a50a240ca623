"""`plmgraph export`: write a model as ONNX, optimize it for ONNX Runtime, verify it against PyTorch.

    plmgraph export gpt2 -O layers=2 -o gpt2.onnx              # random init from a spec
    plmgraph export ./gpt2-ckpt -o gpt2.onnx --kv-cache          # spec.yaml + model.safetensors folder
    plmgraph export bert-base -O layers=2 -o bert.onnx --json    # verification report as JSON

torch and onnxruntime are imported inside the command, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, err, out, print_json, run

STAGES = {"export": "exporting {name} with torch.onnx (dynamo)", "optimize": "optimizing with ONNX Runtime",
          "verify": "verifying in an ONNX Runtime session against PyTorch"}


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Argument(help="Zoo name, spec .yaml, or a folder with spec.yaml + "
                                          "model.safetensors (plmgraph build -o / import-hf).",
                                          metavar="SPEC_OR_CHECKPOINT_DIR")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    kv_cache: Annotated[bool, typer.Option("--kv-cache", help="Decoders: past_key_values.{i}.key/value inputs "
                                           "and present.{i}.key/value outputs (one graph for prefill and decode); "
                                           "Transformer-XL / XLNet: segment memories past_key_values.{i} and "
                                           "present.{i}.")]
    = False,
    no_optimize: Annotated[bool, typer.Option("--no-optimize", help="Skip the onnxscript and ONNX Runtime "
                                              "graph optimizations.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the ONNX Runtime vs PyTorch check.")] = False,
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random initialisation (specs only).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Export SPEC_OR_CHECKPOINT_DIR to ONNX, optimize it and check it in ONNX Runtime on new shapes."""

    def go() -> None:
        from .outputs import check_file

        check_file(output)
        model = _model(source, override, seed)
        from plmgraph.exporters import onnx as ox  # exporters/ installs as plmgraph.exporters

        name = model.spec.name
        with err.status(STAGES["export"].format(name=name), spinner="dots") as status:
            def stage(s: str) -> None:
                status.update(STAGES[s].format(name=name))

            path = ox.export_onnx(model, output, kv_cache=kv_cache, optimize=not no_optimize, verify=False,
                                  opset=opset, on_stage=stage)
            report = None
            if not no_verify:
                stage("verify")
                report = ox.verify_onnx(model, path, kv_cache=kv_cache)
        _report(name, path, report, kv_cache, as_json)

    run(go)


def _model(source: str, override: list[str] | None, seed: int) -> Any:
    from ..errors import UsageError

    folder = Path(source)
    if folder.is_dir():
        if override:
            raise UsageError("-O/--override edits a spec; a checkpoint folder is exported as saved")
        with err.status(f"loading {folder}", spinner="dots"):
            from ..compile.io import load

            return load(folder)
    from ..spec import load_spec

    spec = load_spec(source, override)
    with err.status(f"building {spec.name} (random init, seed {seed})", spinner="dots"):
        from ..compile import build

        return build(spec, device="cpu", seed=seed)


def _report(name: str, path: Path, report: Any, kv_cache: bool, as_json: bool) -> None:
    import onnx
    from rich.table import Table

    proto = onnx.load(str(path), load_external_data=False)
    io = {"inputs": [_io(v) for v in proto.graph.input], "outputs": [_io(v) for v in proto.graph.output]}
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    if as_json:
        print_json({"name": name, "path": str(path), "bytes": size, "kv_cache": kv_cache, **io,
                    "verification": report.to_dict() if report else None})
        return
    t = Table(title=f"{name} -> {path} ({size / 2**20:.1f} MiB)", title_justify="left")
    t.add_column("")
    t.add_column("name")
    t.add_column("shape")
    for kind in ("inputs", "outputs"):
        for row in io[kind]:
            t.add_row(kind[:-1], row["name"], str(row["shape"]))
    out.print(t)
    if report is None:
        out.print("not verified (--no-verify)")
        return
    v = Table(title=f"ONNX Runtime (CPU) vs PyTorch eager, fp32: max |diff| <= {report.atol:g}",
              title_justify="left")
    for col, justify in (("case", "left"), ("output", "left"), ("shape", "left"), ("max abs diff", "right")):
        v.add_column(col, justify=justify)
    for c in report.checks:
        v.add_row(c.case, c.output, str(list(c.shape)), f"{c.max_abs_diff:.2e}")
    out.print(v)
    out.print(f"[green]verified[/]: {len(report.checks)} outputs, max abs diff {report.max_abs_diff:.2e}")


def _io(value: Any) -> dict[str, Any]:
    dims = value.type.tensor_type.shape.dim
    return {"name": value.name, "shape": [d.dim_param or d.dim_value for d in dims]}
