"""Fuzz the spec pipeline: a mutated zoo spec is either a valid architecture or a clean `SpecError`.

Each example takes a zoo spec (as written, with its `extends`, or fully merged), applies a
few mutations (delete a key, replace a value with a random scalar/list/mapping, rename a
key, change a `kind`), writes it as YAML and runs load -> extends -> validate -> resolve.
Anything but an `ArchGraph` or a `SpecError` whose problems each carry a message and a
file is a bug: a traceback the user would have seen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from plmgraph.graph import ArchGraph, resolve
from plmgraph.spec import SpecError, load_merged, load_spec, zoo_dir, zoo_names
from plmgraph.spec.load import load_file

pytest.importorskip("hypothesis", reason="the fuzz tests need the test extra: pip install -e '.[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ZOO = zoo_names()
KINDS = sorted({
    "layernorm", "rmsnorm", "none", "learned", "sinusoidal", "rope", "alibi", "t5_relative", "xl_relative",
    "glm_2d", "self", "two_stream", "segment_memory", "dense", "gated", "moe", "lm", "mlm", "nsp", "sop",
    "sequence_classification", "token_classification", "image_classification", "clm", "span_corruption",
    "denoising", "blank_infilling", "permutation", "classification", "full", "lora", "adapters", "prefix",
    "bitfit", "all", "groups", "parallel", "sequential", "cls", "mean", "last", "linear", "llama3",
})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 2, 3, 4, 6, 7, 8, 12, 64, -1, -3, 10**6]),
    st.integers(min_value=-(10**4), max_value=10**4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.1, 0.5, 0.99, 1.0, 1.5, 1e-12]),
    st.text(max_size=8),
    st.sampled_from(KINDS),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["kind", "eps", "heads", "layers"])), scalars,
                    max_size=3),
)


def _slots(data: Any, out: list[tuple[Any, Any]] | None = None) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in `data`, depth first."""
    out = [] if out is None else out
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        out.append((data, k))
        _slots(v, out)
    return out


def _mutate(data: dict[str, Any], draw: Any) -> None:
    slots = _slots(data)
    if not slots:
        return
    container, key = draw(st.sampled_from(slots))
    op = draw(st.sampled_from(["delete", "set", "rename", "kind"]))
    if op == "delete":
        del container[key]
    elif op == "set":
        container[key] = draw(values)
    elif op == "rename" and isinstance(container, dict):
        new = draw(st.one_of(st.text(min_size=1, max_size=8), st.just(str(key) + "_"), st.just(str(key)[:-1] or "x")))
        container[new] = container.pop(key)
    else:
        with_kind = [(c, k) for c, k in slots if isinstance(c[k], dict) and "kind" in c[k]]
        if with_kind:
            c, k = draw(st.sampled_from(with_kind))
            c[k]["kind"] = draw(st.one_of(st.sampled_from(KINDS), st.text(max_size=6)))


def _dump(data: Any) -> str:
    # safe_dump writes nan/inf as .nan/.inf, which the loader reads back as floats.
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ZOO), merged=st.booleans(), n=st.integers(1, 3), data=st.data())
def test_mutated_zoo_spec_is_valid_or_a_clean_spec_error(workdir, name, merged, n, data):
    spec_data = load_merged(name).data if merged else load_file(zoo_dir() / f"{name}.yaml").data
    for _ in range(n):
        _mutate(spec_data, data.draw)
    path = workdir / "mutant.yaml"
    path.write_text(_dump(spec_data), encoding="utf-8")
    try:
        spec = load_spec(path)
        graph = resolve(spec)
    except SpecError as e:
        assert e.problems
        for p in e.problems:
            assert p.message and p.file, repr(p)
            assert "Traceback" not in p.message
            assert p.line is None or p.line >= 1
        return
    assert isinstance(graph, ArchGraph)
    n_params = graph.num_params()
    assert isinstance(n_params, int) and n_params >= 0
    assert not (isinstance(n_params, float) and math.isnan(n_params))
