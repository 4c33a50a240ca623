"""Save and load compiled models: ``dir/spec.yaml`` (the validated spec, reloadable) and
``dir/model.safetensors`` (every parameter once, under its graph name; tied and shared
tensors are stored once because the model registers them once).  Safetensors only, never
pickle.  `save` writes into a temporary sibling folder and renames it into place, so a
crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import CheckpointError, PlmgraphError
from ..spec import load_spec

SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "model.safetensors"


def spec_yaml(spec: Any) -> str:
    """The spec as YAML, ``extends`` resolved away: the merged mapping it was validated from
    (overrides included), so derived values stay derived and ``--override`` on the saved
    file behaves as on the original; a spec built in Python writes the fields it was given."""
    merged = getattr(spec, "_merged", None)
    if merged is not None:
        data = {k: v for k, v in merged.data.items() if k != "extends"}
    else:
        data = spec.model_dump(mode="json", exclude_unset=True, exclude={"extends"})
    head = f"# plmgraph spec, written by plmgraph.save from {spec.name}\n"
    return head + yaml.safe_dump(data, sort_keys=False)


def save(model: torch.nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``spec.yaml`` and ``model.safetensors`` into `directory` (replaced if it exists).

    Returns:
        The directory written.
    """
    from safetensors.torch import save_file

    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    if any(p.is_meta for p in model.parameters()):
        raise CheckpointError("cannot save a model built on the meta device: it has no weights")
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is an ordinary folder
    try:
        (tmp / SPEC_FILE).write_text(spec_yaml(model.spec), encoding="utf-8")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "plmgraph_spec": model.spec.name})
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load(directory: str | os.PathLike, device: str | torch.device | None = None,
         dtype: torch.dtype | str | None = None) -> torch.nn.Module:
    """Rebuild the model of `directory` and load its weights (without random init), in eval mode
    like a pretrained model (call ``.train()`` to fine-tune).

    Raises:
        SpecError: when ``spec.yaml`` is missing or invalid.
        CheckpointError: when the weights file is missing or corrupt, or its tensors do not
            match the spec (each missing, unexpected or wrongly shaped tensor is named).
    """
    from .build import build

    d = Path(directory)
    if not (d / SPEC_FILE).is_file():
        raise CheckpointError(f"{d}: no {SPEC_FILE}; a plmgraph checkpoint folder holds {SPEC_FILE} and {WEIGHTS_FILE}")
    spec = load_spec(d / SPEC_FILE)
    model = build(spec, device="meta", dtype=dtype)
    tensors = read_tensors(d / WEIGHTS_FILE, device)
    load_weights(model, tensors, str(d / WEIGHTS_FILE))
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    return model.eval()


def read_tensors(path: Path, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a missing or corrupt file is a `CheckpointError`."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device=str(torch.device(device or "cpu")))
    except PlmgraphError:
        raise
    except Exception as e:  # safetensors raises its own error types, and OSError, for bad files
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Put `tensors` (graph names) into `model`, replacing its parameters (meta models too).

    Raises:
        CheckpointError: naming every missing, unexpected and wrongly shaped tensor.
    """
    want = {k: tuple(p.shape) for k, p in model.named_parameters()}
    got = {k: tuple(t.shape) for k, t in tensors.items()}
    problems = []
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and got[k] != want[k]]
    if missing:
        problems.append(f"missing {len(missing)}: " + ", ".join(f"{k} {list(want[k])}" for k in missing[:10]))
    if extra:
        problems.append(f"unexpected {len(extra)}: " + ", ".join(f"{k} {list(got[k])}" for k in extra[:10]))
    if wrong:
        problems.append("wrong shape: " + ", ".join(f"{k} is {list(got[k])}, expected {list(want[k])}"
                                                      for k in wrong[:10]))
    if problems:
        raise CheckpointError(f"{source} does not fit {model.spec.name} "
                              f"({math.fsum(math.prod(s) for s in want.values()):,.0f} params): " + "; ".join(problems))
    model.load_state_dict(tensors, strict=True, assign=True)
