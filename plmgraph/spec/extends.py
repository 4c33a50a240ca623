"""Stage 2, extends: find spec files, resolve the `extends` DAG, deep-merge, apply overrides.

``extends:`` names one or more parents (zoo names or paths relative to the child file).
The parents are merged left to right, then the child on top (see `deep_merge`).  The
inheritance graph is a networkx DiGraph (child -> parent); a cycle is an error that
names every file on it.  Positions travel with the data, so an error in an inherited
field points at the line of the parent file that wrote it.

networkx costs a tenth of a second to import, and almost every spec is a chain (no
``extends``, or one parent that has one parent, ...), whose only possible cycle is a
file seen twice on the walk up.  So networkx is imported only for a spec with several
parents somewhere above it, or when `Merged.graph` is asked for.
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import Problem, SpecError
from .load import Loaded, Source, load_file
from .model import SIZE_ALIASES, ModelSpec, deep_merge

if TYPE_CHECKING:
    import networkx as nx

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
            found = c.resolve()
            if relative_to is not None:
                _check_parent(ref_s, found, relative_to)
            return found
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


def _check_parent(ref: str, found: Path, folder: Path) -> None:
    """What `extends` may reference: a ``.yaml`` / ``.yml`` file in the extending spec's folder or
    below it (symlinks resolved), or a zoo name; never a file elsewhere (``/etc/passwd``)."""
    short = ref if len(ref) <= 80 else ref[:77] + "..."
    if found.suffix.lower() not in (".yaml", ".yml"):
        raise SpecError.one(f"{short!r} is not a spec file (a spec file ends in .yaml or .yml)")
    base = folder.resolve()
    if not found.is_relative_to(base) and not found.is_relative_to(zoo_dir().resolve()):
        raise SpecError.one(f"{short!r} is outside the spec's folder ({base}); extends names a zoo spec "
                            "or a spec file in the same folder or below it")


@dataclass
class Merged:
    """The merged mapping of a spec and its ancestors, with positions and the chain of files."""

    data: dict[str, Any]
    positions: dict[Path_, Source] = field(default_factory=dict)
    file: str = "<spec>"
    files: list[str] = field(default_factory=list)
    parents: dict[Path, list[Path]] = field(default_factory=dict)  # the inheritance DAG: file -> its parents
    extends: str | list[str] | None = None  # what the root file itself extends

    @property
    def graph(self) -> nx.DiGraph:
        """The inheritance DAG as a networkx DiGraph, child -> parent, parents in `extends` order."""
        return _digraph(self.parents)


def _digraph(parents: dict[Path, list[Path]]) -> nx.DiGraph:
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(parents)
    g.add_edges_from((child, parent) for child, ps in parents.items() for parent in ps)
    return g


def _find_cycle(root: Path, parents: dict[Path, list[Path]]) -> list[tuple[Path, Path]] | None:
    """The edges of a cycle reachable from `root`, as ``networkx.find_cycle`` gives them, or None.

    A chain (no file with two parents) is walked up directly; a DAG with merges goes to networkx.
    """
    if any(len(ps) > 1 for ps in parents.values()):
        import networkx as nx

        try:
            return nx.find_cycle(_digraph(parents), source=root)
        except nx.NetworkXNoCycle:
            return None
    walk = [root]
    while parents.get(walk[-1]):
        nxt = parents[walk[-1]][0]
        if nxt in walk:
            loop = walk[walk.index(nxt):] + [nxt]
            return list(zip(loop, loop[1:], strict=False))
        walk.append(nxt)
    return None


def hf_config_of(ref: Any) -> Path | None:
    """The ``config.json`` when `ref` is a Hugging Face checkpoint folder (one with a config.json and no
    spec.yaml) or a ``config.json`` itself; else None (also for a bare zoo name such as ``gpt2``)."""
    if not isinstance(ref, (str, Path)) or not str(ref):
        return None
    if isinstance(ref, str) and "/" not in ref and "\\" not in ref and (zoo_dir() / f"{ref}.yaml").is_file():
        return None  # a bare zoo name means the zoo spec, even beside a folder of that name (./gpt2 for it)
    p = Path(ref)
    if p.is_dir() and (p / "config.json").is_file() and not (p / "spec.yaml").exists():
        return p / "config.json"
    if p.name == "config.json" and p.is_file():
        return p
    return None


def load_merged(ref: str | Path, overrides: str | list[str] | None = None) -> Merged:
    """Load `ref` (a zoo name or path, or a Hugging Face folder or config.json: converted through the
    importer's tables, no weights read), resolve `extends`, then apply ``--override`` edits."""
    hf = hf_config_of(ref)
    if hf is not None:
        from ..compile.hf_types import merged_from_config

        merged = merged_from_config(hf)
        if overrides:
            apply_overrides(merged, overrides)
        return merged
    root = find_spec(ref)
    parents: dict[Path, list[Path]] = {}
    loaded: dict[Path, Loaded] = {}
    _collect(root, parents, loaded)
    cycle = _find_cycle(root, parents)
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
    merged = _merge(root, parents, loaded, memo)
    merged.parents = parents
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


def _collect(path: Path, parents: dict[Path, list[Path]], loaded: dict[Path, Loaded]) -> None:
    if path in loaded:
        return
    l = load_file(path)
    loaded[path] = l
    _check_top_level_sizes(l)
    parents[path] = []
    for i, parent in enumerate(_parents(l)):
        try:
            ppath = find_spec(parent, relative_to=path.parent)
        except SpecError as e:
            key = ("extends", i) if isinstance(l.data.get("extends"), list) else ("extends",)
            pos = l.positions.get(key) or l.positions.get(("extends",))
            raise SpecError.one(
                e.problems[0].message, l.file, pos.line if pos else None, pos.column if pos else None, key
            ) from None
        if ppath not in parents[path]:  # `extends: [a, a]` is one edge, as in a DiGraph
            parents[path].append(ppath)
        _collect(ppath, parents, loaded)


def _check_top_level_sizes(l: Loaded) -> None:
    """``layers: 2`` written at the top level, where it means nothing, belongs under ``sizes:``.

    ``heads`` is also the top-level list of output heads, so only a number there is a size.
    """
    top = set(ModelSpec.model_fields)
    problems = []
    for key, value in l.data.items():
        if key in SIZE_ALIASES and (key not in top or (key == "heads" and isinstance(value, int)
                                                          and not isinstance(value, bool))):
            pos = l.positions.get((key,))
            problems.append(Problem(
                f"a size goes under `sizes:`, as in `sizes: {{{key}: {_short(value)}}}` "
                f"(the short names {', '.join(SIZE_ALIASES)} are sizes only in --override)",
                l.file, pos.line if pos else None, pos.column if pos else None, (key,),
            ))
    if problems:
        raise SpecError(problems)


def _merge(path: Path, parents: dict[Path, list[Path]], loaded: dict[Path, Loaded],
           memo: dict[Path, Merged]) -> Merged:
    if path in memo:
        return memo[path]
    own = loaded[path]
    data: dict[str, Any] = {}
    positions: dict[Path_, Source] = {}
    files: list[str] = []
    for parent in parents[path]:
        pm = _merge(parent, parents, loaded, memo)
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
                rest = "".join(f".{p}" for p in parts[1:])
                hint = "".join(f"did you mean {c + rest!r}? " for c in _suggest(str(first))[:1])
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


def _suggest(word: str) -> list[str]:
    """What an unknown first key of an override probably meant, best first, as a key to write.

    A field of a part of the block or of the spec (``kv_heads``) is offered with its path
    (``attention.kv_heads``); a near miss of any key, nested or not, the same way.
    """
    first_level, nested = _override_keys()
    if word in nested:
        return nested[word]
    close = difflib.get_close_matches(word, [*first_level, *nested], n=3, cutoff=0.6)
    out: list[str] = []
    for c in close:
        out += [c] if c in first_level else nested[c]
    return list(dict.fromkeys(out))


_KEYS: tuple[list[str], dict[str, list[str]]] | None = None


def _override_keys() -> tuple[list[str], dict[str, list[str]]]:
    """(keys an override may start with, field name -> the dotted keys that reach it).

    Nested keys are those of the block's parts (relative to ``block``, as an override reads
    them) and of the spec's own sections, two levels down, every variant of a tagged union.
    """
    global _KEYS
    if _KEYS is None:
        from .blocks import Block

        first_level = list(dict.fromkeys([*SIZE_ALIASES, *Block.model_fields, *ModelSpec.model_fields]))
        nested: dict[str, list[str]] = {}
        for name, info in Block.model_fields.items():
            _walk(name, info.annotation, nested, 2)
        for name, info in ModelSpec.model_fields.items():
            if name not in ("block", "encoder", "decoder", "sizes"):  # the block is above; sizes have short names
                _walk(name, info.annotation, nested, 2)
        _KEYS = first_level, {k: v for k, v in nested.items() if k not in first_level}
    return _KEYS


def _walk(path: str, annotation: Any, nested: dict[str, list[str]], depth: int) -> None:
    if depth == 0:
        return
    for model, in_list in _models(annotation):
        base = f"{path}.0" if in_list else path  # a list is edited by index: heads.0.tie_embeddings
        for name, info in model.model_fields.items():
            if name == "kind":
                continue
            key = f"{base}.{name}"
            if key not in nested.setdefault(name, []):
                nested[name].append(key)
            _walk(key, info.annotation, nested, depth - 1)


def _models(annotation: Any, in_list: bool = False) -> list[tuple[type, bool]]:
    """The pydantic model classes inside an annotation (``Annotated[A | B, ...]``, ``list[H]``, ...),
    each with whether it sits in a list."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, in_list)]
    in_list = in_list or typing.get_origin(annotation) is list
    out: list[tuple[type, bool]] = []
    for arg in typing.get_args(annotation):
        out += [m for m in _models(arg, in_list) if m not in out]
    return out


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
