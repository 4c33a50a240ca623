"""Stage 2, extends: find spec files, resolve the `extends` DAG, deep-merge, apply overrides.

``extends:`` names one or more parents (zoo names or paths relative to the child file).
The parents are merged left to right, then the child on top (see `deep_merge`).  The
inheritance graph is a networkx DiGraph (child -> parent); a cycle is an error that
names every file on it.  Positions travel with the data, so an error in an inherited
field points at the line of the parent file that wrote it.
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from .errors import SpecError
from .load import Loaded, Source, load_file
from .model import SIZE_ALIASES, ModelSpec, deep_merge

Path_ = tuple[str | int, ...]


def zoo_dir() -> Path:
    """The folder of bundled specs (``specs/`` in a checkout, ``plmgraph/specs`` when installed)."""
    return Path(str(importlib.resources.files("plmgraph.specs")))


def zoo_names() -> list[str]:
    """Names of every bundled spec, sorted."""
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def find_spec(ref: str | Path, relative_to: Path | None = None) -> Path:
    """Turn a zoo name or a path into an existing spec file.

    Raises:
        SpecError: when `ref` is neither an existing file nor a zoo name; the message lists
            the closest zoo names (or, for a path, the folder that was searched).
    """
    ref_s = str(ref)
    candidates = []
    if relative_to is not None:
        candidates.append(relative_to / ref_s)
    candidates.append(Path(ref_s))
    looks_like_path = ref_s.endswith((".yaml", ".yml")) or "/" in ref_s or "\\" in ref_s
    for c in candidates:
        if c.is_file():
            return c.resolve()
    if ref_s and not looks_like_path:
        z = zoo_dir() / f"{ref_s}.yaml"
        if z.is_file():
            return z.resolve()
    for c in candidates:
        if ref_s and c.exists():
            what = "a directory" if c.is_dir() else "not a regular file"
            raise SpecError.one(f"{ref_s!r} is {what}, not a spec file")
    if looks_like_path:
        where = relative_to if relative_to is not None else Path.cwd()
        hint = "" if Path(ref_s).is_absolute() else f" (looked in {where})"
        raise SpecError.one(f"no such spec file: {ref_s!r}{hint}")
    names = zoo_names()
    close = difflib.get_close_matches(ref_s, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SpecError.one(
        f"{ref_s!r} is not a spec file or zoo name{hint} (zoo: {', '.join(names)})"
    )


@dataclass
class Merged:
    """The merged mapping of a spec and its ancestors, with positions and the chain of files."""

    data: dict[str, Any]
    positions: dict[Path_, Source] = field(default_factory=dict)
    file: str = "<spec>"
    files: list[str] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    extends: str | list[str] | None = None  # what the root file itself extends


def load_merged(ref: str | Path, overrides: str | list[str] | None = None) -> Merged:
    """Load `ref` (a zoo name or path), resolve `extends`, then apply ``--override`` edits."""
    root = find_spec(ref)
    g = nx.DiGraph()
    loaded: dict[Path, Loaded] = {}
    _collect(root, g, loaded)
    try:
        cycle = nx.find_cycle(g, source=root)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        src = loaded[cycle[-1][0]]
        pos = src.positions.get(("extends",))
        line, col = (pos.line, pos.column) if pos else (None, None)
        if len(cycle) == 1:
            msg = f"a spec cannot extend itself ({Path(src.file).name} extends {src.data.get('extends')!r})"
        else:
            chain = " -> ".join(Path(str(u)).name for u, _ in cycle) + " -> " + Path(str(cycle[0][0])).name
            msg = f"`extends` forms a cycle: {chain}; remove one of these `extends`"
        raise SpecError.one(msg, src.file, line, col, ("extends",))
    memo: dict[Path, Merged] = {}
    merged = _merge(root, g, loaded, memo)
    merged.graph = g
    merged.extends = loaded[root].data.get("extends")
    if overrides:
        apply_overrides(merged, overrides)
    return merged


def _parents(l: Loaded) -> list[str]:
    ext = l.data.get("extends")
    if ext is None:
        return []
    if isinstance(ext, str):
        return [ext]
    if isinstance(ext, list) and all(isinstance(e, str) for e in ext):
        return ext
    pos = l.positions.get(("extends",))
    raise SpecError.one(
        f"`extends` must be a zoo name, a path or a list of them, got {_short(ext)}",
        l.file, pos.line if pos else None, pos.column if pos else None, ("extends",),
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _collect(path: Path, g: nx.DiGraph, loaded: dict[Path, Loaded]) -> None:
    if path in loaded:
        return
    l = load_file(path)
    loaded[path] = l
    g.add_node(path)
    for i, parent in enumerate(_parents(l)):
        try:
            ppath = find_spec(parent, relative_to=path.parent)
        except SpecError as e:
            key = ("extends", i) if isinstance(l.data.get("extends"), list) else ("extends",)
            pos = l.positions.get(key) or l.positions.get(("extends",))
            raise SpecError.one(
                e.problems[0].message, l.file, pos.line if pos else None, pos.column if pos else None, key
            ) from None
        g.add_edge(path, ppath)
        _collect(ppath, g, loaded)


def _merge(path: Path, g: nx.DiGraph, loaded: dict[Path, Loaded], memo: dict[Path, Merged]) -> Merged:
    if path in memo:
        return memo[path]
    own = loaded[path]
    data: dict[str, Any] = {}
    positions: dict[Path_, Source] = {}
    files: list[str] = []
    for parent in g.successors(path):
        pm = _merge(parent, g, loaded, memo)
        data = deep_merge(data, pm.data)
        positions.update(pm.positions)
        files += [f for f in pm.files if f not in files]
    own_data = dict(own.data)
    own_data.pop("extends", None)
    if "name" not in own_data:
        own_data["name"] = path.stem
    data = deep_merge(data, own_data)
    positions.update(own.positions)
    if "name" not in own.data:
        positions[("name",)] = Source(str(path), None, None)  # taken from the file name, not a parent's
    positions = {p: s for p, s in positions.items() if lookup(data, p)[0] or p == ("extends",)}
    files.append(str(path))
    memo[path] = Merged(data, positions, str(path), files)
    return memo[path]


def lookup(data: Any, path: Path_) -> tuple[bool, Any]:
    """Follow `path` (keys and list indices) into `data`: (found, value); a written null is found."""
    for part in path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False, None
    return True, data


# ---------------------------------------------------------------------- overrides

_SPLIT = re.compile(r",(?![^\[\{]*[\]\}])")  # commas not inside [...] or {...}


def parse_overrides(overrides: str | list[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value,key.sub=value`` (or a list of such strings) into (dotted key, value).

    Values are read as YAML scalars/flow collections (``8``, ``1e-6``, ``true``, ``[q, v]``).

    Raises:
        SpecError: for an item without ``=``, an empty key or a value that is not valid YAML.
    """
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    out = []
    for chunk in items:
        for item in _SPLIT.split(chunk):
            item = item.strip()
            if not item:
                continue
            key, eq, raw = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise SpecError.one(
                    f"{item!r} is not key=value; write e.g. layers=2,attention.kv_heads=8", _OVERRIDE
                )
            if any(not p.strip() for p in key.split(".")):
                raise SpecError.one(f"key {key!r} has an empty part; write dotted keys like attention.kv_heads",
                                    _OVERRIDE)
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as e:
                problem = getattr(e, "problem", None) or "not valid YAML"
                raise SpecError.one(
                    f"{key}: value {raw!r} is not a valid YAML value ({problem}); "
                    "write a number, true/false, a string, [a, b] or {k: v}",
                    _OVERRIDE,
                ) from None
            out.append((key, value))
    return out


_OVERRIDE = "--override"


def apply_overrides(merged: Merged, overrides: str | list[str], *, into_stacks: bool = False) -> None:
    """Apply ``--override`` edits in place.  Short names (layers, hidden, heads, vocab, ffn,
    max_positions) edit ``sizes``; a dotted path whose first part is not a top-level field
    (``attention.kv_heads``) is read relative to ``block``.  With `into_stacks` (data dumped
    from a validated spec, whose stacks already carry the merged block), an edit of ``block``
    is applied to each stack's block too.

    Raises:
        SpecError: for a malformed override, an unknown first key, or a path that runs
            into a value that is not a mapping or list.
    """
    from .blocks import Block

    top = set(ModelSpec.model_fields)
    for key, value in parse_overrides(overrides):
        parts: list[str | int] = [int(p) if p.strip().isdigit() else p.strip() for p in key.split(".")]
        first = parts[0]
        if len(parts) == 1 and first in SIZE_ALIASES:
            parts = list(SIZE_ALIASES[first])
        elif first not in top:
            if first not in Block.model_fields:
                known = sorted(top | set(SIZE_ALIASES) | set(Block.model_fields))
                close = difflib.get_close_matches(str(first), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SpecError.one(
                    f"{key}: unknown field {first!r}; {hint}a key starts with a top-level field "
                    f"({', '.join(sorted(top))}), a size ({', '.join(SIZE_ALIASES)}) or a field of "
                    f"block ({', '.join(Block.model_fields)})",
                    _OVERRIDE,
                )
            parts = ["block", *parts]
        _set_path(merged.data, parts, value, key)
        if into_stacks and parts[0] == "block":
            for stack in ("encoder", "decoder"):
                if isinstance(merged.data.get(stack), dict) and "block" in merged.data[stack]:
                    _set_path(merged.data, [stack, *parts], copy.deepcopy(value), key)
        where = tuple(parts)
        for p in [p for p in merged.positions if p[: len(where)] == where]:
            del merged.positions[p]  # the file's positions under an overridden value are stale
        for sub in _leaf_paths(value, where):
            merged.positions[sub] = Source(_OVERRIDE, None, None)


def _leaf_paths(value: Any, path: Path_) -> list[Path_]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaf_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _leaf_paths(v, path + (i,))
    return out


def _set_path(data: dict[str, Any], parts: list[str | int], value: Any, key: str) -> None:
    cur: Any = data
    for i, p in enumerate(parts[:-1]):
        if isinstance(cur, dict) and isinstance(p, str):
            cur = cur.setdefault(p, {})
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            raise SpecError.one(f"{key}: {_where(parts[:i])} is {_describe(cur)}; cannot descend into {p!r}",
                                _OVERRIDE)
    last = parts[-1]
    if isinstance(cur, dict) and isinstance(last, str):
        if isinstance(value, dict) and isinstance(cur.get(last), dict):
            cur[last] = deep_merge(cur[last], value)
        else:
            cur[last] = value
    elif isinstance(cur, list) and isinstance(last, int) and last < len(cur):
        cur[last] = value
    else:
        raise SpecError.one(f"{key}: {_where(parts[:-1])} is {_describe(cur)}; cannot set {last!r} in it",
                            _OVERRIDE)


def _where(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "the spec"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return f"the value {_short(value)}"
