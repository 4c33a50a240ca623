"""Stage 1, load: a YAML file -> plain mapping plus the source position of every field.

YAML is parsed with PyYAML's *safe* composer and converted by hand so that we can

* reject every non-standard tag (``!!python/object`` and friends) instead of running it,
* bound file size, nesting depth and alias expansion ("billion laughs"),
* reject duplicate keys (PyYAML silently keeps the last one),
* remember the line and column of every key, so a validation error far downstream can
  still say ``gpt2.yaml:12:5: block.attention.kv_heads: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

MAX_BYTES = 1 << 20  # 1 MiB: a spec is a page of text, not a data set
MAX_DEPTH = 32
MAX_NODES = 100_000  # counted after alias expansion
_YAML_TAG = "tag:yaml.org,2002:"
_STANDARD_TAGS = {_YAML_TAG + t for t in ("map", "seq", "str", "int", "float", "bool", "null")}

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    """Where a field was written: file, 1-based line and column (None for ``--override``)."""

    file: str
    line: int | None
    column: int | None


@dataclass
class Loaded:
    """A parsed spec file: its data and where each field path was written."""

    data: dict[str, Any]
    positions: dict[Path_, Source] = field(default_factory=dict)
    file: str = "<string>"


def load_text(text: str, file: str = "<string>") -> Loaded:
    """Parse YAML text into a mapping with positions.

    Raises:
        SpecError: on a YAML syntax error, a non-standard tag, a duplicate key, a
            document that is not a mapping, or when a size bound is exceeded.
    """
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise SpecError.one(f"file is {size} bytes; the limit for a spec is {MAX_BYTES}", file)
    try:
        node = _compose(text)
    except _TooDeep as e:
        raise SpecError.one(f"nesting deeper than {MAX_DEPTH} levels; a spec is a few levels deep",
                            file, e.mark.line + 1, e.mark.column + 1) from None
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, file) from None
    except yaml.YAMLError as e:  # pragma: no cover - composer errors are all Marked
        raise SpecError.one(f"YAML error: {e}", file) from None
    conv = _Converter(file)
    data = None if node is None else conv.convert(node, (), 0)
    if data is None:  # no document, only comments, or a bare `---`
        raise SpecError.one("file is empty; a spec is a YAML mapping with at least `name`", file)
    if not isinstance(data, dict):
        shown = repr(data) if len(repr(data)) <= 60 else repr(data)[:60] + "..."  # a short excerpt, never the file
        what = "list" if isinstance(data, list) else f"single value ({shown})"
        raise SpecError.one(
            f"a spec must be a YAML mapping of `key: value` lines, got a {what}",
            file, node.start_mark.line + 1, node.start_mark.column + 1,
        )
    return Loaded(data, conv.positions, file)


def load_file(path: str | Path) -> Loaded:
    """Read and parse one spec file (see `load_text`).

    Raises:
        SpecError: when the file is missing, unreadable, too large or not UTF-8, and for
            everything `load_text` rejects.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise SpecError.one("is a directory, not a spec file", p)
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded even for /dev/zero
    except FileNotFoundError:
        raise SpecError.one("no such file", p) from None
    except OSError as e:
        raise SpecError.one(f"cannot read the file: {e.strerror or e}", p) from None
    if len(raw) > MAX_BYTES:
        raise SpecError.one(f"file is larger than {MAX_BYTES} bytes, the limit for a spec", p)
    key = (str(p), raw)  # keyed on the content: a file rewritten within one mtime tick is not stale
    if key in _CACHE:  # `plmgraph list` parses gpt2.yaml once, not once per spec that extends it
        return _copy(_CACHE[key])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError.one(
            f"not UTF-8 text: byte {raw[e.start]:#04x} ({e.reason}); save the file as UTF-8", p, line, column
        ) from None
    loaded = load_text(text.removeprefix("\ufeff"), str(p))
    if len(raw) <= _CACHE_MAX_BYTES:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        _CACHE[key] = _copy(loaded)
    return loaded


_CACHE: dict[tuple[str, bytes], Loaded] = {}
_CACHE_MAX_BYTES = 64 << 10


def _copy(loaded: Loaded) -> Loaded:
    """A copy the caller may edit: the data's dicts and lists are new; the positions' `Source`
    values are shared, since nothing edits one (extends replaces them)."""
    return Loaded(_copy_tree(loaded.data), dict(loaded.positions), loaded.file)


def _copy_tree(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _copy_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy_tree(v) for v in x]
    return x  # str, int, float, bool, None: immutable


def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree, composed by libyaml when PyYAML has it (about ten times faster than
    the pure-Python composer, which `plmgraph list` would spend most of its time in).

    Both composers recurse once per nesting level, so a first pass over the parser's events
    (a loop, not a recursion) refuses ``[[[[...]]]]`` before either composes it.  A file libyaml
    rejects is parsed again in Python, whose messages say more ("expected ',' or '}', but got
    ':'" where libyaml says "did not find expected ',' or '}'").
    """
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return yaml.compose(text, Loader=_BoundedLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:
                    raise _TooDeep(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return yaml.compose(text, Loader=_BoundedLoader)


def _syntax_error(e: yaml.MarkedYAMLError, file: str) -> SpecError:
    """One readable message for a PyYAML scanner/parser/composer error."""
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark else None
    col = mark.column + 1 if mark else None
    problem = e.problem or e.context or "invalid YAML"
    if problem == "but found another document":
        msg = "a spec file holds one YAML document, but a second one starts here (`---`)"
    else:
        msg = f"YAML syntax error: {problem}"
        if "'\\t'" in problem:
            msg += " (indent with spaces, not tabs)"
        if e.context and e.context_mark and e.problem_mark and e.context_mark is not e.problem_mark:
            msg += f" ({e.context} that starts at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
    return SpecError.one(msg, file, line, col)


def _tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing to compose nodes nested deeper than MAX_DEPTH.

    PyYAML's composer recurses once per level, so ``[[[[...]]]]`` a few thousand deep would
    otherwise end in a RecursionError before our own depth check ever runs.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path_, Source] = {}
        self.nodes = 0
        self._scalar_loader = yaml.SafeLoader("")

    def _err(self, msg: str, node: yaml.Node, path: Path_) -> SpecError:
        return SpecError.one(msg, self.file, node.start_mark.line + 1, node.start_mark.column + 1, path)

    def convert(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._err(
                f"aliases (*name) expand the document to more than {MAX_NODES} values; "
                "a spec is small, so this looks like an alias bomb",
                node, path[:1],
            )
        if depth > MAX_DEPTH:  # reachable through aliases, which the composer does not nest
            raise self._err(f"nesting deeper than {MAX_DEPTH} levels; a spec is a few levels deep", node, path[:1])
        if node.tag not in _STANDARD_TAGS:
            raise self._err(
                f"YAML tag {_tag(node.tag)!r} is not allowed; specs are plain data "
                "(mappings, lists, strings, numbers, booleans, null)",
                node,
                path,
            )
        self.positions.setdefault(path, Source(self.file, node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _YAML_TAG + "merge":
                    raise self._err("YAML merge keys (<<) are not supported; use `extends`", key_node, path)
                key = self.convert(key_node, path, depth + 1)
                if not isinstance(key, str):
                    raise self._err(
                        f"keys must be strings, but {key_node.value!r} reads as {type(key).__name__} {key!r}; "
                        "quote it or use a field name",
                        key_node, path,
                    )
                sub = path + (key,)
                if key in out:
                    first = self.positions[sub]
                    raise self._err(
                        f"duplicate key {key!r} (first written at line {first.line}); "
                        "write each key once",
                        key_node, sub,
                    )
                self.positions[sub] = Source(
                    self.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1
                )
                out[key] = self.convert(value_node, sub, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(v, path + (i,), depth + 1) for i, v in enumerate(node.value)]
        try:
            return self._scalar_loader.construct_object(node)
        except yaml.YAMLError as e:
            raise self._err(f"bad scalar {node.value!r}: {e}", node, path) from None
