"""The position kinds (plmgraph/kinds/position/): every facet answers on a resolved zoo graph's
node, and where a kind's node goes (embeddings, attention, nowhere) is the kind's to say."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile.init import InitRule
from plmgraph.compile.registry import Node
from plmgraph.kinds import KINDS, MissingFacet
from plmgraph.kinds.base import Aspect
from plmgraph.spec.blocks import INPUT_POSITIONS

#: kind -> (zoo spec, overrides) whose graph has a node of that kind
ZOO = {
    "position/learned": ("gpt2", ""),
    "position/sinusoidal": ("transformer-base", ""),
    "position/rope": ("llama2-7b", ""),
    "position/alibi": ("gpt2", "position.kind=alibi"),
    "position/t5_relative": ("t5-small", ""),
    "position/xl_relative": ("transformer-xl", ""),
    "position/glm_2d": ("glm", ""),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_every_facet(name):
    zoo, extra = ZOO[name]
    k = KINDS[name]
    assert k.spec is not None and k.adds_to_embeddings != k.feeds_attention
    g = pg.resolve(pg.load_spec(tiny(zoo), extra) if extra else tiny(zoo))
    nid = g.nodes(kind=name)[0]
    d = g.node(nid)
    assert nid.endswith(".embed.position" if k.adds_to_embeddings else ".position")
    assert k.params(d["attrs"]) == d["params"]
    assert k.flops(d["attrs"], d["params"], 8) == 0  # look-ups and element-wise work are free
    assert isinstance(k.words(d["attrs"]), str) and k.words(d["attrs"])
    aspects = k.aspects(d["attrs"], d["role"])
    assert all(isinstance(x, Aspect) for x in aspects) and aspects[0].what == "position"
    title, detail = k.label(d["attrs"])
    assert title and detail
    if k.feeds_attention:  # the edge into every attention layer says what the position does there
        assert k.edge_label and any(e["role"] == "position" for _, _, e in g.nx.out_edges(nid, data=True))
    module = k.build(Node(nid, name, d["attrs"], d["params"]))
    assert {n: tuple(p.shape) for n, p in module.named_parameters()} == {n: tuple(s) for n, s in d["params"].items()}
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
        rule = InitRule(module, std=0.02, resid_std=0.01, fan_in=False, hidden=64)
        k.init(module, rule.at(nid, d["attrs"], d["role"]))
    assert all((p != 7.0).all() for p in module.parameters())


def test_none_has_no_node():
    k = KINDS["position/none"]
    assert k.spec is not None and not k.adds_to_embeddings and not k.feeds_attention and k.words({}) == "none"
    g = pg.resolve(pg.load_spec(tiny("gpt2"), "position.kind=none"))
    assert not g.nodes(axis="position")
    with pytest.raises(MissingFacet, match="'position/none' has no 'build' facet"):
        k.build(None)


def test_input_positions_come_from_the_kinds():
    assert INPUT_POSITIONS == ("learned", "sinusoidal", "glm_2d")
    assert [n.split("/")[1] for n, k in KINDS.items() if n.startswith("position/")] == [
        "none", "learned", "sinusoidal", "rope", "alibi", "t5_relative", "xl_relative", "glm_2d", "disentangled"]
