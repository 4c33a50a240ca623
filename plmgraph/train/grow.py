"""Progressive stacking (Gong et al. 2019, "Efficient Training of BERT by Progressively Stacking"):
train a shallow model, copy its layers on top of themselves, train the deeper model on.

    plmgraph grow runs/bert-6 --layers 12 -o runs/bert-12    # then: plmgraph train runs/bert-12 --steps ...
    deeper = pg.grow(model, 12)                               # the same on a model in memory

A graph transformation: the spec is the old one with ``layers`` N -> M (so ``plmgraph diff`` of the
two reads "layers: N -> M" and nothing else), and layer j of the new stack is a copy of layer
``j mod N`` of the old: M = 2N is the paper's stacking (layer i + N = layer i), larger M repeats the
stack again, and M between N and 2N stacks the first M - N layers.  Everything outside the layers
(embeddings, final norm, heads) is copied as it is.

Shared layers (ALBERT): with ``sharing: all`` every layer is the one shared block, so the deeper
model is that block applied M times (stacking copies it onto itself); with ``sharing: groups`` each
group of L = N / groups consecutive layers keeps its size, the model gets M / L groups, and group
``g`` of the new stack is a copy of group ``g mod groups`` (M must be a multiple of L).

A grown run folder is a run like any other: ``train.json`` (the shallow run's configuration and data,
with ``grown_from``), its tokenizer, and one checkpoint ``step-000000`` written by the trainer's own
writer: the grown weights with a fresh AdamW state; the step count and learning-rate schedule start
again, and the data position continues where the shallow run stopped.  The folder is written beside
its final place and renamed into it, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, InputError


def grown_spec(spec: Any, layers: int) -> Any:
    """`spec` with every stack `layers` deep (and ``sharing.groups`` scaled to keep each group's size)."""
    from ..spec import load_spec

    if isinstance(layers, bool) or not isinstance(layers, int):
        raise InputError(f"--layers must be a whole number of layers, got {layers!r}")
    if spec.tuning.kind != "full":
        raise InputError(f"{spec.name} trains only its {spec.tuning.kind} weights; grow the base model (a run "
                         "trained with full tuning), then tune the grown one")
    merged = getattr(spec, "_merged", None)
    data = merged.data if merged is not None else {}
    overrides = []
    for name, stack in spec.stacks.items():
        n = stack.layers
        if layers <= n:
            raise InputError(f"grow to {layers} layers: the {name} already has {n}; growing adds layers, so "
                             f"--layers must be more than {n} ({2 * n} stacks it once, as Gong et al. 2019)")
        if isinstance(data.get(name), dict) and "layers" in data[name]:
            overrides.append(f"{name}.layers={layers}")
    if len(overrides) < len(spec.stacks):
        overrides.append(f"layers={layers}")
    if spec.sharing.kind == "groups":
        n = next(iter(spec.stacks.values())).layers
        per = n // spec.sharing.groups
        if layers % per:
            raise InputError(f"{spec.name} shares weights in groups of {per} layers ({n} layers, "
                             f"sharing.groups {spec.sharing.groups}); grow it to a multiple of {per} layers, "
                             f"not {layers}")
        overrides.append(f"sharing.groups={layers // per}")
    return load_spec(spec, overrides)


def grow_model(model: torch.nn.Module, layers: int) -> torch.nn.Module:
    """A new model `layers` deep whose layer j is a copy of `model`'s layer ``j mod N`` (see the module
    docstring); `model` is left as it is.  The result is in train mode, on `model`'s device."""
    from ..compile import build
    from ..compile.io import load_weights

    spec = grown_spec(model.spec, layers)
    new = build(spec, device="meta")
    old_params = dict(model.named_parameters())
    old_stacks, new_stacks = _stacks(model), _stacks(new)
    # new parameter name -> old parameter name
    source = {name: _source(name, old_stacks, new_stacks) for name, _ in new.named_parameters()}
    missing = sorted(n for n, o in source.items() if o not in old_params)
    if missing:  # pragma: no cover - every parameter outside the layers exists in both models
        raise CheckpointError(f"cannot grow {model.spec.name}: no source for {', '.join(missing[:5])}")
    tensors = {n: old_params[o].detach().clone() for n, o in source.items()}
    load_weights(new, tensors, f"{model.spec.name} grown to {layers} layers")
    return new.train()


def _stacks(model: torch.nn.Module) -> dict[str, list[str]]:
    """Module path of each stack -> its schedule (the layer key each layer index runs)."""
    return {path: list(m.schedule) for path, m in model.named_modules()
            if isinstance(getattr(m, "layers", None), torch.nn.ModuleDict) and hasattr(m, "schedule")}


def _source(name: str, old: dict[str, list[str]], new: dict[str, list[str]]) -> str:
    for path, schedule in new.items():
        prefix = f"{path}.layers." if path else "layers."
        if not name.startswith(prefix):
            continue
        key, rest = name[len(prefix):].split(".", 1)
        old_schedule = old[path]
        sources = {old_schedule[j % len(old_schedule)] for j, k in enumerate(schedule) if k == key}
        if len(sources) != 1:  # pragma: no cover - grown_spec keeps each shared group inside one old group
            raise CheckpointError(f"layer {key} of the grown {path} would copy several old layers ({sources})")
        return f"{prefix}{sources.pop()}.{rest}"
    return name


def grow_run(run: str | os.PathLike, layers: int, output: str | os.PathLike) -> Path:
    """Write run folder `output`: the last checkpoint of run `run` grown to `layers` layers, ready for
    ``plmgraph train OUTPUT --steps ...`` (see the module docstring).

    Raises:
        CheckpointError: `run` is not a training run, or `output` exists and is not an empty folder.
        InputError: `layers` is not more than the model has, or does not fit its sharing groups.
    """
    from .distributed import load_checkpoint_model
    from .trainer import METRICS, RUN_FILE, TrainConfig, Trainer, _write_json, latest_checkpoint, read_run

    src, out = Path(run), Path(output)
    meta = read_run(src)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out}: already exists{' and holds files' if out.is_dir() else ' (a file)'}; "
                              "choose a new -o folder for the grown run")
    up = next((p for p in out.absolute().parents if p.exists()), None)
    if up is not None and not up.is_dir():
        raise CheckpointError(f"{out}: {up} is a file, so no folder can be made under it; choose another -o")
    if out.resolve() == src.resolve():
        raise CheckpointError(f"{out}: is the run being grown; choose a new -o folder")
    ck = latest_checkpoint(src)
    model = load_checkpoint_model(ck)
    old_layers = {n: s.layers for n, s in model.spec.stacks.items()}
    grown = grow_model(model, layers)
    state_pos = _position(ck)
    cfg = TrainConfig.from_json(meta["config"])
    new_meta = dict(meta, spec=grown.spec.name, config=meta["config"],
                    grown_from={"run": str(src.resolve()), "checkpoint": ck.name, "layers": old_layers,
                                "to": layers, "method": "stacking (Gong et al. 2019)"})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if (src / "tokenizer.json").is_file():
            shutil.copyfile(src / "tokenizer.json", tmp / "tokenizer.json")
        _write_json(tmp / RUN_FILE, new_meta)
        (tmp / METRICS).write_text("", encoding="utf-8")
        torch.manual_seed(cfg.seed)
        trainer = Trainer(tmp, grown, None, None, [], [], cfg, new_meta)
        trainer.position = state_pos
        trainer.save_checkpoint()  # step 0: the grown weights, a fresh AdamW state
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _position(ck: Path) -> int:
    import json

    return int(json.loads((ck / "state.json").read_text(encoding="utf-8"))["position"])


def grow(source: Any, layers: int, output: str | os.PathLike | None = None) -> Any:
    """Progressive stacking (the public ``pg.grow``).

    ``grow(model, M)`` returns a new M-layer model (layer j = a copy of layer ``j mod N``);
    ``grow("runs/bert-6", M, "runs/bert-12")`` writes a run folder to continue training from and
    returns its path.
    """
    if isinstance(source, torch.nn.Module):
        if output is not None:
            raise InputError("grow(model, layers) returns the grown model; save it with pg.save, or pass a run "
                             "folder to write a run")
        return grow_model(source, layers)
    if output is None:
        raise InputError("growing a run folder writes a new run: pass output=")
    return grow_run(source, layers, output)


__all__ = ["grow", "grow_model", "grow_run", "grown_spec"]
