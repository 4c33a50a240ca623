"""A Hugging Face config as a spec file to edit (``plmgraph spec-from-hf``): the fields the importer's
tables give, written as a change to the nearest zoo spec where one fits.

The nearest zoo spec is one of the same family counted as the same Hugging Face class (its ``source``
names it: ``HF Qwen2ForCausalLM``) if there is one, else any of the family, whose change is smallest;
a change is kept only if the written file validates to exactly the imported spec (`_same`: every field
but the name and source), otherwise the next candidate is tried, and with none the file is the whole
spec.  Torch-free itself (the importer's tables are imported through plmgraph.compile, which loads torch).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from ...spec import ModelSpec, validate
from ...spec.extends import Merged, load_merged, zoo_names
from ...spec.model import deep_merge
from . import config_to_dict, read_config_file, spec_name_of

_SKIP = {"name", "source", "extends", "plmgraph"}


def _delta(base: Any, want: Any, full: Any) -> Any:
    """What to merge onto `base` so that the merge reads `want` (a raw spec mapping); `full` is the
    validated `want` (its values for keys `base` sets and `want` leaves to the default)."""
    if not (isinstance(base, dict) and isinstance(want, dict)) or base.get("kind", want.get("kind")) != want.get(
            "kind", base.get("kind")):
        return copy.deepcopy(want)
    out: dict[str, Any] = {}
    for k, v in want.items():
        if k not in base:
            out[k] = copy.deepcopy(v)
        elif base[k] != v:
            sub = full.get(k) if isinstance(full, dict) else None
            out[k] = _delta(base[k], v, sub)
    for k in base:
        if k not in want and k not in _SKIP:
            have = full.get(k) if isinstance(full, dict) else None
            if have != base[k]:
                out[k] = copy.deepcopy(have)
    return out


def base_of(zoo: str) -> dict[str, Any]:
    return load_merged(zoo).data


def _leaves(d: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(d, dict) and d:
        return [p for k, v in d.items() for p in _leaves(v, (*path, k))]
    return [path]


def _without(d: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    """`d` without the leaf at `path`, and without the mappings that leaves empty."""
    out = copy.deepcopy(d)
    chain = [out]
    for k in path[:-1]:
        chain.append(chain[-1][k])
    del chain[-1][path[-1]]
    for parent, k in zip(reversed(chain[:-1]), reversed(path[:-1]), strict=True):
        if parent[k] == {}:
            del parent[k]
    return out


def _prune(base: dict[str, Any], d: dict[str, Any], spec: ModelSpec, config: Path) -> dict[str, Any]:
    """`d` without every leaf the zoo spec's value (or the default) already gives: each is dropped when
    the file still validates to exactly `spec`."""
    for path in _leaves(d):
        if path[0] in ("name", "source") or not path:
            continue
        try:
            trial = _without(d, path)
        except (KeyError, TypeError):
            continue
        try:
            ok = _same(validate(Merged(deep_merge(base, trial), file=str(config))), spec)
        except Exception:  # noqa: BLE001
            ok = False
        if ok:
            d = trial
    return d


def _size(d: Any) -> int:
    if isinstance(d, dict):
        return sum(_size(v) for v in d.values()) or 1
    if isinstance(d, list):
        return sum(_size(v) for v in d) or 1
    return 1


def _same(a: ModelSpec, b: ModelSpec) -> bool:
    return a.model_dump(mode="json", exclude=_SKIP) == b.model_dump(mode="json", exclude=_SKIP)


def spec_file(config: Path) -> tuple[str, ModelSpec, str | None]:
    """The YAML text of the spec `config` (a ``config.json``) converts to, the validated spec, and the zoo
    spec the text extends (None: the whole spec is written).

    Raises:
        ConversionError: the config has no spec equivalent (see `config_to_spec`).
    """
    raw = config_to_dict(read_config_file(config), spec_name_of(config.parent))
    spec = validate(Merged(copy.deepcopy(raw), file=str(config)))
    full = spec.model_dump(mode="json")
    # HF's class prefix ("Qwen2" of Qwen2ForCausalLM): a zoo spec counted as that class is preferred
    arch = raw["source"].split()[-1]
    prefix = re.sub(r"(LMHeadModel|Model)$", "", arch.split("For")[0])
    best: tuple[tuple[bool, int], str, dict[str, Any]] | None = None
    for zoo in zoo_names():
        base = base_of(zoo)
        if base.get("family") != raw["family"]:
            continue
        d = _delta({k: v for k, v in base.items() if k != "extends"}, raw, full)
        d = {"name": raw["name"], "source": raw["source"], **{k: v for k, v in d.items() if k not in _SKIP}}
        key = (f"HF {prefix}" not in str(base.get("source", "")), _size(d))
        if best is not None and key >= best[0]:
            continue
        try:
            ok = _same(validate(Merged(deep_merge(base, d), file=str(config))), spec)
        except Exception:  # noqa: BLE001  (a change that does not validate is not a candidate)
            ok = False
        if ok:
            best = (key, zoo, d)
    head = f"# plmgraph spec of the Hugging Face config {config} ({raw['source']}), written by spec-from-hf\n"
    if best is None or best[0][1] >= _size(raw):
        body = {k: v for k, v in raw.items() if k != "extends"}
        return head + yaml.safe_dump(body, sort_keys=False), spec, None
    _, zoo, d = best
    d = _prune(base_of(zoo), d, spec, config)
    body = {"plmgraph": 1, "name": d.pop("name"), "extends": zoo, "source": d.pop("source"), **d}
    return head + f"# extends the nearest zoo spec, {zoo}: only what differs from it is written\n" + \
        yaml.safe_dump(body, sort_keys=False), spec, zoo
