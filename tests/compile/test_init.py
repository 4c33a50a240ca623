"""Random initialisation follows the spec's typed `init` field, per family."""

from __future__ import annotations

import pytest
import torch

import plmgraph as pg
from plmgraph.compile import build


def std(model, name: str, rows: slice = slice(None)) -> float:
    return dict(model.named_parameters())[name][rows].float().std().item()


def test_gpt2_scales_the_residual_projections():
    model = build(pg.load_spec("gpt2", "layers=2,hidden=256,heads=4,vocab=512"), seed=0)
    assert std(model, "decoder.layers.0.attn.qkv.weight") == pytest.approx(0.02, rel=0.05)
    assert std(model, "decoder.layers.1.attn.out.weight") == pytest.approx(0.02 / 2, rel=0.05)  # / sqrt(2 * 2)
    assert std(model, "decoder.layers.1.mlp.down.weight") == pytest.approx(0.01, rel=0.05)
    assert torch.all(dict(model.named_parameters())["decoder.layers.0.attn.qkv.bias"] == 0)


def test_llama_and_bert_use_one_std():
    for name in ("llama2-7b", "bert-base"):
        model = build(pg.load_spec(name, "layers=2,hidden=256,heads=4,vocab=512,ffn=512"), seed=0)
        assert std(model, f"{model.spec.family}.layers.1.attn.out.weight") == pytest.approx(0.02, rel=0.05), name
    spec = pg.load_spec("bert-base", "layers=1,hidden=256,heads=4,vocab=512,init={kind: normal, std: 0.05}")
    custom = build(spec, seed=0)
    assert std(custom, "encoder.layers.0.mlp.up.weight") == pytest.approx(0.05, rel=0.05)


def test_t5_fan_in_matches_hugging_face_scheme():
    """HF T5: q ~ (d_model * d_kv)^-0.5, k/v ~ d_model^-0.5, o ~ (heads * d_kv)^-0.5,
    wi ~ d_model^-0.5, wo ~ d_ff^-0.5, shared embedding ~ 1."""
    model = build(pg.load_spec("t5-small", "layers=1,vocab=512"), seed=0)  # d_model 512, d_kv 64, d_ff 2048
    q, kv = slice(0, 512), slice(512, None)
    assert std(model, "encoder.layers.0.attn.qkv.weight", q) == pytest.approx((512 * 64) ** -0.5, rel=0.05)
    assert std(model, "encoder.layers.0.attn.qkv.weight", kv) == pytest.approx(512**-0.5, rel=0.05)
    assert std(model, "encoder.layers.0.attn.out.weight") == pytest.approx(512**-0.5, rel=0.05)
    assert std(model, "decoder.layers.0.cross.q.weight") == pytest.approx((512 * 64) ** -0.5, rel=0.05)
    assert std(model, "encoder.layers.0.mlp.up.weight") == pytest.approx(512**-0.5, rel=0.05)
    assert std(model, "encoder.layers.0.mlp.down.weight") == pytest.approx(2048**-0.5, rel=0.05)
    assert std(model, "embed.token.weight") == pytest.approx(1.0, rel=0.05)
