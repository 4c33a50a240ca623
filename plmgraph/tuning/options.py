"""``--tuning KIND:key=value,...`` -> the spec's ``tuning`` value (torch-free).

    lora:rank=8,alpha=16,targets=attn.qkv+attn.out     lists are joined with '+'
    bitfit                                              a kind without options
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from . import TuningError


def parse_options(text: str) -> dict[str, Any]:
    """``"lora:rank=8,targets=a+b"`` -> ``{"kind": "lora", "rank": 8, "targets": ["a", "b"]}``.

    Raises:
        TuningError: a malformed option (no ``=``, an empty kind, a key given twice).
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if not kind:
        raise TuningError(f"--tuning {text!r}: give a tuning kind first, e.g. lora:rank=8,alpha=16")
    out: dict[str, Any] = {"kind": kind}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise TuningError(f"--tuning {text!r}: {part!r} is not key=value (e.g. rank=8)")
        if key in out:
            raise TuningError(f"--tuning {text!r}: {key!r} is given twice")
        out[key] = [_scalar(v) for v in value.split("+")] if "+" in value or key == "targets" else _scalar(value)
    return out


def _scalar(v: str) -> Any:
    v = v.strip()
    try:
        x = yaml.safe_load(v)
    except yaml.YAMLError:
        return v
    return x if isinstance(x, int | float | bool) and not isinstance(x, str) else v


def apply_options(spec: Any, text: str) -> Any:
    """A copy of `spec` whose ``tuning`` is the one `text` gives.

    A spec that already names a tuning other than ``full`` must agree with it: the same kind, and
    every option the spec sets explicitly either left out of `text` or equal (a ``--tuning`` that
    contradicts the spec is refused, not silently preferred).

    Raises:
        TuningError: unknown kind or option, a bad value, or a contradiction with the spec.
    """
    opts = parse_options(text)
    current = spec.tuning
    if current.kind != "full":
        if current.kind != opts["kind"]:
            raise TuningError(f"--tuning {opts['kind']!r} contradicts the spec's tuning kind {current.kind!r}; "
                              "drop --tuning or change the spec's `tuning`")
        given = current.model_dump(exclude_unset=True, exclude={"kind"})
        clash = [f"{k}={_show(opts[k])} (spec: {_show(given[k])})" for k in given
                 if k in opts and _norm(opts[k]) != _norm(given[k])]
        if clash:
            raise TuningError(f"--tuning contradicts the spec's tuning: {', '.join(clash)}; drop the option or "
                              "change the spec")
        opts = {**given, **opts}
    data = spec.model_dump(mode="json", exclude_unset=True)
    data["tuning"] = opts
    from ..spec.model import CrossFieldError

    try:
        return type(spec).model_validate(data)
    except CrossFieldError as e:  # the tuning does not fit the model (a tuning kind's `check`)
        raise TuningError(f"--tuning {text!r}: " + "; ".join(
            f"{'.'.join(map(str, path))}: {msg}" for path, msg in e.errors)) from None
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = [str(x) for x in err["loc"]]
            if loc[:1] != ["tuning"]:
                continue
            where = ".".join(loc[2:] if len(loc) > 1 and loc[1] == opts["kind"] else loc[1:]) or "kind"
            problems.append(f"{where}: {err['msg']}")
        raise TuningError(f"--tuning {text!r}: " + "; ".join(problems or [str(e).splitlines()[0]])
                          + _allowed(opts["kind"])) from None


def _allowed(kind: str) -> str:
    from ..kinds import KINDS

    names = [k.split("/")[1] for k in KINDS if k.startswith("tuning/")]
    if f"tuning/{kind}" not in KINDS:
        return f" (tuning kinds: {', '.join(names)})"
    spec = KINDS[f"tuning/{kind}"].spec
    fields = [f for f in spec.model_fields if f != "kind"] if spec is not None else []
    return f" ({kind} options: {', '.join(fields) or 'none'})"


def _norm(v: Any) -> Any:
    return [str(x) for x in v] if isinstance(v, list) else v


def _show(v: Any) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else str(v)


__all__ = ["apply_options", "parse_options"]
