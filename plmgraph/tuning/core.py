"""The torch half of the tuning core: `apply` (attach, freeze, check, record), merge / unmerge.

See the contract in `plmgraph.tuning` (the package docstring).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from . import TuningPlan, tuning_kind
from . import plan as make_plan


def _kind(p: TuningPlan) -> Any:
    from ..kinds import kind

    return kind(f"tuning/{p.kind}")


def apply(model: Any, graph: Any = None, *, seed: int | None = None) -> TuningPlan:
    """Attach the tuning of ``graph.spec.tuning`` (default: ``model.graph``) to `model`, in place.

    Freezes every base parameter, calls the kind's ``attach``, checks that the new parameters are
    exactly ``plan.added``, makes ``plan.added`` + ``plan.kept`` trainable and records the plan as
    ``model.tuning``.  ``tuning: full`` changes nothing (every parameter trains).

    Raises:
        TuningError: the options do not fit the model (from the kind's ``plan``).
    """
    graph = graph if graph is not None else model.graph
    if getattr(model, "tuning", None) is not None and model.tuning.kind != "full":
        raise AssertionError("apply: the model is tuned already")
    p = make_plan(graph)
    if p.kind == "full":
        model.tuning = p
        return p
    before = {n: tuple(t.shape) for n, t in model.named_parameters()}
    for t in model.parameters():
        t.requires_grad_(False)
    ref = next(iter(model.parameters()))
    gen = None
    if seed is not None and ref.device.type != "meta":
        gen = torch.Generator(device=ref.device)
        gen.manual_seed(seed + 1)
    tuning_kind(graph.spec.tuning).attach(model, p, gen)
    after = dict(model.named_parameters())
    new = {n: tuple(t.shape) for n, t in after.items() if n not in before}
    want = {n: tuple(s) for n, s in p.added.items()}
    if new != want or set(before) - set(after):
        raise AssertionError(f"tuning/{p.kind}: attach added {sorted(new)[:6]} ..., the plan says {sorted(want)[:6]} "
                             f"...; lost {sorted(set(before) - set(after))[:6]}")
    for n in (*p.kept, *p.added):
        after[n].requires_grad_(True)
    model.tuning = p
    return p


def trainable_names(model: Any) -> list[str]:
    """Names of the parameters that train (``requires_grad``)."""
    return [n for n, t in model.named_parameters() if t.requires_grad]


def merge(model: Any) -> Any:
    """Fold the tuning into the base weights in place (LoRA), so the adapters add nothing until `unmerge`.

    Raises:
        TuningError: the model's tuning kind cannot be merged (prompt tuning adds inputs, not weights).
    """
    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    k = _kind(p)
    if not hasattr(k, "merge"):
        from . import TuningError

        raise TuningError(f"tuning kind {p.kind!r} cannot be merged into the base weights")
    with torch.no_grad():
        k.merge(model, p)
    return model


def unmerge(model: Any) -> Any:
    """Undo `merge` (subtract the folded update again)."""
    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    with torch.no_grad():
        _kind(p).unmerge(model, p)
    return model


def merged_copy(model: Any) -> Any:
    """A new model with ``tuning: full`` whose weights are `model`'s with the tuning folded in.

    Its parameters are exactly the base graph's (no adapter modules), so every exporter (ONNX,
    Hugging Face, eject) takes it as it takes an untuned model.
    """
    from ..compile import build
    from ..graph import resolve

    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    spec = model.spec.model_copy(update={"tuning": type(model.spec).model_fields["tuning"].default_factory()})
    spec = type(spec).model_validate(spec.model_dump())
    tuned = copy.deepcopy(model)
    merge(tuned)
    state = {k: v for k, v in tuned.state_dict().items() if k in p.base}
    ref = next(iter(model.parameters()))
    plain = build(resolve(spec), device="meta", dtype=ref.dtype)
    plain.load_state_dict(state, strict=True, assign=True)
    plain.train(model.training)
    return plain


__all__ = ["apply", "merge", "merged_copy", "trainable_names", "unmerge"]


def pretrained(path: Any) -> tuple[Any, dict[str, torch.Tensor], Any]:
    """(spec, base weights, tokenizer.json path or None) of a model to fine-tune: a plmgraph run folder
    (its latest checkpoint), a saved model folder (spec.yaml + model.safetensors) or a Hugging Face folder
    (config.json + safetensors).

    Raises:
        CheckpointError: the folder is none of those, or its weights are unreadable.
    """
    from pathlib import Path

    from ..compile.io import read_tensors
    from ..errors import CheckpointError
    from ..spec import load_spec
    from ..train.trainer import RUN_FILE, latest_checkpoint, read_run

    d = Path(path)
    tok = d / "tokenizer.json"
    if (d / RUN_FILE).is_file():
        read_run(d)
        ck = latest_checkpoint(d)
        return load_spec(ck / "spec.yaml"), read_tensors(ck / "model.safetensors"), tok if tok.is_file() else None
    if (d / "spec.yaml").is_file():
        return load_spec(d / "spec.yaml"), read_tensors(d / "model.safetensors"), tok if tok.is_file() else None
    if (d / "config.json").is_file():
        from ..compile.hf import load_state_dict, spec_from_hf

        spec = spec_from_hf(d)
        return spec, load_state_dict(d, None), tok if tok.is_file() else None
    raise CheckpointError(f"{d}: not a run folder (train.json), a saved model (spec.yaml) or a Hugging Face "
                          "folder (config.json)")


def check_base(p: TuningPlan, tensors: dict[str, torch.Tensor], source: str, name: str) -> None:
    """The weights are exactly the base graph's parameters (names, shapes, finite floats).

    Raises:
        CheckpointError: naming what is missing, unexpected or wrongly shaped.
    """
    from ..compile.io import check_values
    from ..errors import CheckpointError

    base = p.base
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != base:
        missing = sorted(set(base) - set(got))[:6]
        extra = sorted(set(got) - set(base))[:6]
        wrong = [f"{k} {list(got[k])} != {list(base[k])}" for k in base if k in got and got[k] != base[k]][:6]
        raise CheckpointError(f"{source} does not fit {name}: missing {missing or 'none'}, unexpected "
                              f"{extra or 'none'}, wrong shapes {wrong or 'none'}")
    check_values(tensors, source)


def load_base(model: Any, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy a base model's weights into a tuned model's base parameters (the additions keep their init).

    Raises:
        CheckpointError: the weights are not exactly the base graph's parameters (names and shapes).
    """
    check_base(model.tuning, tensors, source, model.spec.name)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in tensors.items():
            p = params[k]
            mesh = getattr(p, "device_mesh", None)
            if mesh is not None:  # FSDP2 shards: each rank keeps its own slice of the full tensor
                from torch.distributed.tensor import distribute_tensor

                v = distribute_tensor(v.to(p.dtype), mesh, p.placements)
            p.copy_(v)


def load_folder(path: Any, device: Any = None) -> Any:
    """`compile.io.load` of a saved model folder, or of a run folder's latest checkpoint (whole
    weights, or the DCP shards a torchrun run wrote, gathered into this process)."""
    from pathlib import Path

    from ..compile.io import load
    from ..train.distributed import load_checkpoint_model
    from ..train.trainer import RUN_FILE, latest_checkpoint, read_run

    d = Path(path)
    if (d / RUN_FILE).is_file():
        read_run(d)
        return load_checkpoint_model(latest_checkpoint(d), device=device or "cpu")
    return load(d, device=device)


def for_export(model: Any) -> Any:
    """The model an exporter that knows no tuning (ONNX, eject) should take: `model` itself when
    untuned, else a merged copy (LoRA, IA³: identical outputs; BitFit adds nothing to merge).

    Raises:
        TuningError: a tuning that cannot be folded into the base weights (prompt tuning adds inputs).
    """
    from . import TuningError

    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        return model
    k = _kind(p)
    if p.kind == "bitfit" or not p.added:
        return merged_copy_plain(model)
    if not hasattr(k, "merge"):
        raise TuningError(f"tuning kind {p.kind!r} cannot be merged into the base weights, so this export "
                          f"(which takes the base model's inputs) cannot carry it; export-hf writes it as a PEFT "
                          "adapter" if p.kind == "prompt" else f"tuning kind {p.kind!r} cannot be merged into the "
                          "base weights for this export")
    return merged_copy(model)


def merged_copy_plain(model: Any) -> Any:
    """`merged_copy` for a tuning that adds no tensors (BitFit): the same weights, ``tuning: full``."""
    from ..compile import build
    from ..graph import resolve

    p = model.tuning
    spec = model.spec.model_copy(update={"tuning": type(model.spec).model_fields["tuning"].default_factory()})
    spec = type(spec).model_validate(spec.model_dump())
    ref = next(iter(model.parameters()))
    plain = build(resolve(spec), device="meta", dtype=ref.dtype)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in p.base}
    plain.load_state_dict(state, strict=True, assign=True)
    return plain.train(model.training)


def write_hf(model: Any, folder: Any) -> list[str]:
    """Write a (tuned) model as a Hugging Face folder: the base model (``config.json`` +
    ``model.safetensors``), and the adapter in PEFT's layout in ``adapter/`` (LoRA, IA³, prompt tuning);
    a tuning PEFT has no layout for is merged into the base weights first. Returns what was written.
    """
    from pathlib import Path

    from ..compile.hf import to_hf
    from .peft import save_peft

    p = getattr(model, "tuning", None)
    folder = Path(folder)
    if p is None or p.kind in ("full", "bitfit") or not p.added:
        to_hf(model if p is None or p.kind == "full" else merged_copy_plain(model), folder)
        return ["config.json", "model.safetensors"]
    k = _kind(p)
    if p.kind in ("lora", "ia3", "prompt") or hasattr(k, "to_peft"):
        from ..compile.hf import write_hf as write_base

        base = {n: t for n, t in model.state_dict().items() if n in p.base}
        write_base(model.spec, base, folder)  # the base weights (the adapter's tensors have no HF names)
        (folder / "adapter").mkdir()
        save_peft(model, folder / "adapter")
        return ["config.json", "model.safetensors", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"]
    to_hf(for_export(model), folder)
    return ["config.json", "model.safetensors"]
