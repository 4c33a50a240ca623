"""The attention kinds (plmgraph/kinds/attention/) define every facet: each is called on the
nodes of a resolved tiny zoo graph."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile.init import InitRule
from plmgraph.compile.registry import Node
from plmgraph.kinds import KINDS, has
from plmgraph.kinds.base import Aspect

CASES = [  # (kind, zoo spec, override)
    ("attention/self", "llama2-7b", ""),
    ("attention/self", "gpt2", "block.attention.qk_norm=true"),
    ("attention/cross", "t5-small", ""),
    ("attention/two_stream", "xlnet-base", ""),
    ("attention/segment_memory", "transformer-xl", ""),
]
FACETS = ("params", "flops", "words", "aspects", "label", "build", "init", "explain")


@pytest.mark.parametrize(("name", "zoo", "override"), CASES)
def test_every_facet_on_a_zoo_node(name: str, zoo: str, override: str) -> None:
    kind = KINDS[name]
    assert all(has(name, f) for f in FACETS)
    assert (kind.spec is None) == (name == "attention/cross")
    g = pg.resolve(pg.load_spec(tiny(zoo), override) if override else tiny(zoo))
    nid = g.nodes(kind=name)[0]
    d = g.node(nid)
    a = d["attrs"]
    params = kind.params(a)
    assert params == d["params"] and params
    assert kind.flops(a, params, 16) > 4 * a["heads"] * a["head_dim"] * 16
    assert kind.kv_elems_per_token(a) in (0, 2 * a["kv_heads"] * a["head_dim"])
    assert kind.words(a) and isinstance(kind.words(a), str)
    assert kind.explain("en") and kind.explain("zh")
    assert all(isinstance(x, Aspect) for x in kind.aspects(a, d["role"]))
    title, detail = kind.label(a)
    assert title and f"{a['heads']} heads" in detail
    module = kind.build(Node(nid, name, a, params))
    assert {k: tuple(p.shape) for k, p in module.named_parameters()} == params
    rule = InitRule(module, std=0.02, resid_std=0.01, fan_in=False, hidden=a["hidden"]).at(nid, a, d["role"])
    with torch.no_grad():
        kind.init(module, rule)
    out = module.out.weight
    assert out.std().item() == pytest.approx(0.01, rel=0.2)  # out writes into the residual stream
    assert all(torch.isfinite(p).all() for p in module.parameters())
    if hasattr(module, "update_weights"):
        assert sum(w.numel() for w in module.update_weights()) > out.numel()


def test_kv_cache_counts_self_and_segment_memory_only() -> None:
    for name, expect in (("attention/self", True), ("attention/segment_memory", True),
                         ("attention/cross", False), ("attention/two_stream", False)):
        a = {"kv_heads": 2, "head_dim": 8, "heads": 4}
        assert KINDS[name].kv_elems_per_token(a) == (32 if expect else 0), name


def test_fan_in_scales_unscaled_queries() -> None:
    g = pg.resolve(tiny("t5-small"))
    nid = g.nodes(kind="attention/self")[0]
    a = g.node(nid)["attrs"]
    assert a["scale"] == 1.0
    module = KINDS["attention/self"].build(Node(nid, "attention/self", a, g.node(nid)["params"]))
    rule = InitRule(module, std=1.0, resid_std=1.0, fan_in=True, hidden=a["hidden"]).at(nid, a, "attn")
    with torch.no_grad():
        KINDS["attention/self"].init(module, rule)
    q = module.qkv.weight[: a["heads"] * a["head_dim"]]
    assert q.std().item() == pytest.approx(1 / math.sqrt(a["hidden"] * a["head_dim"]), rel=0.2)
