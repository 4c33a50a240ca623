"""`plmgraph spec-from-hf`: a Hugging Face checkpoint's architecture as a spec file to edit (reads only
config.json; torch is imported by the importer's tables, no weights are read).

    plmgraph spec-from-hf ./gemma-2-2b -o gemma2.yaml      # extends the nearest zoo spec where one fits
    plmgraph spec-from-hf ./Qwen2.5-0.5B/config.json       # to stdout
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from . import app, err, run


@app.command("spec-from-hf")
def spec_from_hf_cmd(
    path: Annotated[Path, typer.Argument(help="Hugging Face checkpoint folder, or its config.json.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The .yaml file to write. Default: stdout.")
    ] = None,
) -> None:
    """Write the spec of a Hugging Face config as YAML, as a change to the nearest zoo spec where one fits."""

    def go() -> None:
        from ..errors import CheckpointError, UsageError
        from ..spec.extends import hf_config_of

        config = hf_config_of(path)
        if config is None:
            raise CheckpointError(f"{path}: not a Hugging Face checkpoint folder (no config.json in it) "
                                  "nor a config.json")
        if output is not None:
            from .outputs import check_file

            if output.suffix not in (".yaml", ".yml"):
                raise UsageError(f"cannot write {output.name!r}: a spec is a .yaml file")
            check_file(output)
        from ..compile.hf_types.spec_file import spec_file

        text, spec, zoo = spec_file(config)
        if output is None:
            sys.stdout.write(text)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent if str(output.parent) else ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        what = f"extends {zoo}" if zoo else "the whole spec: no zoo spec is close"
        err.print(f"wrote {output} ({spec.name}, {spec.source}; {what})", highlight=False)

    run(go)
