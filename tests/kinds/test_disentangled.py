"""DeBERTa's kinds (attention/disentangled, position/disentangled) and `relative_position`: what the
validator refuses, by field and with the allowed values; and every facet on a resolved node."""

from __future__ import annotations

import copy

import pytest
import torch

import plmgraph as pg
from plmgraph.compile.init import InitRule
from plmgraph.kinds import KINDS
from plmgraph.spec import SpecError, validate
from plmgraph.spec.extends import Merged

BASE = {"plmgraph": 1, "name": "d", "family": "encoder",
        "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2, "max_positions": 32},
        "position": {"kind": "disentangled", "buckets": 8, "max_distance": 16, "norm": {"kind": "layernorm"}},
        "block": {"placement": "post", "attention": {"kind": "disentangled"}}}


def spec(**edits):  # noqa: ANN003, ANN201
    d = copy.deepcopy(BASE)
    for path, value in edits.items():
        *parents, last = path.split("__")
        cur = d
        for p in parents:
            cur = cur.setdefault(p, {})
        if value is None:
            cur.pop(last, None)
        else:
            cur[last] = value
    return validate(Merged(d, file="d.yaml"))


@pytest.mark.parametrize(("edits", "field", "match"), [
    ({"position": {"kind": "learned"}}, "block.attention.kind",
     "disentangled attention reads the shared relative table of position kind 'disentangled'.*not 'learned'"),
    ({"block__attention": {"kind": "self"}}, "position.kind",
     "disentangled positions .* need attention kind 'disentangled', not 'self'"),
    ({"block__attention__scale": 0.5}, "block.attention.scale", r"1/sqrt\(head_dim \* \(1 \+ c2p \+ p2c\)\)"),
    ({"block__attention__mask": "causal"}, "block.attention.mask", "must be 'bidirectional', not 'causal'"),
    ({"block__attention__window": 4}, "block.attention.window", "no sliding window"),
    ({"block__attention__kv_heads": 1}, "block.attention.kv_heads", "kv_heads must be heads"),
    ({"block__attention__qk_norm": True}, "block.attention.qk_norm", "no q/k norm"),
    ({"block__attention__c2p": False, "block__attention__p2c": False}, "block.attention.c2p",
     "without c2p and p2c"),
    ({"position__buckets": 8, "position__max_distance": 5}, "position", r"max_distance \(5\) must exceed"),
    ({"relative_position": {"kind": "t5_relative"}}, "relative_position",
     "goes with an absolute position added to the embeddings"),
    ({"position": {"kind": "learned"}, "relative_position": {"kind": "disentangled"},
      "block__attention": {"kind": "self"}}, "relative_position.kind", "need attention kind 'disentangled'"),
])
def test_refused_with_the_field_and_why(edits, field, match):
    with pytest.raises(SpecError, match=match) as e:
        spec(**edits)
    assert any(field in p.field for p in e.value.problems), [p.field for p in e.value.problems]


@pytest.mark.parametrize("layout", ["position", "relative_position"])
def test_every_facet_on_the_nodes(layout):
    s = spec() if layout == "position" else spec(
        position={"kind": "learned"}, relative_position={"kind": "disentangled", "buckets": None, "max_distance": 4},
        block__attention={"kind": "disentangled", "share_keys": False, "c2p": False})
    g = pg.resolve(s)
    model = pg.build(g, seed=0)
    rule = InitRule(model, std=0.02, resid_std=0.02, fan_in=False, hidden=16)
    for name in ("attention/disentangled", "position/disentangled"):
        kind = KINDS[name]
        nid = g.nodes(kind=name)[0]
        d = g.node(nid)
        a = d["attrs"]
        params = kind.params(a)
        assert params == d["params"] and params
        module = model.get_submodule(nid)
        assert {k: tuple(v.shape) for k, v in module.named_parameters()} == params
        assert kind.words(a) and kind.label(a)[0] and kind.explain("en") and kind.explain("zh")
        assert all(x.what and x.text for x in kind.aspects(a, d["role"]))
        kind.init(module, rule.at(nid, a, d["role"]))
        assert d["role"] == ("attn" if name.startswith("attention") else layout)
    a = g.node("encoder.layers.0.attn")["attrs"]
    # per token: the projections, 4·n·d·T for the content scores and weighted sum, 2·n·d·T per relative term
    nd, T = 16, 10
    want = 2 * (3 * nd * 16 + 16 * nd) + 4 * nd * T + 2 * nd * T * (int(a["c2p"]) + int(a["p2c"]))
    assert KINDS["attention/disentangled"].flops(a, g.node("encoder.layers.0.attn")["params"], T) == want
    # the table: 2 * buckets rows (2 * max_distance without buckets); the index is HF's, clamped to it
    span = 8 if layout == "position" else 4
    table, index = model.encoder.position(torch.zeros(1, 40, dtype=torch.long))
    assert table.shape == (2 * span, 16) and index.shape == (40, 40)
    build_relative_position = pytest.importorskip(  # the reference: HF's own index (a test extra)
        "transformers.models.deberta_v2.modeling_deberta_v2").build_relative_position

    x = torch.zeros(1, 40, 1)
    rel = build_relative_position(x, x, bucket_size=8 if layout == "position" else -1,
                                  max_position=16 if layout == "position" else 4)[0]
    assert torch.equal(index, torch.clamp(rel + span, 0, 2 * span - 1))


def test_v3_buckets_match_hf_at_length():
    """DeBERTa-v3's 256 buckets over 512 distances, 700 tokens: every log bucket HF's (fp32, same op order)."""
    build_relative_position = pytest.importorskip(  # the reference: HF's own index (a test extra)
        "transformers.models.deberta_v2.modeling_deberta_v2").build_relative_position

    s = spec(position={"kind": "disentangled", "buckets": 256, "max_distance": 512}, sizes__max_positions=None)
    table, index = pg.build(s, seed=0).encoder.position(
        torch.zeros(1, 700, dtype=torch.long))
    x = torch.zeros(1, 700, 1)
    rel = build_relative_position(x, x, bucket_size=256, max_position=512)[0]
    assert torch.equal(index, torch.clamp(rel + 256, 0, 511))
    assert len(index.unique()) > 300  # the log buckets are reached
