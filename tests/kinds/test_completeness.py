"""Every variant of every spec union is a registered kind, and every kind a graph can contain
has every facet the pipeline asks of it — or refuses it on purpose, and says so."""

from __future__ import annotations

import copy
import typing

import pytest
from helpers import tiny
from pydantic import BaseModel

import plmgraph as pg
from plmgraph.kinds import KINDS, Kind, MissingFacet, NotCompiledYet, has
from plmgraph.spec import Merged, ModelSpec, validate, zoo_names

#: Facets every graph node's kind must answer (build and init: unless it has no module).
NODE_FACETS = ("params", "flops", "words", "aspects", "label", "explain")
TORCH_FACETS = ("build", "init")
#: Tagged classes that are parameters of one kind, not kinds: RoPE scaling is a field of
#: position/rope; sharing is how the graph builder assigns parameter groups.
NOT_KINDS = {"RopeScaling", "Sharing"}


def tagged_classes() -> dict[type[BaseModel], tuple[str, ...]]:
    """Every spec class reachable from ModelSpec that has a `kind: Literal[...]` tag."""
    seen: dict[type[BaseModel], tuple[str, ...]] = {}

    def walk(tp: object) -> None:
        for arg in typing.get_args(tp):
            walk(arg)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
            field = tp.model_fields.get("kind")
            seen[tp] = tuple(typing.get_args(field.annotation)) if field is not None else ()
            for f in tp.model_fields.values():
                walk(f.annotation)

    walk(ModelSpec)
    return {cls: tags for cls, tags in seen.items() if tags and cls.__name__ not in NOT_KINDS}


@pytest.mark.parametrize("cls", sorted(tagged_classes(), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_tagged_spec_class_is_a_registered_kind(cls):
    for tag in tagged_classes()[cls]:
        owners = [k for k in KINDS.values() if k.spec is cls and k.variant == tag]
        assert len(owners) == 1, f"{cls.__name__} kind {tag!r}: registered by {owners}"
        assert has(owners[0].name, "words"), f"{owners[0].name} has no words"
        for lang in ("en", "zh"):
            assert owners[0].explain(lang), f"{owners[0].name} has no {lang} explanation"


def node_kinds() -> dict[str, tuple[str, dict]]:
    """Every node kind in the zoo's graphs (and a few edits of them): kind -> (node id, data)."""
    out: dict[str, tuple[str, dict]] = {}
    specs = [pg.load_spec(n) for n in zoo_names()]
    specs += [pg.load_spec(tiny("gpt2"), e) for e in ("block.residual.kind=parallel", "block.placement=sandwich",
                                                      "position={kind: alibi}", "position={kind: sinusoidal}",
                                                      "block.attention.qk_norm=true")]
    data = copy.deepcopy(tiny("bert-base")._merged.data)
    data["heads"] = [{"kind": "token_classification", "labels": 3}, {"kind": "sequence_classification", "labels": 2}]
    data["objectives"] = [{"kind": "classification"}]
    specs.append(validate(Merged(data)))
    for spec in specs:
        g = pg.resolve(tiny(spec) if spec.sizes.hidden > 64 else spec)
        for n, d in g.nx.nodes(data=True):
            out.setdefault(d["kind"], (n, d))
    return out


NODES = node_kinds()


@pytest.mark.parametrize("name", sorted(NODES))
def test_every_node_kind_has_every_facet(name):
    node, d = NODES[name]
    k = KINDS[name]
    for facet in NODE_FACETS:
        assert has(name, facet), f"{name} has no {facet}"
    assert k.params(d["attrs"]) == d["params"] or d["group"] != node or d["tied_to"] or d["params"] == {}
    assert isinstance(k.flops(d["attrs"], d["params"], 16), int)
    assert isinstance(k.words(d["attrs"]), str)
    assert all(a.what and isinstance(a.text, str) for a in k.aspects(d["attrs"], d["role"]))
    assert all(isinstance(x, str) for x in k.model_inputs(d["attrs"]))
    title, detail = k.label(d["attrs"])
    assert isinstance(title, str) and isinstance(detail, str)
    if d["params"] or d["axis"] == "residual":  # it becomes a module: torch facets too
        for facet in TORCH_FACETS:
            assert has(name, facet), f"{name} has no {facet}"


def test_a_missing_facet_fails_loudly_naming_the_kind():
    class Bare(Kind):
        name = "norm/bare"

    with pytest.raises(MissingFacet, match=r"block kind 'norm/bare' has no 'flops' facet"):
        Bare().flops({}, {}, 1)
    with pytest.raises(MissingFacet, match=r"no block kind 'norm/nope' is registered; known: norm/layernorm"):
        pg.kinds.kind("norm/nope")


@pytest.mark.parametrize("name", sorted(n for n, k in KINDS.items() if k.refused))
def test_every_refusal_is_explicit_and_says_not_compiled_yet(name):
    k = KINDS[name]
    for facet, why in k.refused.items():
        err = k.missing(facet)
        assert isinstance(err, NotCompiledYet) and "not compiled yet" in str(err) and name in str(err), why
