"""A stack's layer pattern (per-layer windows and rotary bases, cycled over the layers) and soft-capping
(issue 11), outside the HF parity tests (tests/parity/test_gemma_patterns.py): what the validator refuses,
the graph's per-layer nodes, the compiled module against single-setting models with the same weights, a
hand-written reference of capped attention, the diff / diagram / show words, eject's refusal, the ladder
side network, and ONNX export (plain graph, verified in ONNX Runtime)."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.kinds import NotCompiledYet
from plmgraph.spec import SpecError, validate
from plmgraph.spec.extends import Merged

BASE = dict(plmgraph=1, name="p", family="decoder",
            sizes=dict(vocab=97, hidden=32, layers=4, heads=4, ffn=64, max_positions=64),
            embeddings=dict(scale=True), position=dict(kind="rope"),
            block=dict(placement="sandwich", norm=dict(kind="rmsnorm", offset=1.0),
                       attention=dict(kind="self", mask="causal", kv_heads=2, qkv_bias=False, out_bias=False),
                       mlp=dict(kind="gated", activation="gelu_tanh", bias=False)),
            decoder=dict(pattern=[dict(window=3), dict()]), heads=[dict(kind="lm")])


def spec(data=None, **edits):  # noqa: ANN001, ANN201
    d = copy.deepcopy(BASE if data is None else data)
    for path, v in edits.items():
        cur = d
        *parts, last = path.split("__")
        for p in parts:
            cur = cur.setdefault(p, {})
        if v is None:
            cur.pop(last, None)
        else:
            cur[last] = v
    return validate(Merged(d, file="p.yaml"))


def ids(t: int = 9, b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 97, (b, t), generator=torch.Generator().manual_seed(seed))


def same_weights(a, b) -> None:  # noqa: ANN001
    b.load_state_dict(a.state_dict())


# ------------------------------------------------------------------ validator


@pytest.mark.parametrize("edits, field, match", [
    (dict(block__attention__window=4), "decoder.block.attention.window", "each entry sets its layers' window"),
    (dict(decoder__pattern=[{}] * 5), "decoder.pattern", "5 entries for 4 layers"),
    (dict(position={"kind": "alibi"}, decoder__pattern=[{"rope": {"theta": 10.0}}]), "decoder.pattern[0].rope",
     "needs position kind 'rope', not 'alibi'"),
    (dict(decoder__pattern=[{"rope": {"theta": 10.0, "scaling": {"kind": "dynamic", "factor": 2.0}}}]),
     "decoder.pattern[0].rope.scaling.kind", "dynamic rope scaling per layer is not supported"),
    (dict(decoder__pattern=[{"window": 0}]), "decoder.pattern[0].window", "greater than 0"),
    (dict(decoder__pattern=[]), "decoder.pattern", "at least 1"),
    (dict(block__attention__softcap=-1.0), "block.attention.softcap", "greater than 0"),
])
def test_what_the_validator_refuses(edits, field, match):
    with pytest.raises(SpecError, match=match) as info:
        spec(**edits)
    assert any(p.field == field for p in info.value.problems), [p.field for p in info.value.problems]


def test_a_pattern_needs_self_attention():
    d = dict(plmgraph=1, name="x", family="decoder", sizes=dict(vocab=50, hidden=16, layers=2, heads=2),
             position={"kind": "xl_relative"}, block={"attention": {"kind": "segment_memory", "mask": "causal"}},
             decoder={"pattern": [{"window": 2}, {}]})
    with pytest.raises(SpecError, match="segment_memory attention has no per-layer window"):
        validate(Merged(d, file="x.yaml"))


# ------------------------------------------------------------------ graph


def test_graph_carries_each_layers_window_and_position():
    s = spec(decoder__pattern=[{"window": 3, "rope": {"theta": 100.0}}, {"window": 5}, {}])
    g = pg.resolve(s)
    windows = [g.node(f"decoder.layers.{i}.attn")["attrs"]["window"] for i in range(4)]
    assert windows == [3, 5, None, 3]
    fed = [[u for u, v, e in g.edges() if v == f"decoder.layers.{i}.attn" and e["role"] == "position"]
           for i in range(4)]
    assert fed == [["decoder.positions.0"], ["decoder.position"], ["decoder.position"], ["decoder.positions.0"]]
    assert g.node("decoder.positions.0")["attrs"]["theta"] == 100.0
    assert g.num_params() == pg.resolve(spec(decoder__pattern=None)).num_params()  # no weights of its own


# ------------------------------------------------------------------ compiled module


def test_one_entry_pattern_is_the_block_window_and_an_equal_base_is_no_override():
    a = pg.build(spec(decoder__pattern=[{"window": 3}]), seed=0).eval()
    b = pg.build(spec(decoder__pattern=None, block__attention__window=3), seed=0).eval()
    c = pg.build(spec(decoder__pattern=[{"window": 3, "rope": {"theta": 10000.0}}]), seed=0).eval()
    same_weights(a, b)
    same_weights(a, c)
    with torch.no_grad():
        torch.testing.assert_close(a(ids()).logits, b(ids()).logits)
        torch.testing.assert_close(a(ids()).logits, c(ids()).logits)


def test_each_layer_runs_its_own_window_and_base():
    """The pattern model equals, layer by layer, a model whose every layer has that layer's setting: the
    output of layer i in the pattern model is layer i of the model built with pattern[i]'s window/base for
    all layers, fed the same input."""
    entries = [{"window": 2, "rope": {"theta": 50.0}}, {}]
    m = pg.build(spec(decoder__pattern=entries), seed=0).eval()
    uniform = [pg.build(spec(decoder__pattern=[e]), seed=0).eval() for e in entries]
    for u in uniform:
        same_weights(m, u)
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []

    def record(mod, args, out) -> None:  # noqa: ANN001
        inputs.append(args[0])
        outputs.append(out[0])

    for block in m.decoder.layers.values():
        block.register_forward_hook(record)
    x = ids()
    T = x.shape[1]
    with torch.no_grad():
        m(x)
        for i in range(4):  # layer i of the uniform model for pattern[i % 2], on the pattern model's stream
            u = uniform[i % 2].decoder
            mask, causal = u.self_mask(inputs[i], T, 0, None, False)
            pos = torch.arange(T)[None]
            rotary = u.positions[u.layer_positions[i]](pos) if u.layer_positions is not None else u.position(pos)
            y, _ = u.layers[str(i)](inputs[i], mask, causal, rotary, None, None, None)
            torch.testing.assert_close(y, outputs[i])
        # and the two settings really differ on this input (else the check above could not fail)
        assert not torch.allclose(uniform[0](x).logits, uniform[1](x).logits)


def test_capped_attention_against_a_hand_written_reference():
    m = pg.build(spec(decoder__pattern=None, block__attention__softcap=2.0,
                      heads=[{"kind": "lm", "softcap": 1.5}]), seed=0).eval()
    attn = m.decoder.layers["0"].attn
    B, T, n, kv, d = 2, 6, 4, 2, 8
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(B, h, T, d, generator=g) * 3 for h in (n, kv, kv))
    from plmgraph.compile.attention import attend

    got = attend(q, k, v, None, True, None, 0.0, 2.0)
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    s = (q @ kk.transpose(-1, -2)) / math.sqrt(d)
    s = 2.0 * torch.tanh(s / 2.0)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(got, torch.softmax(s, -1) @ vv)
    assert attn.softcap == 2.0
    with torch.no_grad():
        h = m(ids()).last_hidden_state
        z = h @ m.embed.token.weight.T
        torch.testing.assert_close(m(ids()).logits, 1.5 * torch.tanh(z / 1.5))
        assert m(ids()).logits.abs().max() < 1.5


def test_kv_cache_steps_equal_the_full_forward_with_a_pattern_and_caps():
    m = pg.build(spec(decoder__pattern=[{"window": 2, "rope": {"theta": 30.0}}, {"window": 4}, {}],
                      block__attention__softcap=3.0), seed=0).eval()
    x = ids(10)
    with torch.no_grad():
        full = m(x).logits
        out = m(x[:, :6], use_cache=True)
        past, steps = out.past_key_values, [out.logits]
        for t in range(6, 10):
            out = m(x[:, t:t + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full)


# ------------------------------------------------------------------ words, diagram, show


def test_diff_show_and_diagram_say_the_pattern_and_caps(tmp_path):
    a = spec(decoder__pattern=None)
    b = spec(block__attention__softcap=50.0, heads=[{"kind": "lm", "softcap": 30.0}])
    lines = pg.diff(a, b).lines()
    text = "\n".join(lines)
    assert "layer pattern: none → window 3 / global, cycled" in text
    assert "sliding window: none → 3 tokens" in text and "layer 0" in text and "layer 2" in text
    assert "attention soft-cap: none → 50·tanh(s/50)" in text and "LM head soft-cap: none → 30·tanh(z/30)" in text
    pg.draw(b, tmp_path / "p.dot")
    dot = (tmp_path / "p.dot").read_text()
    assert "pattern: window 3 / global, cycled" in dot and "soft-cap 50" in dot and "soft-cap 30" in dot


def test_eject_refuses_a_pattern_and_caps_by_name():
    with pytest.raises(NotCompiledYet, match=re.escape("the decoder's per-layer pattern")):
        pg.eject(spec())
    with pytest.raises(NotCompiledYet, match=r"decoder.layers.0.attn soft-caps its scores \(softcap 5\)"):
        pg.eject(spec(decoder__pattern=None, block__attention__softcap=5.0))
    with pytest.raises(NotCompiledYet, match=r"heads.lm soft-caps its logits \(softcap 2\)"):
        pg.eject(spec(decoder__pattern=None, heads=[{"kind": "lm", "softcap": 2.0}]))


# ------------------------------------------------------------------ ladder, ONNX, zoo


def test_ladder_side_layers_follow_their_backbone_layers_pattern():
    """The side network's layer i reads backbone layer i's mask and its own pattern's rotary base."""
    s = spec(decoder__pattern=[{"window": 2, "rope": {"theta": 40.0}}, {}], tuning={"kind": "ladder", "reduction": 2})
    m = pg.build(s, seed=0).eval()
    got: list[tuple] = []
    for key, block in m.ladder.layers.items():
        block.register_forward_pre_hook(lambda mod, args, key=key: got.append((key, args[1], args[3])))
    want: list[tuple] = []
    for key, block in m.decoder.layers.items():
        block.register_forward_pre_hook(lambda mod, args, key=key: want.append((key, args[1])))
    x = ids()
    with torch.no_grad():
        m(x)
    assert [k for k, *_ in got] == [k for k, _ in want] == ["0", "1", "2", "3"]
    for (_, side_mask, _rot), (_, mask) in zip(got, want, strict=True):
        assert (side_mask is None) == (mask is None) and (mask is None or torch.equal(side_mask, mask))
    from plmgraph.kinds.tuning.ladder import side_spec_data

    side = pg.resolve(validate(Merged(side_spec_data(m.spec, 2), file="side")))
    assert side.node("decoder.positions.0")["attrs"]["theta"] == 40.0
    cos0, cos1 = got[0][2][0], got[1][2][0]
    assert not torch.allclose(cos0, cos1)  # layer 0 rotates by its own base


@pytest.mark.parametrize("kv_cache", [False, True])
def test_onnx_export_keeps_a_pattern_plain_and_verifies(tmp_path, kv_cache):
    from plmgraph.exporters import onnx_fuse

    for name, s in {"caps": spec(block__attention__softcap=5.0, heads=[{"kind": "lm", "softcap": 3.0}]),
                    "local-rope": spec(decoder__pattern=[{"window": 3, "rope": {"theta": 100.0}}, {}],
                                       block__attention__qk_norm=True)}.items():
        s = spec(s.model_dump(mode="json", exclude_unset=True), block__attention__head_dim=16)
        m = pg.build(s, seed=0).eval()
        plan = onnx_fuse.fusion_plan(m)
        assert all(f.op is None for f in plan)
        assert all(("soft-capped" if name == "caps" else "layer pattern") in f.why for f in plan), plan
        assert pg.export_onnx(m, tmp_path / f"{name}.onnx", kv_cache=kv_cache, verify=True).exists()


def test_gemma2_zoo_spec_builds_on_meta_and_tiny():
    m = pg.build("gemma2-9b", device="meta")
    assert m.decoder.windows == [4096, None] * 21 and m.heads["lm"].softcap == 30.0
    t = pg.build(tiny("gemma2-9b"), seed=0).eval()
    with torch.no_grad():
        assert torch.isfinite(t(ids()).logits).all()


# ------------------------------------------------------------------ ModernBERT's first layer, bias-free transform


def test_first_layer_without_attention_norm():
    enc = dict(plmgraph=1, name="mb", family="encoder", sizes=dict(vocab=97, hidden=32, layers=3, heads=4),
               embeddings=dict(norm=True), block=dict(placement="pre", attention=dict(kind="self")),
               encoder=dict(first_attn_norm=False),
               heads=[dict(kind="mlm", transform=dict(activation="gelu", bias=False))])
    s = validate(Merged(copy.deepcopy(enc), file="mb.yaml"))
    g = pg.resolve(s)
    assert "encoder.layers.0.attn_norm" not in g and "encoder.layers.1.attn_norm" in g
    assert "heads.mlm" in g and "transform.bias" not in g.node("heads.mlm")["params"]
    m = pg.build(s, seed=0).eval()
    assert not hasattr(m.encoder.layers["0"], "attn_norm") and m.heads["mlm"].transform.bias is None
    # layer 0 is x + attn(x): equal to a layer whose attention norm is the identity
    x = torch.randn(2, 5, 32)
    blk = m.encoder.layers["0"]
    with torch.no_grad():
        want = x + blk.attn(x)[0]
        want = want + blk.mlp(blk.mlp_norm(want))
        got, _ = blk(x, None, False, None, None, None, None)
    torch.testing.assert_close(got, want)
    with pytest.raises(NotCompiledYet, match="layer 0 without an attention norm"):
        pg.eject(s)
    post = copy.deepcopy(enc)
    post["block"]["placement"] = "post"
    with pytest.raises(SpecError, match="needs placement 'pre'") as info:
        validate(Merged(post, file="mb.yaml"))
    assert [p.field for p in info.value.problems] == ["encoder.first_attn_norm"]


def test_pooler_norm_and_bias_belong_to_its_dense_layer():
    enc = dict(plmgraph=1, name="mb", family="encoder", sizes=dict(vocab=97, hidden=32, layers=2, heads=4),
               block=dict(attention=dict(kind="self")), heads=[dict(kind="sequence_classification", labels=3)],
               pooler=dict(kind="mean", dense=True, activation="gelu", norm=True, bias=False))
    s = validate(Merged(copy.deepcopy(enc), file="mb.yaml"))
    assert set(pg.resolve(s).node("pooler")["params"]) == {"dense.weight", "norm.weight", "norm.bias"}
    m = pg.build(s, seed=0).eval()
    h = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    p = m.pooler
    with torch.no_grad():
        mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        want = torch.nn.functional.layer_norm(torch.nn.functional.gelu(mean @ p.dense.weight.T), (32,),
                                              p.norm.weight, p.norm.bias, p.norm.eps)
        torch.testing.assert_close(p(h, mask), want)
    with pytest.raises(NotCompiledYet, match="a pooler with a norm or without a dense bias"):
        pg.eject(s)
    bad = copy.deepcopy(enc)
    bad["pooler"] = dict(kind="cls", dense=False, norm=True)
    with pytest.raises(SpecError, match="belong to its dense layer; set dense: true"):
        validate(Merged(bad, file="mb.yaml"))


def test_onnx_export_of_a_modernbert_like_encoder_verifies(tmp_path):
    """Bidirectional local windows with their own rotary base, layer 0 without attention norm, a mean pooler
    with a norm: the plain graph, verified against PyTorch in ONNX Runtime on other shapes."""
    enc = dict(plmgraph=1, name="mb", family="encoder",
               sizes=dict(vocab=97, hidden=32, layers=3, heads=2, max_positions=64),
               embeddings=dict(norm=True), position=dict(kind="rope", theta=1000.0),
               block=dict(placement="pre", norm=dict(kind="layernorm", bias=False),
                          attention=dict(kind="self", qkv_bias=False, out_bias=False),
                          mlp=dict(kind="gated", activation="gelu", bias=False)),
               encoder=dict(first_attn_norm=False, pattern=[{}, {"window": 3, "rope": {"theta": 10.0}}] + [
                   {"window": 3, "rope": {"theta": 10.0}}]),
               heads=[dict(kind="sequence_classification", labels=3)],
               pooler=dict(kind="mean", dense=True, activation="gelu", norm=True, bias=False))
    m = pg.build(validate(Merged(enc, file="mb.yaml")), seed=0).eval()
    assert pg.export_onnx(m, tmp_path / "mb.onnx", verify=True).exists()
