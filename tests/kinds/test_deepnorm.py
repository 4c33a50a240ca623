"""DeepNorm (Wang et al. 2022) end to end: spec, graph, words, diagram, build, init, ONNX.

Its one module is plmgraph/kinds/residual/deepnorm.py; these tests walk it through every stage.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, diff_cmds, export_cmds, hf_cmds, spec_cmds  # noqa: F401  (register commands)
from plmgraph.spec import SpecError

runner = CliRunner()
DEEP = "block.placement=post,block.residual={kind: deepnorm}"


def deep(name: str = "bert-base", extra: str = "", **sizes: int):
    return pg.load_spec(tiny(name, **sizes), DEEP + ("," + extra if extra else ""))


def test_alpha_and_beta_follow_the_paper_when_left_out():
    one = deep("bert-base", layers=6).encoder.block.residual  # encoder-only, N = 6
    assert one.alpha == pytest.approx(12**0.25) and one.beta == pytest.approx(48**-0.25)
    dec = deep("gpt2", layers=5).decoder.block.residual  # decoder-only, N = 5
    assert dec.alpha == pytest.approx(10**0.25) and dec.beta == pytest.approx(40**-0.25)
    s = deep("t5-small", "decoder.layers=3", layers=6)  # encoder-decoder, N = 6, M = 3
    enc, dec = s.encoder.block.residual, s.decoder.block.residual
    assert enc.alpha == pytest.approx(0.81 * (6**4 * 3) ** (1 / 16))
    assert enc.beta == pytest.approx(0.87 * (6**4 * 3) ** (-1 / 16))
    assert dec.alpha == pytest.approx(9**0.25) and dec.beta == pytest.approx(36**-0.25)


def test_written_values_are_kept_and_pre_norm_is_refused():
    r = pg.load_spec(tiny("bert-base"), "block.residual={kind: deepnorm, alpha: 3.0, beta: 0.5}").encoder.block.residual
    assert (r.alpha, r.beta) == (3.0, 0.5)
    with pytest.raises(SpecError, match=r"deepnorm residual is post-norm .*placement must be 'post', not 'pre'"):
        pg.load_spec("gpt2", "block.residual={kind: deepnorm}")


def test_graph_stats_show_and_diff():
    spec = deep("bert-base")
    g = pg.resolve(spec)
    adds = g.nodes(kind="residual/deepnorm")
    assert len(adds) == 2 * spec.sizes.layers and all(g.node(n)["params"] == {} for n in adds)
    assert g.node(adds[0])["attrs"]["alpha"] == pytest.approx(spec.encoder.block.residual.alpha)
    # DeepNorm adds no weights: the same count as plain post-norm, counted independently of the graph
    plain = pg.build(tiny("bert-base"), device="meta")
    assert pg.stats(g).params == sum(p.numel() for p in plain.parameters())
    shown = runner.invoke(app, ["show", "bert-base", "-O", "layers=2," + DEEP], terminal_width=200)
    assert shown.exit_code == 0 and "deepnorm residual" in shown.output
    d = pg.diff(tiny("bert-base"), spec)
    assert "residual: sequential → DeepNorm (α 1.41, β 0.5)" in "\n".join(d.lines())  # N = 2: 4^¼, 16^-¼


def test_draw_labels_the_scaled_residual(tmp_path):
    out = tmp_path / "deep.svg"
    pg.draw(deep("bert-base"), out)
    assert "1.41·x+" in out.read_text(encoding="utf-8")  # N = 2: α = 4^¼


def test_block_computes_ln_of_alpha_x_plus_f_x():
    """A hand-written DeepNorm layer (post-norm, x = LN(α·x + f(x))) from the layer's own weights."""
    spec = pg.load_spec(tiny("bert-base"), "block.residual={kind: deepnorm, alpha: 2.5, beta: 0.3}")
    model = pg.build(spec, seed=0).eval()
    layer = model.encoder.layers["0"]
    x = torch.randn(2, 5, 64)
    n1, n2 = layer.attn_norm, layer.mlp_norm
    a = layer.attn(x)[0]
    h = F.layer_norm(2.5 * x + a, (64,), n1.weight, n1.bias, n1.eps)
    m = F.linear(F.gelu(F.linear(h, layer.mlp.up.weight, layer.mlp.up.bias)), layer.mlp.down.weight,
                 layer.mlp.down.bias)
    want = F.layer_norm(2.5 * h + m, (64,), n2.weight, n2.bias, n2.eps)
    got, _ = layer(x, None, False, None, None, None, None)
    torch.testing.assert_close(got, want)


def test_alpha_one_is_plain_post_norm():
    post = pg.build(tiny("bert-base"), seed=0).eval()
    one = pg.build(pg.load_spec(tiny("bert-base"), "block.residual={kind: deepnorm, alpha: 1.0, beta: 1.0}")).eval()
    one.load_state_dict(post.state_dict())
    ids = torch.randint(0, 128, (2, 9))
    torch.testing.assert_close(one(ids).logits, post(ids).logits)


def test_init_scales_value_output_and_mlp_by_beta():
    spec = pg.load_spec(tiny("gpt2", hidden=256, heads=4, ffn=1024),
                        "block.placement=post,block.residual={kind: deepnorm, alpha: 2.0, beta: 0.25},"
                        "init={kind: normal, std: 0.02, scaled_residual: false}")
    p = dict(pg.build(spec, seed=0).named_parameters())
    qkv = p["decoder.layers.1.attn.qkv.weight"]
    assert qkv[:512].std().item() == pytest.approx(0.02, rel=0.05)  # queries and keys: gain 1
    assert qkv[512:].std().item() == pytest.approx(0.02 * 0.25, rel=0.05)  # values: × β
    for name in ("attn.out.weight", "mlp.up.weight", "mlp.down.weight"):
        assert p[f"decoder.layers.1.{name}"].std().item() == pytest.approx(0.02 * 0.25, rel=0.05), name


def test_trains_forward_and_backward_with_finite_gradients():
    model = pg.build(deep("gpt2"), seed=0)
    ids = torch.randint(0, 128, (2, 12))
    logits = model(ids).logits
    F.cross_entropy(logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1)).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_exports_to_onnx_and_matches_on_new_shapes(tmp_path):
    pytest.importorskip("onnxruntime")
    model = pg.build(deep("gpt2"), seed=0).eval()
    path = pg.export_onnx(model, tmp_path / "deep.onnx")  # verified in ORT on shapes other than the export's
    assert path.exists()


def test_glm_130b_zoo_entry_uses_deepnorm_and_counts_near_the_published_size():
    spec = pg.load_spec("glm-130b")
    r = spec.decoder.block.residual
    assert r.kind == "deepnorm" and r.alpha == pytest.approx(math.sqrt(140)) and r.beta == pytest.approx(140**-0.5)
    n = pg.resolve(spec).num_params()
    assert abs(n - 130e9) / 130e9 < 0.015, f"{n:,}"
    layers, h, ffn, vocab = 70, 12288, 32768, 150528  # an independent count from the paper's shapes
    per_layer = (3 * h * h + 3 * h) + (h * h + h) + (h * 2 * ffn + 2 * ffn) + (ffn * h + h) + 4 * h
    assert n == layers * per_layer + vocab * h + 2 * h
