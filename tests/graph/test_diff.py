"""plmgraph.graph.diff: exact change lists for zoo pairs, equivalence, inheritance, distance."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import pytest

import plmgraph as pg
from plmgraph.graph import resolve
from plmgraph.graph.diff import AXES, ArchDiff, diff, distance
from plmgraph.spec import zoo_names


@pytest.fixture(scope="module")
def zoo() -> dict:
    return {n: resolve(n) for n in zoo_names()}


def test_every_pair_of_zoo_specs_diffs(zoo: dict) -> None:
    for a, b in itertools.permutations(zoo, 2):
        d = diff(zoo[a], zoo[b])
        assert d.changes, f"{a} -> {b} should differ"
        assert [c.axis for c in d.changes] == sorted((c.axis for c in d.changes), key=AXES.index)
        assert all(c.text and c.what for c in d.changes)
        json.dumps(d.to_json())  # plain JSON all the way down
    for n, g in zoo.items():
        assert not diff(g, g), n
        assert distance(g, g) == 0


def test_public_entry_point() -> None:
    d = pg.diff("gpt2", "llama2-7b")
    assert isinstance(d, ArchDiff)
    assert (d.a.name, d.b.name) == ("gpt2", "llama2-7b")


EXPECTED = {
    ("gpt2", "llama2-7b"): [
        "dims: vocab: 50257 → 32000",
        "dims: hidden: 768 → 4096",
        "dims: heads: 12 → 32",
        "dims: max_positions: 1024 → 4096",
        "dims: layers: 12 → 32",
        "dims: head_dim: 64 → 128",
        "dims: ffn: 3072 → 11008",
        "embeddings: embedding dropout: 0.1 → 0",
        "position: learned → rotary (theta 10000)",
        "norm: LayerNorm → RMSNorm  [all layers, final norm]",
        "residual: residual dropout: 0.1 → 0  [all layers]",
        "attention: attention biases: on → off  [all layers]",
        "attention: attention dropout: 0.1 → 0  [all layers]",
        "MLP: GELU (tanh) → SwiGLU  [all layers]",
        "MLP: MLP bias: on → off  [all layers]",
        "heads: LM head: tied → untied",
        "init: initialisation: N(0, 0.02), residual ÷√(2L) → N(0, 0.02)",
    ],
    ("bert-base", "albert-base"): [
        "dims: vocab: 30522 → 30000",
        "dims: embedding size: 768 → 128",
        "embeddings: embedding dropout: 0.1 → 0",
        "embeddings: factorized embedding projection 128→768: added",
        "residual: residual dropout: 0.1 → 0  [all 12 layers]",
        "attention: attention dropout: 0.1 → 0  [all 12 layers]",
        "MLP: GELU → GELU (tanh)  [all 12 layers]",
        "sharing: layer weights: none → one shared set for all layers",
        "heads: MLM head transform: dense + GELU + norm → dense + GELU (tanh) + norm",
        "heads: head: NSP head → SOP head",
        "objective: next-sentence prediction → sentence-order prediction",
    ],
    ("bert-base", "roberta-base"): [
        "dims: vocab: 30522 → 50265",
        "embeddings: segment (token type) vocabulary: 2 → 1",
        "position: position offset: 0 → 2",
        "position: position ids: count every token → count non-padding tokens",
        "norm: norm eps: 1e-12 → 1e-05  [all 12 layers, embeddings]",
        "heads: pooler ([CLS] + dense tanh): removed",
        "heads: NSP head: removed",
        "objective: next-sentence prediction: removed",
        "objective: masking: static → dynamic",
    ],
    ("llama2-7b", "llama3-8b"): [
        "dims: vocab: 32000 → 128256",
        "dims: max_positions: 4096 → 8192",
        "dims: ffn: 11008 → 14336",
        "position: rotary (theta 10000) → rotary (theta 500000)",
        "attention: MHA → GQA (8 kv heads)  [all 32 layers]",
    ],
    ("t5-base", "bart-base"): [
        "dims: vocab: 32128 → 50265",
        "dims: max_positions: 512 → 1024",
        "dims: layers: 12 → 6  [encoder & decoder]",
        "position: T5 relative bias → learned  [encoder & decoder]",
        "norm: norm placement: pre-norm → post-norm  [encoder & decoder]",
        "norm: RMSNorm → LayerNorm  [encoder & decoder all layers]",
        "norm: norm eps: 1e-06 → 1e-05  [encoder & decoder all layers]",
        "norm: final norm (RMSNorm): removed  [encoder & decoder]",
        "norm: embedding norm (LayerNorm): added  [encoder & decoder embeddings]",
        "attention: attention biases: off → on  [encoder & decoder all layers]",
        "attention: attention scale: 1 → 1/√d  [encoder & decoder all layers]",
        "attention: attention dropout: 0.1 → 0  [encoder & decoder all layers]",
        "attention: cross-attention biases: off → on  [decoder all layers]",
        "attention: cross-attention scale: 1 → 1/√d  [decoder all layers]",
        "attention: cross-attention dropout: 0.1 → 0  [decoder all layers]",
        "MLP: ReLU → GELU  [encoder & decoder all layers]",
        "MLP: MLP bias: off → on  [encoder & decoder all layers]",
        "heads: LM head scale: ×d^-0.5 → none",
        "objective: span corruption → denoising (text infilling)",
        "init: initialisation: N(0, fan_in^-0.5) → N(0, 0.02)",
    ],
}


@pytest.mark.parametrize("pair", list(EXPECTED), ids=lambda p: f"{p[0]}->{p[1]}")
def test_expected_changes(pair: tuple[str, str], zoo: dict) -> None:
    a, b = pair
    assert diff(zoo[a], zoo[b]).lines() == EXPECTED[pair]


def test_gpt2_llama_structure_and_semantics(zoo: dict) -> None:
    d = diff(zoo["gpt2"], zoo["llama2-7b"])
    (mlp,) = d.find("mlp", "MLP")
    assert (mlp.before, mlp.after, mlp.structural) == ("GELU (tanh)", "SwiGLU", True)
    (pos,) = d.find("position")
    assert pos.to_json() == {
        "axis": "position", "what": "position", "status": "changed", "before": "learned",
        "after": "rotary (theta 10000)", "where": [], "structural": True,
    }
    s = diff(zoo["gpt2"], zoo["llama2-7b"], structure=True)
    assert s.structure and all(c.structural for c in s.changes)
    assert s.lines() == [line for line in EXPECTED[("gpt2", "llama2-7b")] if "→" in line and not any(
        k in line for k in ("dims:", "dropout", "init:"))]
    cost = d.cost()
    assert cost["params"]["a"] == 124_439_808 and cost["params"]["b"] == 6_738_415_616
    assert cost["params"]["delta"] == 6_738_415_616 - 124_439_808
    assert cost["flops_per_token"]["delta"] > 0
    # nodes for the diagram: every layer's MLP changed, GPT-2's embedding sum disappears
    assert d.nodes_a["decoder.layers.7.mlp"] == "changed"
    assert d.nodes_b["decoder.layers.31.mlp"] == "changed"
    assert d.nodes_a["decoder.embed.sum"] == "removed"
    assert d.nodes_b["decoder.layers.0.attn_add"] == "minor"  # only the residual dropout changed
    assert "embed.token" not in d.nodes_b  # vocab/width are dims, not a change of the block


def test_json(zoo: dict) -> None:
    data = json.loads(json.dumps(diff(zoo["bert-base"], zoo["albert-base"]).to_json()))
    assert (data["a"], data["b"]) == ("bert-base", "albert-base")
    sharing = [c for c in data["changes"] if c["axis"] == "sharing"]
    assert sharing == [{"axis": "sharing", "what": "layer weights", "status": "changed", "before": "none",
                        "after": "one shared set for all layers", "where": [], "structural": True}]
    assert data["cost"]["params"]["b"] == resolve("albert-base").num_params()
    assert data["distance"] == pytest.approx(6.5)


def test_cross_family_and_added_stack(zoo: dict) -> None:
    d = diff(zoo["bert-base"], zoo["gpt2"])
    assert d.find("stack", "family")[0].text == "encoder → decoder"
    assert d.find("attention", "attention mask")[0].text == "bidirectional → causal"
    assert d.find("norm", "final norm (LayerNorm)")[0].status == "added"
    d = diff(zoo["gpt2"], zoo["t5-base"])
    assert d.find("stack", "encoder stack")[0].text == "added (12 layers)"
    assert d.find("attention", "cross-attention")[0].where == ["decoder all 12 layers"]
    assert d.nodes_b["encoder.layers.3.attn"] == "added"


def test_moe_and_gqa_names(zoo: dict) -> None:
    d = diff(zoo["llama2-7b"], zoo["mixtral-8x7b"])
    assert d.find("mlp", "MLP")[0].text == "SwiGLU → MoE 8×SwiGLU, top-2"
    d = diff("gpt2", "gpt2", structure=False)
    assert not d and len(d) == 0


def test_distance_orders_relatives(zoo: dict) -> None:
    close = distance(zoo["llama2-7b"], zoo["llama3-8b"])
    far = distance(zoo["gpt2"], zoo["llama2-7b"])
    farther = distance(zoo["bert-base"], zoo["llama2-7b"])
    assert 0 < close < far < farther
    # size-only changes weigh little: gpt2 -> gpt2-xl changes dims only
    assert distance(zoo["gpt2"], zoo["gpt2-xl"]) < 1
    assert distance(zoo["gpt2"], zoo["llama2-7b"]) == distance("llama2-7b", "gpt2")


def test_layers_that_differ_are_listed_by_layer() -> None:
    a = resolve("gpt2")
    b = resolve("gpt2")
    for i in (3, 4, 5):
        b.nx.nodes[f"decoder.layers.{i}.mlp"]["attrs"]["activation"] = "relu"
    d = diff(a, b)
    (c,) = d.changes
    assert c.text == "GELU (tanh) → ReLU"
    assert c.where == ["layer 3", "layer 4", "layer 5"]
    assert d.nodes_b == {f"decoder.layers.{i}.mlp": "changed" for i in (3, 4, 5)}


# ------------------------------------------------------------- written differently


PARENT = """
plmgraph: 1
name: tiny-parent
family: decoder
sizes: {vocab: 1000, hidden: 64, layers: 2, heads: 4, max_positions: 128}
position: {kind: learned}
block:
  norm: {kind: layernorm, eps: 1.0e-5}
  attention: {kind: self, mask: causal}
  mlp: {kind: dense, activation: gelu_tanh}
heads: [{kind: lm}]
objectives: [{kind: clm}]
"""

CHILD = """
extends: parent.yaml
name: tiny
sizes: {layers: 4, heads: 8}
position: {kind: rope, theta: 10000}
block:
  norm: {kind: rmsnorm, eps: 1.0e-5}
  attention: {qkv_bias: false, out_bias: false, kv_heads: 2}
  mlp: {kind: gated, activation: silu, bias: false, ffn: 256}
heads: [{kind: lm, tie_embeddings: false}]
"""

# The same architecture written out in full, with every default spelled differently.
FULL = """
plmgraph: 1
name: tiny-full
source: written out by hand
family: decoder
sizes: {vocab: 1000, hidden: 64, layers: 4, heads: 8, ffn: 256, max_positions: 128}
embeddings: {size: 64, segments: 0, dropout: 0.0, norm: false}
position: {kind: rope, theta: 10000.0, fraction: 1.0, interleaved: false}
block:
  norm: {kind: rmsnorm, eps: 0.00001, offset: 0.0}
  placement: pre
  residual: {kind: sequential}
  attention: {kind: self, kv_heads: 2, head_dim: 8, qkv_bias: false, out_bias: false, mask: causal}
  mlp: {kind: gated, activation: silu, bias: false}
  dropout: 0.0
decoder: {layers: 4, final_norm: true}
sharing: {kind: none}
heads: [{kind: lm, name: lm, tie_embeddings: false, bias: false}]
objectives: [{kind: clm}]
tuning: {kind: full}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_equivalent_specs_diff_empty(tmp_path: Path) -> None:
    _write(tmp_path, "parent.yaml", PARENT)
    child = _write(tmp_path, "child.yaml", CHILD)
    full = _write(tmp_path, "full.yaml", FULL)
    d = diff(str(child), str(full))
    assert d.lines() == []
    assert not d and d.distance == 0
    assert d.cost()["params"]["delta"] == 0


def test_change_inherited_through_extends_shows(tmp_path: Path) -> None:
    parent = _write(tmp_path, "parent.yaml", PARENT)
    child = _write(tmp_path, "child.yaml", CHILD)
    before = resolve(str(child))
    parent.write_text(textwrap.dedent(PARENT).replace("max_positions: 128", "max_positions: 256")
                      .replace("mask: causal", "mask: causal, window: 64"))
    d = diff(before, str(child))
    assert d.lines() == [
        "dims: max_positions: 128 → 256",
        "attention: sliding window: none → 64 tokens  [all 4 layers]",
    ]
    assert [c.structural for c in d.changes] == [False, True]


def test_attributes_without_a_named_rule_still_show(monkeypatch):
    """A spec field the diff has no wording for yet is compared generically, never dropped."""
    import plmgraph.graph.diff as diff_mod

    monkeypatch.setattr(diff_mod, "_describe_known", lambda d: [])
    d = pg.diff("gpt2", pg.load_spec("gpt2", "block.norm.eps=1e-3"))
    assert any("layernorm eps" in line for line in d.lines()), d.lines()
