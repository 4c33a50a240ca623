"""Stage 2, extends: find spec files, resolve the `extends` DAG, deep-merge, apply overrides.

``extends:`` names one or more parents (zoo names or paths relative to the child file).
The parents are merged left to right, then the child on top (see `deep_merge`).  The
inheritance graph is a networkx DiGraph (child -> parent); a cycle is an error that
names every file on it.  Positions travel with the data, so an error in an inherited
field points at the line of the parent file that wrote it.
"""

from __future__ import annotations

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
            the closest zoo names.
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
    if not looks_like_path:
        z = zoo_dir() / f"{ref_s}.yaml"
        if z.is_file():
            return z.resolve()
    names = zoo_names()
    close = difflib.get_close_matches(ref_s, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    what = "no such spec file" if looks_like_path else "not a spec file or zoo name"
    raise SpecError.one(f"{what}: {ref_s!r}{hint} (zoo: {', '.join(names)})")


@dataclass
class Merged:
    """The merged mapping of a spec and its ancestors, with positions and the chain of files."""

    data: dict[str, Any]
    positions: dict[Path_, Source] = field(default_factory=dict)
    file: str = "<spec>"
    files: list[str] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)


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
        files = [str(u) for u, _ in cycle] + [str(cycle[0][0])]
        chain = " -> ".join(Path(f).name for f in files)
        src = loaded[cycle[-1][0]]
        pos = src.positions.get(("extends",))
        raise SpecError.one(f"`extends` forms a cycle: {chain}", src.file, pos.line if pos else None, path=("extends",))
    memo: dict[Path, Merged] = {}
    merged = _merge(root, g, loaded, memo)
    merged.graph = g
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
        f"`extends` must be a zoo name, a path or a list of them, got {ext!r}",
        l.file, pos.line if pos else None, path=("extends",),
    )


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
            pos = l.positions.get(key)
            raise SpecError.one(e.problems[0].message, l.file, pos.line if pos else None, path=("extends",)) from None
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
    positions = {p: s for p, s in positions.items() if _has_path(data, p) or p == ("extends",)}
    files.append(str(path))
    memo[path] = Merged(data, positions, str(path), files)
    return memo[path]


def _has_path(data: Any, path: Path_) -> bool:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


# ---------------------------------------------------------------------- overrides

_SPLIT = re.compile(r",(?![^\[\{]*[\]\}])")  # commas not inside [...] or {...}


def parse_overrides(overrides: str | list[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value,key.sub=value`` (or a list of such strings) into (dotted key, value).

    Values are read as YAML scalars/flow collections (``8``, ``1e-6``, ``true``, ``[q, v]``).

    Raises:
        SpecError: for an item without ``=`` or a value that is not valid YAML.
    """
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    out = []
    for chunk in items:
        for item in _SPLIT.split(chunk):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise SpecError.one(f"override {item!r} is not key=value (e.g. layers=2,attention.kv_heads=8)", "--override")
            key, _, raw = item.partition("=")
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                raise SpecError.one(f"override {key}: value {raw!r} is not valid YAML", "--override") from None
            out.append((key.strip(), value))
    return out


def apply_overrides(merged: Merged, overrides: str | list[str]) -> None:
    """Apply ``--override`` edits in place.  Short names (layers, hidden, heads, vocab, ffn,
    max_positions) edit ``sizes``; a dotted path whose first part is not a top-level field
    (``attention.kv_heads``) is read relative to ``block``."""
    top = set(ModelSpec.model_fields)
    for key, value in parse_overrides(overrides):
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
        if len(parts) == 1 and parts[0] in SIZE_ALIASES:
            parts = list(SIZE_ALIASES[parts[0]])
        elif parts[0] not in top:
            parts = ["block", *parts]
        if not all(isinstance(p, (str, int)) and p != "" for p in parts):
            raise SpecError.one(f"override key {key!r} has an empty part", "--override")
        _set_path(merged.data, parts, value, key)
        merged.positions[tuple(parts)] = Source("--override", 1, 1)


def _set_path(data: dict[str, Any], parts: list[str | int], value: Any, key: str) -> None:
    cur: Any = data
    for p in parts[:-1]:
        if isinstance(cur, dict):
            cur = cur.setdefault(p, {})
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            raise SpecError.one(f"override {key!r}: cannot descend into {p!r}", "--override")
    last = parts[-1]
    if isinstance(cur, dict):
        if isinstance(value, dict) and isinstance(cur.get(last), dict):
            cur[last] = deep_merge(cur[last], value)
        else:
            cur[last] = value
    elif isinstance(cur, list) and isinstance(last, int) and last < len(cur):
        cur[last] = value
    else:
        raise SpecError.one(f"override {key!r}: cannot set {last!r} here", "--override")
