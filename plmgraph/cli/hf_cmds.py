"""`plmgraph import-hf` and `plmgraph export-hf`: Hugging Face checkpoint folders <-> plmgraph folders.

    plmgraph import-hf ./bert-base-uncased -o bert/     # config.json + *.safetensors -> spec.yaml + model.safetensors
    plmgraph import-hf ./llama -o llama/ --spec-only    # only the spec, no weights read
    plmgraph export-hf bert/ -o hf-bert/                # back to config.json + model.safetensors

torch is imported inside the commands, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from . import app, out, run

DTYPES = ("float32", "float16", "bfloat16")


@app.command("import-hf")
def import_hf_cmd(
    path: Annotated[Path, typer.Argument(help="Hugging Face checkpoint folder (config.json + *.safetensors).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write spec.yaml and model.safetensors to.")],
    dtype: Annotated[
        str | None, typer.Option("--dtype", help=f"Parameter dtype ({', '.join(DTYPES)}); default: the checkpoint's.")
    ] = None,
    spec_only: Annotated[
        bool, typer.Option("--spec-only", help="Write only spec.yaml (reads config.json, not the weights).")
    ] = False,
) -> None:
    """Import a Hugging Face checkpoint: check every tensor name and shape against the spec, then save."""

    def go() -> None:
        if dtype is not None and dtype not in DTYPES:
            raise UsageError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPES)}")
        from ..compile.hf import spec_from_hf

        spec = spec_from_hf(path)
        if spec_only:
            from ..compile.io import spec_yaml

            output.mkdir(parents=True, exist_ok=True)
            (output / "spec.yaml").write_text(spec_yaml(spec), encoding="utf-8")
            out.print(f"wrote {output / 'spec.yaml'} ({spec.name}, {spec.source})", highlight=False)
            return
        import torch

        from ..compile.hf import from_hf
        from ..compile.io import save

        model = from_hf(path, dtype=getattr(torch, dtype) if dtype else None)
        save(model, output)
        n = sum(p.numel() for p in model.parameters())
        out.print(f"imported {path} ({spec.source}): {n:,} parameters -> {output}/", highlight=False)

    run(go)


@app.command("export-hf")
def export_hf_cmd(
    path: Annotated[Path, typer.Argument(help="A plmgraph folder (spec.yaml + model.safetensors, from `pg.save`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for config.json and model.safetensors.")],
) -> None:
    """Export a saved plmgraph model as a Hugging Face checkpoint folder (config.json + model.safetensors)."""

    def go() -> None:
        from ..compile.hf import to_hf
        from ..compile.io import load

        model = load(path)
        to_hf(model, output)
        out.print(f"wrote {output}/config.json and model.safetensors", highlight=False)

    run(go)
