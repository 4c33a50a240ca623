"""The pool and head kinds (plmgraph/kinds/pool/, plmgraph/kinds/head/): every facet answers on a
resolved zoo graph's node, and the spec's `Head` union is assembled from the head kinds in order."""

from __future__ import annotations

import copy
import typing

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile.init import InitRule
from plmgraph.compile.registry import Node
from plmgraph.kinds import KINDS, variants
from plmgraph.kinds.base import Aspect
from plmgraph.kinds.head.choice import ChoiceHead
from plmgraph.kinds.head.discriminator import ReplacedTokenHead
from plmgraph.kinds.head.span import SpanHead
from plmgraph.spec import Merged, validate
from plmgraph.spec.heads import HEAD_KINDS, ClassifierHead, LMHead, MLMHead, Pooler


def classifiers() -> pg.ModelSpec:
    data = copy.deepcopy(tiny("bert-base")._merged.data)
    data["heads"] = [{"kind": "token_classification", "labels": 3}, {"kind": "sequence_classification", "labels": 2}]
    data["objectives"] = [{"kind": "classification"}]
    return validate(Merged(data))


#: kind -> a spec whose graph has a node of that kind
ZOO = {
    "pool/cls": lambda: tiny("bert-base"),
    "pool/mean": lambda: pg.load_spec(tiny("bert-base"), "pooler={kind: mean, dense: true}"),
    "pool/last": lambda: pg.load_spec(tiny("bert-base"), "pooler={kind: last}"),
    "head/lm": lambda: tiny("gpt2"),  # tied
    "head/mlm": lambda: tiny("bert-base"),  # transform + norm, tied, bias
    "head/nsp": lambda: tiny("bert-base"),
    "head/sop": lambda: tiny("albert-base"),
    "head/sequence_classification": classifiers,
    "head/token_classification": classifiers,
    "head/image_classification": lambda: tiny("vit-base"),
}


@pytest.mark.parametrize("name", list(ZOO) + ["head/lm untied"])
def test_every_facet(name):
    spec = tiny("llama2-7b") if name == "head/lm untied" else ZOO[name]()
    name = name.split()[0]
    g = pg.resolve(spec)
    nid = g.nodes(kind=name)[0]
    d = g.node(nid)
    k, a = KINDS[name], d["attrs"]
    assert k.spec is not None and k.variant in typing.get_args(k.spec.model_fields["kind"].annotation)
    assert k.params(a) == d["params"]
    params = dict(d["params"])
    if d["tied_to"]:
        params["tied.weight"] = g.node(d["tied_to"])["params"]["weight"]
    assert isinstance(k.flops(a, params, 8), int) and (k.flops(a, params, 8) > 0 or not params)
    assert isinstance(k.words(a), str) and k.words(a)
    assert all(isinstance(x, Aspect) for x in k.aspects(a, d["role"]))
    title, detail = k.label(a)
    assert title and detail
    tied = None
    if d["tied_to"]:
        t = g.node(d["tied_to"])
        tied = KINDS[t["kind"]].build(Node(d["tied_to"], t["kind"], t["attrs"], t["params"]))
    module = k.build(Node(nid, name, {**a, "tied_module": tied}, d["params"]))
    assert {n: tuple(p.shape) for n, p in module.named_parameters()} == {n: tuple(s) for n, s in d["params"].items()}
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
        rule = InitRule(module, std=0.02, resid_std=0.01, fan_in=False, hidden=64)
        k.init(module, rule.at(nid, a, d["role"]))
    assert all((p != 7.0).all() for p in module.parameters())


def test_the_head_union_keeps_its_order():
    assert variants("head") == [LMHead, MLMHead, ClassifierHead, SpanHead, ChoiceHead, ReplacedTokenHead]
    assert variants("pool") == [Pooler]
    assert HEAD_KINDS == ("lm", "mlm", "nsp", "sop", "sequence_classification", "token_classification",
                          "image_classification", "question_answering", "multiple_choice", "replaced_token_detection")
