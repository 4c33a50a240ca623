"""`plmgraph export`: write a model as ONNX, optimize it for ONNX Runtime, verify it against PyTorch.

    plmgraph export gpt2 -O layers=2 -o gpt2.onnx              # random init from a spec
    plmgraph export ./gpt2-ckpt -o gpt2.onnx --kv-cache          # spec.yaml + model.safetensors folder
    plmgraph export bert-base -O layers=2 -o bert.onnx --json    # verification report as JSON
    plmgraph export runs/llama -o deploy/ --kv-cache             # a folder Optimum / ORT GenAI load (no .onnx suffix)
    plmgraph export runs/llama -o deploy/ --kv-cache --precision int4   # fp16 (GPU), int8, int4 (CPU); README

torch and onnxruntime are imported inside the command, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, err, out, print_json, run

STAGES = {"export": "exporting {name} with torch.onnx (dynamo)", "optimize": "optimizing with ONNX Runtime",
          "verify": "verifying in an ONNX Runtime session against PyTorch",
          "convert": "converting the graph's precision"}


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Argument(help="Zoo name, spec .yaml, or a folder with spec.yaml + "
                                          "model.safetensors (plmgraph build -o / import-hf).",
                                          metavar="SPEC_OR_CHECKPOINT_DIR")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write, or a folder (a path "
                                         "without the .onnx suffix): model.onnx, config.json, genai_config.json, "
                                         "the tokenizer (see the README's Deploy section).")],
    kv_cache: Annotated[bool, typer.Option("--kv-cache", help="Decoders: past_key_values.{i}.key/value inputs "
                                           "and present.{i}.key/value outputs (one graph for prefill and decode); "
                                           "Transformer-XL / XLNet: segment memories past_key_values.{i} and "
                                           "present.{i}.")]
    = False,
    no_optimize: Annotated[bool, typer.Option("--no-optimize", help="Skip the onnxscript and ONNX Runtime "
                                              "graph optimizations.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the ONNX Runtime vs PyTorch check.")] = False,
    no_fuse: Annotated[bool, typer.Option("--no-fuse", help="The plain ONNX graph: no ONNX Runtime fused kernels "
                                          "(GroupQueryAttention, MultiHeadAttention, skip norms).")] = False,
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random initialisation (specs only).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    force: Annotated[bool, typer.Option("--force", help="Write a folder -o into a folder that holds other files "
                                        "(they are kept; only the export's own files are replaced).")] = False,
    precision: Annotated[str, typer.Option("--precision", help="Deploy folders of decoders (-o DIR --kv-cache): "
                                           "fp32 (as exported), fp16 (for CUDA), int8 (dynamic quantization, CPU), "
                                           "int4 (MatMulNBits weights, CPU); verified by a perplexity ratio "
                                           "(README: Deploy > Precision).")]
    = "fp32",
    block_size: Annotated[int | None, typer.Option("--block-size", help="int4: weights per scale, along the "
                                                   "input width (16, 32, 64, 128, 256; default 32).")] = None,
    symmetric: Annotated[bool | None, typer.Option("--symmetric/--asymmetric", help="int4: symmetric blocks (no "
                                                   "zero points) or asymmetric (a zero point per block; the "
                                                   "default).", show_default=False)] = None,
) -> None:
    """Export SPEC_OR_CHECKPOINT_DIR to ONNX, optimize it and check it in ONNX Runtime on new shapes."""

    def go() -> None:
        from plmgraph.exporters.onnx_folder import is_folder_target

        from ..exporters import onnx_quant
        from .outputs import check_file

        prec = onnx_quant.precision(precision, block_size, symmetric)
        if is_folder_target(output):
            from ..compile.io import check_folder
            from ..exporters.onnx_folder import FOLDER_FILES

            check_folder(output, FOLDER_FILES, force=force)
            model, tok = _model(source, override, seed, tokenizer=True)
            _folder(model, tok, output, kv_cache, not no_optimize, not no_verify, opset, force, as_json,
                    fuse=not no_fuse, precision=prec)
            return
        if prec.name != "fp32":
            from ..errors import ExportError

            raise ExportError(f"--precision {prec.name} is written for deploy folders (-o DIR --kv-cache), where "
                              f"it is verified by perplexity and loaded by ONNX Runtime GenAI; {output} is one .onnx "
                              "file")
        check_file(output)
        model = _model(source, override, seed)
        from plmgraph.exporters import onnx as ox  # exporters/ installs as plmgraph.exporters

        name = model.spec.name
        with err.status(STAGES["export"].format(name=name), spinner="dots") as status:
            def stage(s: str) -> None:
                status.update(STAGES[s].format(name=name))

            path = ox.export_onnx(model, output, kv_cache=kv_cache, optimize=not no_optimize, verify=False,
                                  opset=opset, on_stage=stage, fuse=not no_fuse)
            report = None
            if not no_verify:
                stage("verify")
                try:
                    report = ox.verify_onnx(model, path, kv_cache=kv_cache)
                except BaseException:  # a graph that fails verification is not left behind
                    for written in (path, path.with_name(path.name + ".data")):
                        written.unlink(missing_ok=True)
                    raise
        _report(name, path, report, kv_cache, as_json)

    run(go)


def _model(source: str, override: list[str] | None, seed: int, tokenizer: bool = False) -> Any:
    """The model to export (and, with `tokenizer`, the tokenizer beside it or None): a run folder's last
    checkpoint, a saved model folder, or a spec built with random weights.  The memory an export needs
    is checked before anything is built or loaded."""
    from ..errors import UsageError
    from ..exporters.onnx_folder import check_export_memory

    folder = Path(source)
    from ..spec.extends import hf_config_of

    hf = folder.is_dir() and hf_config_of(folder) is not None
    if hf and not override and any(folder.glob("*.safetensors")):  # a Hugging Face checkpoint: its weights
        from ..compile.hf import from_hf

        check_export_memory(sum(f.stat().st_size for f in folder.glob("*.safetensors")) // 4, name=str(folder))
        with err.status(f"loading {folder}", spinner="dots"):
            model = from_hf(folder).eval()
        return (model, None) if tokenizer else model
    if folder.is_dir() and not hf:  # (a Hugging Face folder with -O: its config.json as a spec, below)
        if override:
            raise UsageError("-O/--override edits a spec; a checkpoint folder is exported as saved")
        with err.status(f"loading {folder}", spinner="dots"):
            from ..compile.io import load
            from ..train.tokenizer import load_tokenizer
            from ..train.trainer import RUN_FILE, latest_checkpoint, read_run

            ck = folder
            if (folder / RUN_FILE).is_file():
                read_run(folder)
                ck = latest_checkpoint(folder)
            weights = ck / "model.safetensors"
            if weights.is_file():
                check_export_memory(weights.stat().st_size // 4, name=str(folder))
            from ..tuning.core import for_export

            model = for_export(load(ck))  # a tuned model (LoRA, IA3) is merged into its weights first
            if not tokenizer:
                return model
            tok_file = folder / "tokenizer.json"
            return model, (load_tokenizer(tok_file) if tok_file.is_file() else None)
    from ..spec import load_spec

    spec = load_spec(source, override)
    from ..graph import resolve

    check_export_memory(resolve(spec).num_params(), name=spec.name)
    with err.status(f"building {spec.name} (random init, seed {seed})", spinner="dots"):
        from ..compile import build

        model = build(spec, device="cpu", seed=seed)
    return (model, None) if tokenizer else model


def _folder(model: Any, tok: Any, output: Path, kv_cache: bool, optimize: bool, verify: bool, opset: int | None,
            force: bool, as_json: bool, fuse: bool = True, precision: Any = "fp32") -> None:
    from plmgraph.exporters.onnx_folder import export_folder

    name = model.spec.name
    with err.status(STAGES["export"].format(name=name), spinner="dots") as status:
        report = export_folder(model, output, tokenizer=tok, kv_cache=kv_cache, optimize=optimize, verify=verify,
                               opset=opset, force=force, fuse=fuse, precision=precision,
                               on_stage=lambda s: status.update(STAGES[s].format(name=name)))
    v = report.verification
    if as_json:
        print_json({"name": name, "path": str(output), "kv_cache": kv_cache, "files": report.files,
                    "notes": report.notes, "verification": v.to_dict() if v else None})
        return
    out.print(f"wrote {output}/: {', '.join(report.files)}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)
    if v is None:
        out.print("not verified (--no-verify)")
    elif hasattr(v, "summary"):  # a converted precision (onnx_quant.PrecisionReport): a bound, not equality
        out.print(f"[green]within bounds[/]: {v.summary()}", highlight=False)
    else:
        out.print(f"[green]verified[/]: {len(v.checks)} outputs against PyTorch, max abs diff {v.max_abs_diff:.2e}")


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
