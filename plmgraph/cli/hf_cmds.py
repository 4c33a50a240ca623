"""`plmgraph import-hf` and `plmgraph export-hf`: Hugging Face checkpoint folders <-> plmgraph folders.

    plmgraph import-hf ./bert-base-uncased -o bert/     # config.json + *.safetensors -> spec.yaml + model.safetensors
    plmgraph import-hf ./llama -o llama/ --spec-only    # only the spec, no weights read
    plmgraph export-hf bert/ -o hf-bert/                # back to config.json + model.safetensors

The output folder is written atomically: a new folder appears complete or not at all; in an
existing one only the files the command writes are replaced, and a folder holding anything
else is refused unless --force (which still deletes nothing).  torch is imported inside the
commands, never at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app, out, run

DTYPES = ("float32", "float16", "bfloat16")
HF_FILES = ("config.json", "model.safetensors")

Force = Annotated[
    bool, typer.Option("--force", help="Write into an -o folder that holds other files too (they are kept; only "
                       "the files this command writes are replaced).")
]


def check_config(path: Path) -> None:
    """Refuse a ``config.json`` whose shape is not a Hugging Face config (a JSON object whose
    ``model_type`` is a string) with one clear message, before the converter reads it.

    A missing or unparsable file is left to the converter, which names it.
    """
    from ..errors import ConversionError

    f = path / "config.json"
    if not f.is_file():
        return
    try:
        cfg: Any = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return
    if not isinstance(cfg, dict):
        raise ConversionError(f"{f}: a Hugging Face config.json is a JSON object ({{\"model_type\": ...}}), "
                              f"got a JSON {_json_kind(cfg)}")
    mt = cfg.get("model_type")
    if mt is not None and not isinstance(mt, str):
        raise ConversionError(f"{f}: model_type must be a string such as \"llama\", got a JSON {_json_kind(mt)} "
                              f"({json.dumps(mt)[:60]})")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


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
    adapter: Annotated[
        Path | None, typer.Option("--adapter", help="A PEFT adapter folder (adapter_config.json + "
                                  "adapter_model.safetensors: LoRA, IA3, prompt or prefix tuning) for this base "
                                  "model; the saved model carries it as its spec's tuning.")
    ] = None,
    force: Force = False,
) -> None:
    """Import a Hugging Face checkpoint: check every tensor name and shape against the spec, then save."""

    def go() -> None:
        from ..errors import UsageError

        if dtype is not None and dtype not in DTYPES:
            raise UsageError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPES)}")
        check_config(path)
        from ..compile.hf import spec_from_hf
        from ..compile.io import OWN_FILES, SPEC_FILE, check_folder, save, spec_yaml, write_folder

        spec = spec_from_hf(path)
        check_folder(output, OWN_FILES, force=force)
        if spec_only:
            text = spec_yaml(spec)
            write_folder(output, lambda tmp: (tmp / SPEC_FILE).write_text(text, encoding="utf-8"), OWN_FILES,
                         force=force)
            out.print(f"wrote {output / SPEC_FILE} ({spec.name}, {spec.source})", highlight=False)
            return
        import torch

        from ..compile.hf import from_hf

        if adapter is not None:
            from ..compile.hf import load_state_dict
            from ..tuning.peft import load_peft

            base = load_state_dict(path, None, getattr(torch, dtype) if dtype else None)
            model = load_peft(spec, base, adapter)
        else:
            model = from_hf(path, dtype=getattr(torch, dtype) if dtype else None)
        save(model, output, force=force)
        n = sum(p.numel() for p in model.parameters())
        out.print(f"imported {path} ({spec.source}): {n:,} parameters -> {output}/", highlight=False)
        if adapter is not None:
            from ..tuning import trainable_report

            out.print(f"adapter {adapter}: {model.tuning.kind}, {trainable_report(model)}", highlight=False)

    run(go)


@app.command("export-hf")
def export_hf_cmd(
    path: Annotated[Path, typer.Argument(help="A plmgraph folder (spec.yaml + model.safetensors, from `pg.save`), "
                                         "or a training run (its latest checkpoint).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for config.json and model.safetensors.")],
    force: Force = False,
) -> None:
    """Export a saved plmgraph model as a Hugging Face checkpoint folder (config.json + model.safetensors);
    a tuned model's adapter goes to adapter/ in PEFT's layout (LoRA, IA3, prompt or prefix tuning)."""

    def go() -> None:
        from ..compile.io import check_folder, write_folder
        from ..errors import CheckpointError
        from ..tuning.core import load_folder, write_hf

        own = (*HF_FILES, "adapter")
        check_folder(output, own, force=force)
        model = load_folder(path)
        tuned = model.tuning.kind != "full"
        if tuned and (output / "adapter").exists():
            raise CheckpointError(f"{output}/adapter exists; choose a new -o folder for a tuned model")
        if tuned:
            from ..tuning.core import for_export
            from ..tuning.peft import to_peft

            if model.tuning.kind in ("lora", "ia3", "prompt"):
                to_peft(model)  # an adapter PEFT cannot express fails before anything is written
            elif model.tuning.added:
                for_export(model)
        written: list[str] = []
        write_folder(output, lambda tmp: written.extend(write_hf(model, tmp)), own, force=force)
        out.print(f"wrote {output}/" + f", {output}/".join(written), highlight=False)

    run(go)
