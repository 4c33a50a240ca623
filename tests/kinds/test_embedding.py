"""The input, embedding and embedding-sum kinds (plmgraph/kinds/input/, plmgraph/kinds/embedding/):
every facet answers on a resolved zoo graph's node; the graph-only kinds refuse to build, by name."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile.init import InitRule
from plmgraph.compile.registry import Node
from plmgraph.kinds import KINDS, MissingFacet
from plmgraph.kinds.base import Aspect

#: kind -> (zoo spec, overrides) whose graph has a node of that kind
ZOO = {
    "input/tokens": ("gpt2", ""),
    "input/pixels": ("vit-base", ""),
    "input/token_types": ("bert-base", ""),
    "op/sum": ("gpt2", ""),
    "embedding/token": ("transformer-base", ""),
    "embedding/segment": ("bert-base", ""),
    "embedding/task_type": ("bert-base", "embeddings.task_types=3"),
    "embedding/patches": ("vit-base", ""),
    "embedding/mask_token": ("xlnet-base", ""),
    "embedding/project": ("albert-base", ""),
}
GRAPH_ONLY = ("input/tokens", "input/pixels", "input/token_types", "op/sum")


def node_of(name: str) -> tuple[str, dict]:
    zoo, extra = ZOO[name]
    g = pg.resolve(pg.load_spec(tiny(zoo), extra) if extra else tiny(zoo))
    nid = g.nodes(kind=name)[0]
    return nid, g.node(nid)


@pytest.mark.parametrize("name", list(ZOO))
def test_every_facet(name):
    nid, d = node_of(name)
    k, a = KINDS[name], d["attrs"]
    assert k.spec is None  # `embeddings` is one spec class, not a tagged union
    assert k.params(a) == d["params"]
    assert isinstance(k.flops(a, d["params"], 8), int)
    assert isinstance(k.words(a), str) and k.words(a)
    assert all(isinstance(x, Aspect) for x in k.aspects(a, d["role"]))
    title, detail = k.label(a)
    assert isinstance(title, str) and title and isinstance(detail, str)
    if name in GRAPH_ONLY:
        assert d["params"] == {} and k.flops(a, d["params"], 8) == 0
        with pytest.raises(MissingFacet, match=f"'{name}' is graph-only"):
            k.build(Node(nid, name, a, d["params"]))
        k.init(None, None)  # no module: nothing to do
        return
    module = k.build(Node(nid, name, a, d["params"]))
    assert {n: tuple(p.shape) for n, p in module.named_parameters()} == {n: tuple(s) for n, s in d["params"].items()}
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
        rule = InitRule(module, std=0.02, resid_std=0.01, fan_in=False, hidden=64)
        k.init(module, rule.at(nid, a, d["role"]))
    assert all((p != 7.0).all() for p in module.parameters())


def test_inputs_label_themselves_with_their_argument_and_shape():
    _, d = node_of("input/pixels")
    assert KINDS["input/pixels"].label(d["attrs"]) == ("pixel_values", "B×3×32×32")
    _, d = node_of("input/tokens")
    assert KINDS["input/tokens"].label(d["attrs"]) == ("input_ids", "B×T")
