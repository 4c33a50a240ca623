"""Stage 3, validate: merged mapping -> `ModelSpec`, with errors that point at the source.

Pydantic reports each error with a location tuple such as
``('decoder', 'block', 'norm', 'rmsnorm', 'eps')``: the tag of a discriminated union
appears as a path element, and fields of a stack may have been written in the top-level
``block``.  `_locate` maps such a tuple back to the nearest written field and its line.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem, SpecError
from .extends import Merged, load_merged
from .load import Source
from .model import CrossFieldError, ModelSpec

Path_ = tuple[str | int, ...]


def validate(merged: Merged) -> ModelSpec:
    """Validate a merged mapping into a `ModelSpec`.

    Raises:
        SpecError: listing every problem, each with file, line, field path, the bad value
            and what is allowed.
    """
    try:
        spec = ModelSpec.model_validate(merged.data)
    except ValidationError as e:
        raise SpecError(_dedupe([_from_pydantic(err, merged) for err in e.errors()])) from None
    except CrossFieldError as e:
        raise SpecError(_dedupe([_problem(merged, path, msg) for path, msg in e.errors])) from None
    spec._source_file = merged.file
    return spec


def load_spec(ref: Any, overrides: str | list[str] | None = None) -> ModelSpec:
    """A zoo name, a path or a `ModelSpec` -> validated `ModelSpec` (the public ``pg.load_spec``).

    Raises:
        SpecError: when the file cannot be found, parsed, merged or validated.
    """
    if isinstance(ref, ModelSpec):
        if not overrides:
            return ref
        merged = Merged(ref.model_dump(exclude_none=True, exclude={"extends"}), file=ref.source_file or "<spec>")
        from .extends import apply_overrides

        apply_overrides(merged, overrides)
        return validate(merged)
    return validate(load_merged(ref, overrides))


# ------------------------------------------------------------------ error mapping


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for p in problems:
        key = (p.file, p.line, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _problem(merged: Merged, path: Path_, message: str) -> Problem:
    written, src = _locate(merged, path)
    return Problem(message, src.file if src else merged.file, src.line if src else None,
                   src.column if src else None, written)


def _locate(merged: Merged, loc: Path_) -> tuple[Path_, Source | None]:
    """Drop union tags from `loc` and find the deepest position that was written."""
    path = _strip_tags(loc, merged.data)
    candidates = [path]
    if len(path) >= 2 and path[0] in ("encoder", "decoder") and path[1] == "block":
        candidates.append(("block",) + path[2:])  # a stack's block is merged from the top-level one
    for cand in candidates:
        for n in range(len(cand), 0, -1):
            if cand[:n] in merged.positions:
                return path if cand is path else cand, merged.positions[cand[:n]]
    return path, None


def _strip_tags(loc: Path_, data: Any) -> Path_:
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and cur.get("kind") == part:
            continue  # the discriminator tag pydantic inserts
        elif isinstance(cur, dict) and isinstance(part, str) and part not in ("function-after", "function-before"):
            out.append(part)  # a missing field: keep its name, stop descending
            cur = None
        elif isinstance(part, str) and (part.startswith("function-") or "[" in part):
            continue
        else:
            out.append(part)
            cur = None
    return tuple(out)


def _from_pydantic(err: dict[str, Any], merged: Merged) -> Problem:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    typ = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if typ == "extra_forbidden":
        field = loc[-1]
        allowed = _allowed_fields(loc[:-1], merged.data)
        close = difflib.get_close_matches(str(field), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown field {field!r}; {hint}allowed: {', '.join(allowed)}"
    elif typ == "union_tag_invalid":
        tags = ctx.get("expected_tags", "")
        msg = f"unknown kind {ctx.get('tag')!r}; allowed: {tags.replace(chr(39), '')}"
        loc = loc + ("kind",)
    elif typ == "union_tag_not_found":
        msg = "missing `kind`; every variant of this field is chosen by its kind"
        allowed = _tags_at(loc, merged.data)
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
    elif typ == "missing":
        msg = "required field is missing"
    elif typ == "value_error":
        msg = str(ctx.get("error", err["msg"]))
    else:
        msg = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_short(value)}"
    return _problem(merged, loc, msg)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(loc: Path_, data: Any) -> type[BaseModel] | None:
    """Walk the ModelSpec class tree along `loc` (tags included) to the model it points into."""
    cls: Any = ModelSpec
    cur = data
    for part in loc:
        if isinstance(part, int):
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
            continue
        if isinstance(cls, type) and issubclass(cls, BaseModel) and part in cls.model_fields:
            cls = cls.model_fields[part].annotation
            cur = cur.get(part) if isinstance(cur, dict) else None
            cls = _pick(cls, cur)
        else:
            cls = _pick(cls, {"kind": part})
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _pick(annotation: Any, value: Any) -> Any:
    """Unwrap Optional / list / Annotated / tagged unions to the model class `value` selects."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _pick(typing.get_args(annotation)[0], value)
    if origin is list:
        return _pick(typing.get_args(annotation)[0], value)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        models += [
            m for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Annotated
            for m in typing.get_args(typing.get_args(a)[0]) if isinstance(m, type)
        ]
        kind = value.get("kind") if isinstance(value, dict) else None
        for m in models:
            f = m.model_fields.get("kind")
            if f is not None and kind in typing.get_args(f.annotation):
                return m
        return models[0] if len(models) == 1 else (models[0] if models and kind is None else annotation)
    return annotation


def _allowed_fields(loc: Path_, data: Any) -> list[str]:
    cls = _model_at(loc, data)
    return sorted(cls.model_fields) if cls else []


def _tags_at(loc: Path_, data: Any) -> list[str]:
    cls: Any = ModelSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(cls, type) and issubclass(cls, BaseModel) and part in cls.model_fields:
            cls = cls.model_fields[part].annotation
    tags: list[str] = []

    def walk(a: Any) -> None:
        if typing.get_origin(a) in (typing.Annotated, list, typing.Union, types.UnionType):
            for x in typing.get_args(a):
                walk(x)
        elif isinstance(a, type) and issubclass(a, BaseModel) and "kind" in a.model_fields:
            tags.extend(typing.get_args(a.model_fields["kind"].annotation))

    walk(cls)
    return sorted(set(tags))
