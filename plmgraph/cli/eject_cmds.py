"""`plmgraph eject` (torch-free): an architecture as one standalone, readable PyTorch file.

    plmgraph eject llama2-7b -o llama2.py                      # only torch, no plmgraph import
    plmgraph eject my-spec.yaml -o model.py --weights runs/my/ # plus load() for the trained weights
    plmgraph eject gpt2 -O layers=2,hidden=64,heads=2          # to stdout
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import OVERRIDE_HELP, app, err, run


@app.command("eject")
def eject_cmd(
    spec: Annotated[str, typer.Argument(help="Zoo name, spec file, saved model folder, training run folder or "
                                        "Hugging Face folder.", metavar="SPEC")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The .py file to write. Default: stdout.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="A saved model folder, a training run folder (its last "
                                  "checkpoint) or a model.safetensors: checked against SPEC; the file gets a "
                                  "load() that reads it.")
    ] = None,
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
) -> None:
    """Write SPEC as one nanoGPT-style PyTorch file: config, modules, model, smoke test."""

    def go() -> None:
        from ..eject import eject, spec_of
        from ..errors import UsageError
        from ..spec import load_spec

        if output is not None:
            from .outputs import check_file

            if output.suffix != ".py":
                raise UsageError(f"cannot write {output.name!r}: an ejected model is a .py file")
            check_file(output)
        source = eject(load_spec(spec_of(spec), override), weights=weights)
        if output is None:
            sys.stdout.write(source)
            return
        output.write_text(source, encoding="utf-8")
        err.print(f"wrote {output} ({source.count(chr(10))} lines); run it: python {output}", highlight=False)

    run(go)
