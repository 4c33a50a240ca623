"""The ArchGraph: node kinds, wiring, sharing and the stats derived from it."""

from __future__ import annotations

import math

import networkx as nx
import pytest

import plmgraph as pg
from plmgraph.graph import resolve, stats


def test_gpt2_prenorm_layer_wiring():
    g = resolve("gpt2")
    assert nx.is_directed_acyclic_graph(g.nx)
    layer = g.layer_nodes("decoder", 0)
    roles = [g.node(n)["role"] for n in layer]
    assert roles == ["attn_norm", "attn", "attn_add", "mlp_norm", "mlp", "mlp_add"]
    # pre-norm: the residual skips the norm and feeds the add
    assert g.nx.edges["decoder.layers.0.attn_norm", "decoder.layers.0.attn"]["shape"] == ("B", "T", 768)
    preds = set(g.nx.predecessors("decoder.layers.1.attn_add"))
    assert preds == {"decoder.layers.1.attn", "decoder.layers.0.mlp_add"}
    assert g.nx.edges["decoder.layers.0.mlp_add", "decoder.layers.1.attn_add"]["role"] == "residual"
    assert g.node("heads.lm")["tied_to"] == "embed.token" and g.node("heads.lm")["params"] == {}
    assert len(g.nodes(kind="attention/self")) == 12


def test_bert_postnorm_and_heads():
    g = resolve("bert-base")
    roles = [g.node(n)["role"] for n in g.layer_nodes("encoder", 0)]
    assert roles == ["attn", "attn_add", "attn_norm", "mlp", "mlp_add", "mlp_norm"]
    assert "encoder.final_norm" not in g.nx
    assert set(g.nx.predecessors("heads.nsp")) == {"pooler"}
    assert g.node("pooler")["params"] == {"dense.weight": (768, 768), "dense.bias": (768,)}
    assert g.node("heads.mlm")["params"]["bias"] == (30522,)


def test_albert_layers_share_one_group():
    g = resolve("albert-base")
    groups = {g.node(f"encoder.layers.{i}.attn")["group"] for i in range(12)}
    assert groups == {"encoder.layers.0.attn"}
    assert g.node("encoder.layers.5.mlp")["params"] == {}
    assert g.node("encoder.embed.project")["params"]["weight"] == (768, 128)


def test_t5_cross_attention_reads_encoder_output():
    g = resolve("t5-small")
    cross = g.nodes(kind="attention/cross")
    assert len(cross) == 6
    for c in cross:
        assert g.nx.edges["encoder.final_norm", c]["role"] == "cross"
    assert g.node("decoder.position")["attrs"]["bidirectional"] is False
    assert g.node("encoder.position")["attrs"]["bidirectional"] is True
    assert g.node("decoder.layers.0.attn")["attrs"]["mask"] == "causal"
    assert g.node("decoder.layers.0.cross")["attrs"]["mask"] == "bidirectional"


def test_parallel_residual_and_sandwich():
    par = resolve(pg.load_spec("gpt2", "layers=2,block.residual.kind=parallel"))
    assert set(par.nx.predecessors("decoder.layers.0.add")) == {
        "decoder.layers.0.attn", "decoder.layers.0.mlp", "decoder.embed.sum"
    }
    sand = resolve(pg.load_spec("gpt2", "layers=1,block.placement=sandwich"))
    roles = [sand.node(n)["role"] for n in sand.layer_nodes("decoder", 0)]
    assert roles == ["attn_norm", "attn", "attn_post_norm", "attn_add", "mlp_norm", "mlp", "mlp_post_norm", "mlp_add"]


def test_param_shapes_are_the_compiled_state_dict_contract():
    g = resolve("llama3-8b")
    shapes = g.param_shapes()
    assert shapes["decoder.layers.0.attn.qkv.weight"] == ((32 + 2 * 8) * 128, 4096)
    assert shapes["decoder.layers.0.mlp.up.weight"] == (2 * 14336, 4096)
    assert shapes["heads.lm.proj.weight"] == (128256, 4096)
    assert sum(math.prod(s) for s in shapes.values()) == g.num_params()


def test_stats_flops_kv_and_memory():
    s = stats("llama2-7b", seq_len=2048)
    # 2 FLOPs per weight a token meets (all but the input embedding) + 4*L*H*d*T for attention
    n_matmul = s.params - 32000 * 4096 - 4096 * (2 * 32 + 1)
    assert s.flops_per_token == 2 * n_matmul + 4 * 32 * 4096 * 2048
    assert s.kv_bytes_per_token["bf16"] == 32 * 2 * 4096 * 2  # 512 KiB
    assert s.weight_bytes["bf16"] == 2 * s.params
    gqa = stats("llama3-8b")
    assert gqa.kv_bytes_per_token["bf16"] == 32 * 2 * 8 * 128 * 2  # GQA: 4x smaller per token
    assert stats("bert-base").kv_bytes_per_token["bf16"] == 0


def test_moe_flops_count_top_k_experts_only():
    s = stats("mixtral-8x7b", seq_len=1)
    expert = 3 * 4096 * 14336
    dense_like = stats(pg.load_spec("mixtral-8x7b", "block.mlp.experts=2"), seq_len=1)
    # top-2 of 8 experts costs what top-2 of 2 costs, plus the wider router
    assert s.flops_per_token == dense_like.flops_per_token + 32 * 2 * 4096 * (8 - 2)
    assert s.params - dense_like.params == 32 * (6 * expert + 6 * 4096)


@pytest.mark.parametrize("name", ["gpt3", "mixtral-8x7b", "llama2-70b"])
def test_large_specs_resolve(name):
    g = resolve(name)
    assert g.num_params() > 1e10
