"""Save and load compiled models: ``dir/spec.yaml`` (the validated spec, reloadable) and
``dir/model.safetensors`` (every parameter once, under its graph name; tied and shared
tensors are stored once because the model registers them once).  Safetensors only, never
pickle.  `save` writes into a temporary folder and renames it (a new folder) or its files
(an existing one) into place, so a crash never leaves a half-written checkpoint, and it never
deletes a file it did not write.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
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


def save(model: torch.nn.Module, directory: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``spec.yaml`` and ``model.safetensors`` into `directory`.

    A new folder is written beside its final place and renamed into it.  In an existing folder
    only plmgraph's own files are replaced, each atomically (``os.replace``); a folder that holds
    anything else is refused unless `force`, and even then nothing but those two files is touched.

    Returns:
        The directory written.

    Raises:
        CheckpointError: for a model on the meta device, a folder that holds other files (without
            `force`), a path that is a file, or a place that cannot be written.
    """
    from safetensors.torch import save_file

    if any(p.is_meta for p in model.parameters()):
        raise CheckpointError("cannot save a model built on the meta device: it has no weights")
    check_folder(directory, OWN_FILES, force=force)
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters()}

    def write(tmp: Path) -> None:
        (tmp / SPEC_FILE).write_text(spec_yaml(model.spec), encoding="utf-8")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "plmgraph_spec": model.spec.name})

    return write_folder(directory, write, OWN_FILES, force=force)


#: The files `save` writes; in an existing folder these, and only these, are replaced.
OWN_FILES = (SPEC_FILE, WEIGHTS_FILE)
_TMP = ".plmgraph-tmp-"


def foreign_files(directory: str | os.PathLike, own: tuple[str, ...] = OWN_FILES) -> list[str]:
    """Names in an existing `directory` that are not among `own` (nor a crashed write's leftovers)."""
    return sorted(p.name for p in Path(directory).iterdir() if p.name not in own and not p.name.startswith(_TMP))


def check_folder(directory: str | os.PathLike, own: tuple[str, ...] = OWN_FILES, *, force: bool = False) -> None:
    """Refuse early, before any work, an output folder that `write_folder` could not fill.

    Raises:
        CheckpointError: `directory` is a file; it holds files other than `own` (unless `force`);
            or it (or the nearest existing folder above it) cannot be written.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: is a file, not a folder; choose a folder to write {', '.join(own)} to")
    if out.is_dir():
        try:
            others = foreign_files(out, own)
        except OSError as e:
            raise _unwritable(out, e) from None
        if others and not force:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise CheckpointError(
                f"{_named(out)}: the folder already holds files plmgraph did not write ({shown}); choose a new or "
                f"empty folder, or pass --force (in Python: force=True) to write {' and '.join(own)} beside them "
                "(nothing else in the folder is changed or deleted)"
            )
        probe_in = out
    else:
        probe_in = out.parent
        while not probe_in.exists() and probe_in != probe_in.parent:
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            raise CheckpointError(f"{out}: cannot create the folder, {probe_in} is a file")
    try:  # the only honest writability test (root passes os.access everywhere, even in /proc)
        tempfile.TemporaryDirectory(prefix=_TMP, dir=probe_in).cleanup()
    except OSError as e:
        raise _unwritable(out, e) from None


def write_folder(directory: str | os.PathLike, write: Callable[[Path], None], own: tuple[str, ...] = OWN_FILES,
                 *, force: bool = False) -> Path:
    """Fill `directory` with what ``write(tmp)`` writes into a fresh temporary folder, atomically.

    A new `directory` is the temporary folder renamed into place; in an existing one each written
    file replaces its namesake with ``os.replace`` and every other file is left alone.  On any
    error the temporary folder is removed, so a failed write leaves nothing behind.

    Raises:
        CheckpointError: see `check_folder`, and for an ``OSError`` while writing.
    """
    check_folder(directory, own, force=force)
    out = Path(directory)
    existing = out.is_dir()
    made = [p for p in out.parents if not p.exists()]  # folders above `out` this call creates
    tmp: Path | None = None
    done = False
    try:
        if made:
            out.parent.mkdir(parents=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=out if existing else out.parent))
        write(tmp)
        if existing:
            for f in sorted(tmp.iterdir(), key=lambda f: f.name == SPEC_FILE):  # the spec last: it names the weights
                os.replace(f, out / f.name)
        else:
            tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is an ordinary folder
            tmp.rename(out)
        done = True
    except OSError as e:
        raise _unwritable(out, e) from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            for p in made:  # innermost first; only folders this call created, and only while empty
                try:
                    p.rmdir()
                except OSError:
                    break
    return out


def _unwritable(out: Path, e: OSError) -> CheckpointError:
    return CheckpointError(f"{_named(out)}: cannot write there ({e.strerror or e})")


def _named(out: Path) -> str:
    """``.`` (or ``..``) says little in a message: add the folder it is."""
    return str(out) if out.name not in ("", ".", "..") else f"{out} ({out.resolve()})"


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
    check_values(tensors, source)
    model.load_state_dict(tensors, strict=True, assign=True)


def check_values(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Weights are floating-point and finite: an all-NaN (or int, or bool) checkpoint is refused, not
    loaded into a model that then answers NaN.

    Raises:
        CheckpointError: naming the first tensors that are not floating point or hold NaN / inf.
    """
    not_float = [f"{k} ({str(t.dtype).replace('torch.', '')})" for k, t in tensors.items() if not t.is_floating_point()]
    if not_float:
        raise CheckpointError(f"{source}: weights must be floating point; {len(not_float)} tensors are not: "
                              + ", ".join(not_float[:5]))
    bad = [k for k, t in tensors.items() if t.numel() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} of {len(tensors)} tensors hold NaN or infinite values "
                              f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); the checkpoint is corrupt")
