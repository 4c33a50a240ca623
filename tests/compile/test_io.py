"""save/load: spec.yaml + model.safetensors roundtrip; bad checkpoints raise CheckpointError."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from safetensors.torch import load_file, save_file

import plmgraph as pg
from plmgraph.compile import build
from plmgraph.errors import CheckpointError


@pytest.mark.parametrize("name", ["gpt2", "albert-base", "t5-small", "vit-base"])
def test_roundtrip(tmp_path, name):
    spec = tiny(name)
    model = build(spec, seed=0).eval()
    pg.save(model, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["model.safetensors", "spec.yaml"]
    loaded = pg.load(tmp_path / "ck")
    assert loaded.spec.model_dump() == model.spec.model_dump()
    tensors = load_file(tmp_path / "ck" / "model.safetensors")
    assert set(tensors) == set(model.graph.param_shapes())  # tied and shared tensors stored once
    if spec.embeddings.patches is not None:
        kw = {"pixel_values": torch.randn(2, 3, 32, 32)}
    else:
        kw = {"input_ids": torch.randint(0, 128, (2, 6))}
        if spec.family == "encoder-decoder":
            kw["decoder_input_ids"] = torch.randint(0, 128, (2, 4))
    torch.testing.assert_close(loaded(**kw).logits, model(**kw).logits)
    if model.heads[spec.heads[0].name].__dict__.get("tied") is not None:
        assert loaded.heads[spec.heads[0].name].weight is loaded.embed.token.weight


def test_save_replaces_existing_and_leaves_no_temp(tmp_path):
    model = build(tiny("gpt2"), seed=0)
    pg.save(model, tmp_path / "ck")
    pg.save(build(tiny("gpt2"), seed=1), tmp_path / "ck")
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    assert not torch.equal(pg.load(tmp_path / "ck").embed.token.weight, model.embed.token.weight)


def test_bad_checkpoints(tmp_path):
    model = build(tiny("gpt2"), seed=0)
    ck = tmp_path / "ck"
    pg.save(model, ck)
    weights = ck / "model.safetensors"
    tensors = load_file(weights)
    tensors.pop("decoder.final_norm.bias")
    tensors["decoder.layers.0.attn.qkv.weight"] = torch.zeros(3, 3)
    tensors["surprise"] = torch.zeros(2)
    save_file(tensors, weights)
    with pytest.raises(CheckpointError, match=r"missing 1: decoder\.final_norm\.bias \[64\]") as e:
        pg.load(ck)
    assert "unexpected 1: surprise [2]" in str(e.value)
    assert "decoder.layers.0.attn.qkv.weight is [3, 3], expected [192, 64]" in str(e.value)
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        pg.load(ck)
    weights.unlink()
    with pytest.raises(CheckpointError, match="weights file not found"):
        pg.load(ck)
    with pytest.raises(CheckpointError, match="no spec.yaml"):
        pg.load(tmp_path)
    with pytest.raises(CheckpointError, match="meta device"):
        pg.save(build("gpt2", device="meta"), tmp_path / "meta")


def test_saved_spec_keeps_derived_values_derived(tmp_path):
    """spec.yaml is the merged spec as written, so an override on it re-derives like the original."""
    model = build(pg.load_spec("t5-small", "layers=1,hidden=32,heads=2,ffn=64,vocab=64"), seed=0)
    pg.save(model, tmp_path / "m")
    reloaded = pg.load_spec(tmp_path / "m" / "spec.yaml")
    assert reloaded.model_dump() == model.spec.model_dump()
    edited = pg.load_spec(tmp_path / "m" / "spec.yaml", "heads=4,layers=3")
    assert [(s.layers, s.block.attention.kv_heads) for s in edited.stacks.values()] == [(3, 4), (3, 4)]
