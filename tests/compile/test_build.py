"""build(): every zoo spec compiles (tiny), runs forward + backward, and keeps the naming invariant."""

from __future__ import annotations

import time

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.compile import REGISTRY, NotSupportedError, build
from plmgraph.spec import zoo_names

BUILDABLE = zoo_names()  # every zoo spec compiles


def inputs(spec, batch: int = 2, seq: int = 7) -> dict:
    g = torch.Generator().manual_seed(0)
    if spec.embeddings.patches is not None:
        p = spec.embeddings.patches
        return {"pixel_values": torch.randn(batch, p.channels, p.image_size, p.image_size, generator=g)}
    kw = {"input_ids": torch.randint(0, spec.sizes.vocab, (batch, seq), generator=g)}
    if spec.block.attention.mask == "prefix":  # GLM: the first half of each sequence is the bidirectional prefix
        kw["prefix_lengths"] = torch.full((batch,), seq // 2)
    if spec.family == "encoder-decoder":
        kw["decoder_input_ids"] = torch.randint(0, spec.sizes.vocab, (batch, seq - 2), generator=g)
    return kw


def test_zoo_has_buildable_specs():
    assert {"gpt2", "llama2-7b", "bert-base"} <= set(BUILDABLE)


@pytest.mark.parametrize("name", BUILDABLE)
def test_tiny_zoo_spec_builds_runs_and_matches_graph(name):
    spec = tiny(name)
    model = build(spec, seed=0)
    graph = model.graph
    params = {k: tuple(p.shape) for k, p in model.named_parameters()}
    assert params == {k: tuple(s) for k, s in graph.param_shapes().items()}
    assert model.num_params() == graph.num_params()
    assert set(model.state_dict()) == set(params)  # no buffers, no duplicated shared tensors
    out = model(**inputs(spec))
    assert out.last_hidden_state.shape[-1] == spec.sizes.hidden
    assert set(out.head_outputs) == {h.name for h in spec.heads}
    assert out.logits is out.head_outputs[spec.heads[0].name]
    assert torch.isfinite(out.last_hidden_state).all()
    loss = sum(o.float().square().mean() for o in out.head_outputs.values())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), "every parameter gets a gradient"


@pytest.mark.parametrize("name", BUILDABLE)
def test_full_size_meta_build_matches_graph(name):
    model = build(name, device="meta")
    assert model.num_params() == model.graph.num_params()
    assert all(p.is_meta for p in model.parameters())


def test_gpt3_meta_build_is_instant(capsys):
    start = time.perf_counter()
    model = build("gpt3", device="meta")
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[info] gpt3 ({model.num_params():,} params) on meta in {elapsed * 1000:.0f} ms")
    assert model.num_params() == pg.resolve("gpt3").num_params()


def test_a_kind_without_implementation_raises_a_clear_error(monkeypatch):
    monkeypatch.delitem(REGISTRY, "mlp/gated")
    with pytest.raises(NotSupportedError, match="no torch implementation for block kind 'mlp/gated'; known: "):
        build(tiny("llama2-7b"), device="meta")


def test_accepts_spec_graph_name_and_path():
    spec = tiny("gpt2")
    graph = pg.resolve(spec)
    assert build(graph, device="meta").graph is graph
    assert build(spec, device="meta").spec is spec
    assert build("gpt2", device="meta").spec.name == "gpt2"
    from plmgraph.spec import find_spec

    assert build(str(find_spec("gpt2")), device="meta").spec.name == "gpt2"
    assert pg.build is build


def test_tied_head_has_no_projection_and_reads_embedding():
    model = build(tiny("gpt2"), seed=0)
    names = dict(model.named_parameters())
    assert "heads.lm.proj.weight" not in names
    assert model.heads["lm"].weight is model.embed.token.weight
    untied = build(tiny("llama2-7b"), seed=0)
    assert "heads.lm.proj.weight" in dict(untied.named_parameters())


def test_albert_layers_share_one_module():
    model = build(tiny("albert-base"), seed=0)
    enc = model.encoder
    assert list(enc.layers) == ["0"] and enc.schedule == ["0", "0"]
    assert not any(".layers.1." in k for k in dict(model.named_parameters()))
    assert len(model.blocks()) == 1


def test_seed_is_reproducible_and_init_follows_docstring():
    a, b = build(tiny("gpt2"), seed=3), build(tiny("gpt2"), seed=3)
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), k
    layer = a.decoder.layers["0"]
    assert torch.all(layer.attn_norm.weight == 1) and torch.all(layer.attn.qkv.bias == 0)
    assert 0.01 < a.embed.token.weight.std() < 0.03
    assert layer.mlp.down.weight.std() < layer.mlp.up.weight.std()  # depth-scaled residual projections


def test_dtype_and_registry():
    model = build(tiny("llama2-7b"), dtype=torch.bfloat16, seed=0)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = model(torch.randint(0, 128, (1, 5)))
    assert out.logits.dtype == torch.bfloat16
    for kind in ("norm/layernorm", "norm/rmsnorm", "attention/self", "attention/cross", "mlp/dense", "mlp/gated",
                 "mlp/moe", "position/learned", "position/sinusoidal", "position/rope", "position/alibi",
                 "position/t5_relative", "embedding/token", "pool/cls", "head/lm", "head/mlm"):
        assert kind in REGISTRY
