"""Import and export Hugging Face checkpoints: ``config.json`` + ``*.safetensors``.

    model = from_hf("dir")      # config -> spec, graph -> tensor plan (the model type's tables),
                                # check every name and shape, then build and load
    to_hf(model, "out/")        # the same tables read backwards

Both directions are data: each ``model_type`` is one module of `hf_types`, whose `Family`
maps config fields onto spec fields and graph roles onto HF tensor names.  The tensors
expected are derived from ``graph.param_shapes()``, so a missing, unexpected or wrongly shaped tensor is a
`CheckpointError` naming it, before anything is loaded.  ``transformers`` is never
imported: it is only the reference the parity tests compare against.

Decisions worth knowing:

- Tied matrices: a checkpoint may or may not hold the second name of a tied matrix
  (``lm_head.weight``); HF ties it on load, and so does the spec, so it is ignored.
- BART's ``final_logits_bias`` is a buffer in HF, zeros in a fresh model but possibly not
  after fine-tuning; it becomes the lm head's bias (``heads.lm.bias``), so a nonzero one
  is kept exactly (and, unlike in HF, trains).  A checkpoint without it loads zeros.
- Buffers HF recomputes (``position_ids``, GPT-2's ``attn.bias`` mask, ``inv_freq``) are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConversionError
from ..graph import ArchGraph, resolve
from ..spec import ModelSpec
from .hf_types import Item, config_to_spec, find_family, ignored, plan
from .hf_types.weights import qkv_from_per_head, qkv_to_per_head

INDEX = "model.safetensors.index.json"


# --------------------------------------------------------------------- reading


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    f = p / "config.json"
    if not p.is_dir():
        raise CheckpointError(f"{p}: not a directory (expected a Hugging Face checkpoint folder)")
    if not f.exists():
        raise CheckpointError(f"{p}: no config.json")
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f}: not valid JSON ({str(e)[:200]})") from None
    except RecursionError:
        raise CheckpointError(f"{f}: JSON nested too deeply to be a config") from None


def _spec_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", path.resolve().name).strip("-.") or "hf-model"
    return name if name[0].isalnum() else f"hf-{name}"


def spec_from_hf(path: str | Path) -> ModelSpec:
    """The spec of a HF checkpoint folder (reads only ``config.json``)."""
    return config_to_spec(read_config(path), _spec_name(Path(path)))


def _files(path: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file (one file, or the shards of an index)."""
    index = path / INDEX
    if index.exists():
        try:
            wm = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{index}: not a safetensors index ({e})") from None
        if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
            raise CheckpointError(f"{index}: weight_map must map tensor names to shard file names")
        outside = sorted({v for v in wm.values() if not (path / v).resolve().is_relative_to(path.resolve())})
        if outside:
            raise CheckpointError(f"{index} names shard files outside the checkpoint folder: "
                                  + ", ".join(repr(v[:80]) for v in outside[:3]))
        out = {k: path / v for k, v in wm.items()}
        missing = sorted({str(f.name) for f in out.values() if not f.exists()})
        if missing:
            raise CheckpointError(f"{index} names shard files that do not exist: {', '.join(missing)}")
        return out
    files = sorted(path.glob("*.safetensors"))
    if not files:
        if any(path.glob("*.bin")):
            raise CheckpointError(f"{path}: only PyTorch .bin weights; plmgraph reads safetensors "
                                  "(convert with save_pretrained(safe_serialization=True))")
        raise CheckpointError(f"{path}: no *.safetensors weights")
    from safetensors import safe_open

    out = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    out[k] = f
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"{f}: cannot read safetensors ({type(e).__name__}: {e})") from None
    return out


def _shapes(files: dict[str, Path]) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    by_file: dict[Path, list[str]] = {}
    for k, f in files.items():
        by_file.setdefault(f, []).append(k)
    for f, keys in by_file.items():
        try:
            with safe_open(str(f), framework="pt") as h:
                present = set(h.keys())
                for k in keys:
                    if k not in present:
                        raise CheckpointError(f"{f.name}: the index says it holds {k!r}, but it does not")
                    shapes[k] = tuple(h.get_slice(k).get_shape())
        except CheckpointError:
            raise
        except Exception as e:  # a truncated or foreign file
            raise CheckpointError(f"{f}: cannot read safetensors ({e})") from None
    return shapes


def _fmt(names: Iterable[str], shapes: dict[str, Any], limit: int = 12) -> str:
    names = sorted(names)
    text = ", ".join(f"{n} {list(shapes[n]) if n in shapes else ''}".rstrip() for n in names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check(items: list[Item], shapes: dict[str, tuple[int, ...]], model_type: str) -> None:
    """Compare the tensors `items` need with a checkpoint's; raise `CheckpointError` listing every difference.

    Raises:
        CheckpointError: missing tensors, unexpected tensors, or wrong shapes (with both shapes).
    """
    want: dict[str, tuple[int, ...]] = {}
    optional: set[str] = set()
    for it in items:
        want.update(it.hf_shapes())
        if it.rule.zeros_if_missing:
            optional.update(it.hf_names)
    missing = [n for n in want if n not in shapes and n not in optional]
    aliases = {n for it in items for n in it.rule.also}
    extra = [n for n in shapes if n not in want and n not in aliases and not ignored(model_type, n)]
    wrong = [f"{n} is {list(shapes[n])}, expected {list(s)}" for n, s in want.items()
             if n in shapes and tuple(shapes[n]) != tuple(s)]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_fmt(missing, want)}")
    if extra:
        problems.append(f"unexpected tensors: {_fmt(extra, shapes)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape, e.g. " + "; ".join(sorted(wrong)[:3]))
        had = {d for s in shapes.values() for d in s}
        odd = sorted({d for n, s in want.items() if n in shapes and tuple(shapes[n]) != tuple(s) for d in s} - had)
        if odd:  # a config size (hidden_size: 10**12) no tensor of the checkpoint has
            problems.append("the config gives sizes no tensor of the checkpoint has: "
                            + ", ".join(map(str, odd[:4])) + (" ..." if len(odd) > 4 else "")
                            + " (check its hidden_size, intermediate_size, heads and vocab_size)")
    if problems:
        raise CheckpointError(f"checkpoint does not fit the {model_type} config: " + " | ".join(problems))


def expected_hf_shapes(graph: ArchGraph, model_type: str, arch: str | None = None) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> shape, for every tensor a checkpoint of this graph holds."""
    out: dict[str, tuple[int, ...]] = {}
    for it in plan(graph, model_type, arch=arch):
        out.update(it.hf_shapes())
    return out


def load_state_dict(path: str | Path, graph: ArchGraph | None = None, dtype: Any = None) -> dict[str, Any]:
    """Read a HF checkpoint folder into a plmgraph state dict (``graph.param_shapes()`` keys).

    Raises:
        CheckpointError: the folder, its files, or its tensors do not fit its config.
        ConversionError: its config has no plmgraph equivalent.
    """
    return dict(iter_state_dict(path, graph, dtype))


def _plan_checked(path: Path, graph: ArchGraph | None) -> tuple[ArchGraph, list[Item], dict[str, Path],
                                                                 dict[str, tuple[int, ...]]]:
    cfg = read_config(path)
    graph = graph or resolve(config_to_spec(cfg, _spec_name(path)))
    model_type = cfg["model_type"]
    files = _files(path)
    shapes = _shapes(files)
    archs = cfg.get("architectures") or [None]
    items = plan(graph, model_type, set(shapes), arch=archs[0])
    check(items, shapes, model_type)
    return graph, items, files, shapes


def iter_state_dict(path: str | Path, graph: ArchGraph | None = None, dtype: Any = None) -> Any:
    """`load_state_dict` one tensor at a time: yields (plmgraph key, tensor) after checking every name and
    shape, reading the shards in order and closing each once no later tensor needs it, so at most one
    assembled tensor (and the shards being read, memory-mapped) is held at a time.
    """
    import torch
    from safetensors import safe_open

    path = Path(path)
    graph, items, files, shapes = _plan_checked(path, graph)
    # Shard by shard: items ordered by the first shard they read; a shard is closed after its last item.
    order = sorted(range(len(items)), key=lambda i: min((str(files[n]) for n in items[i].hf_names if n in files),
                                                        default=""))
    items = [items[i] for i in order]
    last: dict[Path, int] = {}
    for i, it in enumerate(items):
        for n in it.hf_names:
            if n in files:
                last[files[n]] = i
    handles: dict[Path, Any] = {}

    def get(name: str) -> torch.Tensor:
        f = files[name]
        if f not in handles:
            handles[f] = safe_open(str(f), framework="pt")
        return handles[f].get_tensor(name)

    for idx, it in enumerate(items):
        per_expert = []
        for group in it.groups:
            parts = []
            for i, n in enumerate(group):
                if n not in shapes:  # zeros_if_missing
                    t = torch.zeros(it.hf_shape(i))
                else:
                    t = get(n)
                t = t.reshape(t.shape[it.rule.lead:])
                if it.rule.heads:  # [.., heads, head_dim] -> [.., heads * head_dim]
                    t = t.flatten(-2)
                if it.rule.t and t.dim() == 2:
                    t = t.t()
                parts.append(t)
            per_expert.append(torch.cat(parts, 0) if len(parts) > 1 else parts[0])
        t = torch.stack(per_expert, 0) if it.rule.experts else per_expert[0]
        del per_expert
        if it.per_head is not None:
            t = qkv_from_per_head(t, *it.per_head)
        if tuple(t.shape) != tuple(it.shape):  # a table bug, not a user error
            raise RuntimeError(f"{it.key}: assembled {list(t.shape)}, graph says {list(it.shape)}")
        for f in [f for f, j in last.items() if j == idx]:
            handles.pop(f, None)  # this shard is done: its mapping is released
        yield it.key, (t.to(dtype).contiguous() if dtype is not None else t.contiguous())


def checkpoint_dtype(path: str | Path) -> Any:
    """The dtype of a checkpoint's first floating-point tensor (from the safetensors header), or float32."""
    import torch
    from safetensors import safe_open

    names = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    for f in sorted(set(_files(Path(path)).values())):
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                dt = names.get(h.get_slice(k).get_dtype())
                if dt is not None:
                    return dt
    return torch.float32


# ---------------------------------------------------------------------- public


def from_hf(path: str | Path, device: Any = None, dtype: Any = None) -> Any:
    """Build a plmgraph model from a Hugging Face checkpoint folder (config.json + safetensors).

    Args:
        path: folder with ``config.json`` and ``model.safetensors`` (or sharded, with
            ``model.safetensors.index.json``).
        device: where the model lives (default: CPU).
        dtype: parameter dtype (default: the checkpoint's).

    Returns:
        The compiled `torch.nn.Module`, weights loaded, in eval mode; ``model.spec`` is the spec.

    Raises:
        ConversionError: the config's model_type, architecture or a value has no plmgraph equivalent.
        CheckpointError: tensors are missing, unexpected, or of the wrong shape (all listed).
    """
    import torch

    from . import build

    path = Path(path)
    spec = spec_from_hf(path)
    graph = resolve(spec)
    _plan_checked(path, graph)  # every name and shape checked before anything is allocated
    if dtype is None:
        dtype = checkpoint_dtype(path)
    # One copy of the weights: the model's parameters are allocated once (the random init is overwritten;
    # seed 0, a private generator, leaves torch's global RNG alone) and each checkpoint tensor is read,
    # assembled and copied into its parameter in place, shard by shard.
    model = build(graph, device=device, dtype=dtype, seed=0)
    params = dict(model.state_dict(keep_vars=True))
    want = set(graph.param_shapes())
    seen = set()
    with torch.no_grad():
        for key, t in iter_state_dict(path, graph):
            if not t.is_floating_point():
                raise CheckpointError(f"{path}: weights must be floating point; {key} is "
                                      f"{str(t.dtype).replace('torch.', '')}")
            if t.numel() and not bool(torch.isfinite(t).all()):
                raise CheckpointError(f"{path}: {key} holds NaN or infinite values; the checkpoint is corrupt")
            if key not in params:  # the compiler's names differ from the graph's: a plmgraph bug
                raise RuntimeError(f"compiled model does not match its graph: unexpected {key}")
            params[key].copy_(t)
            seen.add(key)
            del t
    missing = sorted(want - seen)
    if missing:
        raise RuntimeError(f"compiled model does not match its graph: missing {missing[:5]}")
    return model.eval()


def to_hf(model: Any, path: str | Path) -> Path:
    """Write `model` as a Hugging Face checkpoint folder: ``config.json`` + ``model.safetensors``
    (a tuned model: its base, and its adapter in PEFT's layout in ``adapter/``; see `plmgraph.tuning.peft`).

    The model_type and architecture are the ones whose config table reproduces
    ``model.spec`` exactly (see `hf_types.find_family`).

    Raises:
        ConversionError: no supported Hugging Face architecture expresses the spec.
    """
    tuning = getattr(model, "tuning", None)
    if tuning is not None and tuning.kind != "full":  # the base model, and the adapter in PEFT's layout
        from ..tuning.core import write_hf as write_tuned

        write_tuned(model, path)
        return Path(path)
    spec = model.spec
    model_type, arch, cfg = find_family(spec)
    state = {k: v for k, v in model.state_dict().items()}
    return write_hf(spec, state, path, model_type, arch, cfg)


def write_hf(spec: ModelSpec, state: dict[str, Any], path: str | Path, model_type: str | None = None,
             arch: str | None = None, cfg: dict[str, Any] | None = None) -> Path:
    """`to_hf` for a spec and a plmgraph state dict (no compiled model needed)."""
    import torch
    from safetensors.torch import save_file

    if model_type is None or cfg is None:
        model_type, arch, cfg = find_family(spec)
    graph = resolve(spec)
    out: dict[str, torch.Tensor] = {}
    shapes = graph.param_shapes()
    missing = [k for k in shapes if k not in state]
    wrong = [f"{k} is {list(state[k].shape)}, expected {list(s)}" for k, s in shapes.items()
             if k in state and tuple(state[k].shape) != tuple(s)]
    if missing or wrong:
        raise CheckpointError(f"state dict does not fit {spec.name}: missing {', '.join(missing[:12]) or 'none'}; "
                              f"wrong shapes: {'; '.join(wrong[:12]) or 'none'}")
    for it in plan(graph, model_type, arch=arch):
        x = state[it.key].detach().cpu()
        if it.per_head is not None:
            x = qkv_to_per_head(x, *it.per_head)
        groups = list(x.unbind(0)) if it.rule.experts else [x]
        for xe, names in zip(groups, it.groups, strict=True):
            parts = list(torch.split(xe, list(it.sizes), 0)) if it.sizes else [xe]
            for i, (n, t) in enumerate(zip(names, parts, strict=True)):
                if it.rule.t and t.dim() == 2:
                    t = t.t()
                out[n] = t.reshape(it.hf_shape(i)).contiguous().clone()
        for n in it.rule.also:
            out[n] = out[it.groups[0][0]].clone()
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    floats = [t.dtype for t in out.values() if t.is_floating_point()]
    cfg = dict(cfg)
    cfg["dtype"] = str(floats[0] if floats else torch.float32).removeprefix("torch.")
    (p / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_file(out, str(p / "model.safetensors"), metadata={"format": "pt"})
    return p


__all__ = ["ConversionError", "expected_hf_shapes", "from_hf", "load_state_dict", "spec_from_hf", "to_hf", "write_hf"]
