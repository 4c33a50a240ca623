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
_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null")
}

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    """Where a field was written: file, 1-based line and column."""

    file: str
    line: int
    column: int


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
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise SpecError.one(f"file is larger than the {MAX_BYTES} byte limit for a spec", file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise SpecError.one(f"YAML syntax error: {e.problem or e.context}", file, line, col) from None
    except yaml.YAMLError as e:  # pragma: no cover - composer errors are all Marked
        raise SpecError.one(f"YAML error: {e}", file) from None
    if node is None:
        raise SpecError.one("file is empty; a spec is a YAML mapping with at least `name`", file)
    conv = _Converter(file)
    data = conv.convert(node, (), 0)
    if not isinstance(data, dict):
        raise SpecError.one(
            f"a spec must be a YAML mapping, got a {type(data).__name__}", file, node.start_mark.line + 1
        )
    return Loaded(data, conv.positions, file)


def load_file(path: str | Path) -> Loaded:
    """Read and parse one spec file (see `load_text`)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise SpecError.one(f"file is {size} bytes; the limit for a spec is {MAX_BYTES}", p)
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError.one("no such file", p) from None
    except IsADirectoryError:
        raise SpecError.one("is a directory, not a spec file", p) from None
    except UnicodeDecodeError as e:
        raise SpecError.one(f"not UTF-8 text ({e.reason} at byte {e.start})", p) from None
    return load_text(text, str(p))


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
            raise self._err(f"document expands to more than {MAX_NODES} nodes (alias bomb?)", node, path)
        if depth > MAX_DEPTH:
            raise self._err(f"nesting deeper than {MAX_DEPTH} levels", node, path)
        if node.tag not in _STANDARD_TAGS:
            raise self._err(
                f"YAML tag {node.tag!r} is not allowed; specs are plain data "
                "(mappings, lists, strings, numbers, booleans, null)",
                node,
                path,
            )
        self.positions.setdefault(path, Source(self.file, node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self._err("YAML merge keys (<<) are not supported; use `extends`", key_node, path)
                key = self.convert(key_node, path, depth + 1)
                if not isinstance(key, str):
                    raise self._err(f"mapping keys must be strings, got {key!r}", key_node, path)
                if key in out:
                    raise self._err(f"duplicate key {key!r}", key_node, path + (key,))
                sub = path + (key,)
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
