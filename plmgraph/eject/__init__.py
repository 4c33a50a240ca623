"""Eject: an architecture as one standalone, readable PyTorch file (nanoGPT-style).

    pg.eject("llama2-7b")                      # -> the source, a str
    plmgraph eject llama2-7b -o llama2.py      # the same, written to a file

Each block kind writes its own source through its ``eject`` facet (`pieces`); `assemble`
orders the pieces into one file: the config, the small modules, one layer, the stack, the
model, a smoke test. Parameter names equal the compiled model's, so the same
``model.safetensors`` loads into both. A kind that cannot be ejected yet raises
`NotCompiledYet` naming it. Torch-free: ejecting writes text.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..graph.arch import ArchGraph, resolve
from .assemble import eject as _assemble


def eject(spec_or_graph: Any, weights: str | os.PathLike | None = None) -> str:
    """The ejected file's source for a spec (a `ModelSpec`, zoo name, path or `ArchGraph`).

    Args:
        spec_or_graph: what to eject.
        weights: a saved model folder, a training run folder (its last checkpoint) or a
            ``model.safetensors``; its tensors are checked against the spec, and the file gets a
            ``load()`` that reads them (with safetensors).

    Raises:
        SpecError: when the name or path does not give a valid spec.
        NotCompiledYet: when the spec uses a block kind that cannot be ejected yet (it is named).
        CheckpointError: when the weights are missing or do not match the spec's parameters.
    """
    graph = spec_or_graph if isinstance(spec_or_graph, ArchGraph) else resolve(spec_or_graph)
    if graph.spec.tuning.kind != "full":  # the ejected file has no adapters: refused, not silently dropped
        from ..kinds import NotCompiledYet

        raise NotCompiledYet(f"eject writes the base architecture; tuning kind {graph.spec.tuning.kind!r} is not "
                             "ejected (eject the spec with tuning: full, or export-hf a tuned model for PEFT)")
    _refuse_unwritten(graph)
    path = None
    if weights is not None:
        path = weights_file(weights)
        check_weights(path, graph)
    return _assemble(graph, None if path is None else str(path))


def _refuse_unwritten(graph: ArchGraph) -> None:
    """What the ejected file does not write yet, refused by name rather than dropped: a stack's per-layer
    pattern (windows or rotary bases that vary by layer: Gemma 2/3) and soft-capped scores or logits."""
    from ..kinds import NotCompiledYet

    name = graph.spec.name
    for stack in graph.spec.stacks:
        windows = {graph.node(n)["attrs"].get("window") for n in graph.nodes(stack=stack, role="attn")}
        if len(windows) > 1 or any(n.startswith(f"{stack}.positions.") for n, _ in graph.items()):
            raise NotCompiledYet(f"cannot eject {name!r}: the {stack}'s per-layer pattern (windows or rotary bases "
                                 "that differ by layer) is not written yet; build it with `plmgraph build` instead")
        if not graph.spec.stacks[stack].first_attn_norm:
            raise NotCompiledYet(f"cannot eject {name!r}: the {stack}'s layer 0 without an attention norm "
                                 "(first_attn_norm: false, ModernBERT) is not written yet")
    for nid, d in graph.items():
        if d["axis"] == "pool" and (d["attrs"].get("norm") or d["attrs"].get("bias") is False):
            raise NotCompiledYet(f"cannot eject {name!r}: a pooler with a norm or without a dense bias "
                                 "(ModernBERT's classifier head) is not written yet")
        if (d["attrs"].get("transform") or {}).get("bias") is False:
            raise NotCompiledYet(f"cannot eject {name!r}: {nid}'s transform without a bias is not written yet")
        if d["attrs"].get("softcap") is not None:
            what = "logits" if d["axis"] == "head" else "scores"
            raise NotCompiledYet(f"cannot eject {name!r}: {nid} soft-caps its {what} (softcap "
                                 f"{d['attrs']['softcap']:g}), which the ejected file does not write yet")


def spec_of(ref: Any) -> Any:
    """What `ref` names as a spec: a saved model folder's or a training run's spec.yaml, a Hugging
    Face folder's config (imports torch), or `ref` itself (a zoo name, a path, a spec)."""
    if not isinstance(ref, (str, os.PathLike)) or not Path(ref).is_dir():
        return ref
    d = Path(ref)
    if (d / "train.json").is_file():
        from ..train.trainer import latest_checkpoint

        return latest_checkpoint(d) / "spec.yaml"
    if (d / "spec.yaml").is_file():
        return d / "spec.yaml"
    if (d / "config.json").is_file():
        from ..compile.hf import spec_from_hf

        return spec_from_hf(d)
    return ref


def weights_file(where: str | os.PathLike) -> Path:
    """The model.safetensors of a saved folder, of a run's last checkpoint, or the file itself."""
    from ..compile.io import WEIGHTS_FILE

    d = Path(where)
    if d.is_file():
        return d
    if (d / WEIGHTS_FILE).is_file():
        return d / WEIGHTS_FILE
    if (d / "train.json").is_file():  # a training run: its last complete checkpoint
        from ..train.trainer import latest_checkpoint

        return latest_checkpoint(d) / WEIGHTS_FILE
    raise CheckpointError(f"{d}: no {WEIGHTS_FILE} here; give a saved model folder, a run folder or the file")


def check_weights(path: Path, graph: ArchGraph) -> None:
    """The file holds exactly the graph's parameters, name and shape (read from its header)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    got = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    want = {k: tuple(s) for k, s in graph.param_shapes().items()}
    if got != want:
        missing, extra = sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]
        shapes = [f"{k}: {got[k]} != {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]][:5]
        raise CheckpointError(f"{path}: its tensors do not match {graph.name} "
                              f"({len(got)} tensors, the spec has {len(want)}): missing {missing}, "
                              f"unexpected {extra}, wrong shapes {shapes}")


class _CallableModule(types.ModuleType):
    """``pg.eject(spec)`` must work even after ``import plmgraph.eject`` has made the attribute
    ``plmgraph.eject`` this package (the import system sets it once the package loads): the
    package is then callable, as the function."""

    def __call__(self, spec_or_graph: Any, weights: str | os.PathLike | None = None) -> str:
        return eject(spec_or_graph, weights)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["check_weights", "eject", "spec_of", "weights_file"]
