"""Stage 3, validate: merged mapping -> `ModelSpec`, with errors that point at the source.

Pydantic reports each error with a location tuple such as
``('decoder', 'block', 'norm', 'rmsnorm', 'eps')``: the tag of a discriminated union
appears as a path element, and fields of a stack may have been written in the top-level
``block``.  `_locate` maps such a tuple back to the nearest written field and its line.
Pydantic's messages are rewritten to quote the value and say what is allowed ("must be
greater than 0, got -3"), the failed branches of one union (``bool | Norm``) become one
problem, a block error shared by two stacks is reported once, and a YAML boolean given
for a number (``layers: yes``, which pydantic would read as 1) is an error.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem, SpecError
from .extends import Merged, load_merged, lookup
from .load import Source
from .model import CrossFieldError, ModelSpec

Path_ = tuple[str | int, ...]


def validate(merged: Merged) -> ModelSpec:
    """Validate a merged mapping into a `ModelSpec`.

    Raises:
        SpecError: listing every problem, each with file, line, field path, the bad value
            and what is allowed.
    """
    early = [_problem(merged, path, msg, tagged=False) for path, msg in _bools_for_numbers(merged.data)]
    try:
        spec = ModelSpec.model_validate(merged.data)
    except ValidationError as e:
        # Pydantic read an early-reported boolean as 0 or 1; its own complaint about it is an echo.
        marked = {(p.file, p.line, p.column) for p in early}
        later = [p for p in _from_pydantic_errors(e.errors(), merged) if (p.file, p.line, p.column) not in marked]
        raise SpecError(_dedupe(early + later)) from None
    except CrossFieldError as e:
        # With a boolean read as a number (``layers: yes`` is 1) the cross-field errors are echoes.
        crossed = [_problem(merged, path, msg, tagged=False) for path, msg in e.errors]
        raise SpecError(_dedupe(early or crossed)) from None
    if early:
        raise SpecError(_dedupe(early))
    spec._source_file = merged.file
    spec._merged = merged
    spec.__dict__["extends"] = merged.extends  # the merge consumed it; keep it for `list` and diffs
    return spec


def load_spec(ref: Any, overrides: str | list[str] | None = None) -> ModelSpec:
    """A zoo name, a path or a `ModelSpec` -> validated `ModelSpec` (the public ``pg.load_spec``).

    Raises:
        SpecError: when the file cannot be found, parsed, merged or validated.
    """
    if isinstance(ref, ModelSpec):
        if not overrides:
            return ref
        from .extends import apply_overrides

        if ref._merged is not None:  # re-apply onto what the spec was validated from
            merged = copy.deepcopy(ref._merged)
            apply_overrides(merged, overrides)
        else:  # built in Python: start from its dump, whose stacks carry their merged blocks
            merged = Merged(ref.model_dump(exclude_unset=True, exclude={"extends"}), file=ref.source_file or "<spec>")
            apply_overrides(merged, overrides, into_stacks=True)
        return validate(merged)
    return validate(load_merged(ref, overrides))


# ------------------------------------------------------------------ error mapping

_SCALAR_LABELS = {"bool": "true or false", "str": "a string", "int": "an integer", "float": "a number",
                  "none": "null"}


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Drop repeats: an error in the top-level `block` is reported once, not once per stack."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for p in problems:
        key = (p.file, p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _problem(merged: Merged, path: Path_, message: str, data: Any = None, tagged: bool = True) -> Problem:
    """A problem at `path`, located in the file that wrote it.  `tagged`: `path` is a pydantic
    location (with union tags to drop), not a plain path through the data."""
    written, src = _locate(merged, path, data, tagged)
    if src is None:
        return Problem(message, merged.file, None, None, written)
    return Problem(message, src.file, src.line, src.column, written)


def _expanded(data: Any) -> Any:
    """`data` with the top-level block merged into each stack, as pydantic sees it."""
    try:
        return ModelSpec._expand_stacks(data)
    except Exception:  # a malformed mapping: pydantic reports it, locating falls back to the raw data
        return data


def _locate(merged: Merged, loc: Path_, data: Any = None, tagged: bool = True) -> tuple[Path_, Source | None]:
    """Drop union tags from `loc` and find the deepest position that was written.

    A stack's block is the top-level ``block`` with the stack's own ``block`` merged on top,
    so ``decoder.block.attention.kv_heads`` was written either under ``decoder:`` or under
    the top-level ``block:``; the candidate whose written prefix is longest wins, and on a
    tie the stack's own (it is merged last).
    """
    path = _strip_tags(loc, _expanded(merged.data) if data is None else data)[0] if tagged else loc
    candidates = [path]
    if len(path) >= 2 and path[0] in ("encoder", "decoder") and path[1] == "block":
        candidates.append(("block",) + path[2:])
    best: tuple[int, Path_, Source] | None = None
    for cand in candidates:
        for n in range(len(cand), 0, -1):
            if cand[:n] in merged.positions:
                missing = len(cand) - n
                if best is None or missing < best[0]:
                    best = (missing, cand, merged.positions[cand[:n]])
                break
    if best is None:
        # Nothing at or above the path was written: the field was created below it, e.g. by
        # `--override init.std=0.05` on a spec without `init`; point at the first such write.
        below = [p for p in merged.positions if p[: len(path)] == path and len(p) > len(path)]
        if below:
            return path, merged.positions[min(below, key=len)]
        return path, None
    return best[1], best[2]


def _is_label(part: Any) -> bool:
    """A union-branch label pydantic puts in a location: ``bool``, ``list[str]``, ``tagged-union[...]``."""
    return isinstance(part, str) and (part in _SCALAR_LABELS or "[" in part or part[:1].isupper())


def _strip_tags(loc: Path_, data: Any) -> tuple[Path_, tuple[Path_, str] | None]:
    """`loc` as a path through `data`: union tags and branch labels dropped.  Also returns
    the first branch label seen and the path of its union (None outside such unions)."""
    out: list[str | int] = []
    label: tuple[Path_, str] | None = None
    cur = data
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif _is_label(part):
            label = label or (tuple(out), str(part))
        elif isinstance(cur, dict) and cur.get("kind") == part:
            continue  # the discriminator tag pydantic inserts
        else:
            out.append(part)  # a missing field: keep its name, stop descending
            cur = None
    return tuple(out), label


def _from_pydantic_errors(errors: list[Any], merged: Merged) -> list[Problem]:
    """Pydantic's errors -> problems; the failed branches of one union become one problem."""
    data = _expanded(merged.data)
    items = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path, label = _strip_tags(loc, data)
        items.append((err, loc, path, label))
    # Errors from the branches of one union (``bool | Norm``): keep the branch the value meant.
    unions: dict[Path_, list[Any]] = {}
    for item in items:
        if item[3] is not None:
            unions.setdefault(item[3][0], []).append(item)
    problems: list[Problem] = []
    done: set[Path_] = set()
    for err, loc, _path, label in items:
        group = unions.get(label[0], []) if label is not None else []
        if label is None or len({it[3][1] for it in group}) < 2:
            problems.append(_from_pydantic(err, loc, merged, data))
            continue
        where = label[0]
        if where in done:
            continue
        done.add(where)
        value = lookup(data, where)[1]
        mapping_branches = [it for it in group if not _is_scalar_label(it[3][1])]
        if isinstance(value, dict) and mapping_branches:
            problems += [_from_pydantic(it[0], it[1], merged, data) for it in mapping_branches]
        else:
            wants = list(dict.fromkeys(_describe_label(it[3][1]) for it in group))
            problems.append(_problem(merged, where, f"must be {', or '.join(wants)}; got {_show(value)}", data))
    return problems


def _is_scalar_label(label: str) -> bool:
    return label in _SCALAR_LABELS or label.startswith("list[")


def _describe_label(label: str) -> str:
    if label in _SCALAR_LABELS:
        return _SCALAR_LABELS[label]
    if label.startswith("list["):
        return "a list"
    if label.startswith("tagged-union["):
        return "a mapping with a `kind`"
    return "a mapping"


def _from_pydantic(err: dict[str, Any], loc: Path_, merged: Merged, data: Any) -> Problem:
    typ = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    path, _ = _strip_tags(loc, data)
    got = f", got {_show(value)}"
    if typ == "extra_forbidden":
        field = loc[-1]
        allowed = _allowed_fields(loc[:-1], data)
        msg = f"unknown field {field!r}; {_did_you_mean(str(field), allowed)}allowed: {', '.join(allowed)}"
    elif typ == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        written = lookup(data, path)[1]
        tag = written.get("kind", ctx.get("tag")) if isinstance(written, dict) else ctx.get("tag")
        hint = _did_you_mean(tag, tags) if isinstance(tag, str) else ""
        msg = f"unknown kind {_show(tag)}; {hint}allowed: {', '.join(tags)}"
        loc = loc + ("kind",)
    elif typ == "union_tag_not_found":
        msg = "missing `kind`; every variant of this field is chosen by its kind"
        allowed = _tags_at(loc, data)
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
    elif typ == "missing":
        msg = f"required field {path[-1]!r} is missing"
        cls = _model_at(loc[:-1], data)
        field_info = cls.model_fields.get(str(path[-1])) if cls else None
        if field_info is not None and field_info.description:
            msg += f" ({field_info.description.rstrip('.')})"
    elif typ == "value_error":
        msg = str(ctx.get("error", err["msg"]))
    elif typ in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        msg = f"must be {_BOUNDS[typ]} {_show(bound)}{got}"
    elif typ in _TYPES:
        msg = f"must be {_TYPES[typ]}{got}"
    elif typ == "literal_error":
        allowed = _literal_values(str(ctx.get("expected", "")))
        if path == ("plmgraph",):
            msg = f"unsupported spec format version {_show(value)}; this plmgraph reads `plmgraph: 1`"
        else:
            hint = _did_you_mean(value, allowed) if isinstance(value, str) else ""
            msg = f"must be one of {', '.join(allowed)}{got}" + (f"; {hint.strip()}" if hint else "")
    elif typ == "string_pattern_mismatch" and path == ("name",):
        msg = f"must start with a letter or digit and use only letters, digits and _ . + -{got}"
        src = merged.positions.get(("name",))
        if src is not None and src.line is None and src.file != "--override":
            msg += " (the name defaults to the file name; set `name:` in the file)"
    elif typ == "string_pattern_mismatch":
        msg = f"must match the pattern {ctx.get('pattern')}{got}"
    elif typ == "string_too_long":
        msg = f"must be at most {ctx.get('max_length')} characters, got {len(value)}: {_show(value)}"
    elif typ in ("model_type", "model_attributes_type", "dict_type"):
        tags = _tags_at(loc, data)
        cls = _model_at(loc, data)
        if len(tags) > 1:
            what = f" with a `kind` ({', '.join(tags)})"
        else:
            what = f" of fields ({', '.join(sorted(cls.model_fields))})" if cls else ""
        msg = f"must be a mapping{what}{got}"
    else:
        text = err["msg"]
        text = text.replace("Input should be", "must be").replace("Input should", "must")
        msg = f"{text[0].lower()}{text[1:]}{got}"
    return _problem(merged, loc, msg, data)


_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}
_TYPES = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
}


def _literal_values(expected: str) -> list[str]:
    """``"'pre', 'post' or 'sandwich'"`` -> ``['pre', 'post', 'sandwich']``."""
    parts = expected.replace(" or ", ", ").split(", ")
    return [p.strip().strip("'") for p in parts if p.strip()]


def _did_you_mean(word: str, allowed: list[str]) -> str:
    close = [c for c in difflib.get_close_matches(word, allowed, n=2) if c != word][:1]
    return f"did you mean {close[0]!r}? " if close else ""


def _show(value: Any) -> str:
    """A bad value as the user wrote it (YAML spelling for booleans and null), shortened."""
    if value is True or value is False:
        return str(value).lower()
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -------------------------------------------------------- booleans read as numbers


def _bools_for_numbers(data: Any) -> list[tuple[Path_, str]]:
    """Pydantic reads ``true`` as 1 for an integer field; a spec that says ``layers: yes``
    (YAML 1.1 reads yes/no/on/off as booleans) is a mistake, so report it."""
    out: list[tuple[Path_, str]] = []
    _walk_bools(ModelSpec, data, (), out)
    return out


def _walk_bools(annotation: Any, value: Any, path: Path_, out: list[tuple[Path_, str]]) -> None:
    if isinstance(value, bool):
        want = _number_kind(annotation)
        if want:
            out.append((path, f"must be {want}, got {_show(value)}"))
        return
    if isinstance(value, list):
        if typing.get_origin(annotation) is list:
            for i, v in enumerate(value):
                _walk_bools(typing.get_args(annotation)[0], v, path + (i,), out)
        return
    if not isinstance(value, dict):
        return
    cls = _pick(annotation, value)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        for k, v in value.items():
            if k in cls.model_fields:
                _walk_bools(cls.model_fields[k].annotation, v, path + (k,), out)


def _number_kind(annotation: Any) -> str | None:
    """'an integer' / 'a number' if `annotation` takes numbers but not booleans, else None."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    options = [a for a in args if a is not type(None)] if args else [annotation]
    options = [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in options]
    if bool in options or not options:
        return None
    if all(o is int for o in options):
        return "an integer"
    if all(o in (int, float) for o in options):
        return "a number"
    return None


# ------------------------------------------------------------ walking the model tree


def _model_at(loc: Path_, data: Any) -> type[BaseModel] | None:
    """Walk the ModelSpec class tree along `loc` (tags included) to the model it points into."""
    cls: Any = ModelSpec
    cur = data
    for part in loc:
        if isinstance(part, int):
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
            cls = _pick(cls, cur)
            continue
        if isinstance(cls, type) and issubclass(cls, BaseModel) and part in cls.model_fields:
            cls = cls.model_fields[part].annotation
            cur = cur.get(part) if isinstance(cur, dict) else None
            cls = _pick(cls, cur)
        elif _is_label(part):
            continue
        else:
            cls = _pick(cls, {"kind": part})
    cls = _pick(cls, cur)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _pick(annotation: Any, value: Any) -> Any:
    """Unwrap Optional / list / Annotated / tagged unions to the model class `value` selects."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _pick(typing.get_args(annotation)[0], value)
    if origin is list:  # a whole list stays a list type; an element picks its own variant
        return annotation if isinstance(value, list) else _pick(typing.get_args(annotation)[0], value)
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
