"""plmgraph.exporters.graphviz: what the pictures say (labels, clusters, edges), formats, errors."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from plmgraph.exporters import graphviz as gv

from plmgraph.errors import UsageError
from plmgraph.spec import zoo_names

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


def _node_line(source: str, node: str) -> str:
    (line,) = [x for x in source.splitlines() if x.strip().startswith(f'"{node}" [') or
               x.strip().startswith(f"{node} [")]
    return line


def test_gpt2_source_one_layer() -> None:
    src = gv.arch_dot("gpt2").source
    assert "× 12" in src
    for text in ("Token embedding", "50257 × 768", "Learned positions", "1024 × 768",
                 "Masked multi-head attention", "12 heads · d=64", "LayerNorm", "GELU (tanh) MLP",
                 "768→3072→768", "LM head", "768→50257 · tied", "input_ids", "B×T×768"):
        assert text in src, text
    assert "decoder.layers.0.attn" in src and "decoder.layers.1." not in src
    # the loop from the last layer to the final norm is drawn from the one layer shown
    assert re.search(r'"decoder\.layers\.0\.mlp_add" -> "decoder\.final_norm"', src)
    assert re.search(r'"embed\.token" -> "heads\.lm" \[.*tied', src)  # tied weights
    assert 'style=dashed' in _edge(src, "decoder.embed.sum", "decoder.layers.0.attn_add")  # skip connection
    assert "legend" in src and "self-attention" in src


def _edge(src: str, u: str, v: str) -> str:
    (line,) = [x for x in src.splitlines() if f'"{u}" -> "{v}"' in x]
    return line


def test_llama_labels() -> None:
    src = gv.arch_dot("llama2-7b").source
    for text in ("× 32", "RMSNorm", "SwiGLU MLP", "4096→11008→4096", "Rotary positions (RoPE)",
                 "θ=10000", "rotate q, k", "untied"):
        assert text in src, text
    src = gv.arch_dot("llama3-8b").source
    assert "Masked grouped-query attention" in src and "32 heads · 8 kv · d=128" in src


def test_t5_encoder_decoder_side_by_side() -> None:
    src = gv.arch_dot("t5-base").source
    assert "subgraph cluster_encoder" in src and "subgraph cluster_decoder" in src
    assert ">Encoder<" in src and ">Decoder<" in src
    assert src.count("× 12") == 2
    assert "Cross-attention" in src and "Relative position bias" in src
    cross = _edge(src, "encoder.final_norm", "decoder.layers.0.cross")
    assert "B×S×768" in cross
    assert "decoder_input_ids" in src


def test_albert_shared_weights_label() -> None:
    src = gv.arch_dot("albert-base").source
    assert "× 12" in src and "one shared set of weights" in src
    assert "Embedding projection" in src and "128→768" in src and "B×T×128" in src
    assert "SOP head" in src and "Pooler" in src


def test_layers_all_expands_every_layer() -> None:
    src = gv.arch_dot("gpt2", layers="all", overrides="layers=3").source
    assert "× 3" not in src
    for i in range(3):
        assert f"layer {i}<" in src and f"decoder.layers.{i}.mlp" in src
    assert re.search(r'"decoder\.layers\.0\.mlp_add" -> "decoder\.layers\.1\.attn_norm"', src)
    shared = gv.arch_dot("albert-base", layers="all", overrides="layers=2").source
    assert "weights of layer 0" in shared


@needs_dot
def test_render_svg_png_pdf(tmp_path: Path) -> None:
    svg = gv.draw("llama2-7b", tmp_path / "llama.svg")
    text = html.unescape(svg.read_text())  # Graphviz writes "-" as &#45;
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for label in ("RMSNorm", "SwiGLU MLP", "4096→11008→4096", "× 32", "Masked multi-head attention"):
        assert label in text, label
    assert gv.draw("t5-base", tmp_path / "t5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gv.draw("bert-base", tmp_path / "sub" / "bert.pdf").read_bytes()[:5] == b"%PDF-"


def test_dot_source_needs_no_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gv.shutil, "which", lambda _: None)
    out = gv.draw("gpt2", tmp_path / "gpt2.dot")
    assert out.read_text().startswith("digraph")
    assert "× 12" in out.read_text()


def test_missing_dot_writes_source_and_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gv.shutil, "which", lambda _: None)
    with pytest.raises(gv.GraphvizNotFound, match=r"apt-get install graphviz.*brew install graphviz"):
        gv.draw("gpt2", tmp_path / "gpt2.svg")
    assert (tmp_path / "gpt2.dot").read_text().startswith("digraph")
    assert not (tmp_path / "gpt2.svg").exists()


def test_unknown_extension_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown output extension '\.jpg'; use one of \.svg, \.png, \.pdf, \.dot"):
        gv.draw("gpt2", tmp_path / "gpt2.jpg")
    with pytest.raises(UsageError, match="layers must be 'one' or 'all'"):
        gv.arch_dot("gpt2", layers="some")


def test_diff_picture_marks_changes() -> None:
    src = gv.diff_dot(__import__("plmgraph").diff("gpt2", "llama2-7b")).source
    assert "subgraph cluster_side_a" in src and "subgraph cluster_side_b" in src
    changed, minor, removed = gv.STATUS["changed"][0], gv.STATUS["minor"][0], gv.STATUS["removed"][0]
    assert changed in _node_line(src, "b__decoder.layers.0.mlp") and "~ SwiGLU MLP" in src
    assert changed in _node_line(src, "a__decoder.layers.0.attn_norm") and "~ LayerNorm" in src
    assert minor in _node_line(src, "b__decoder.layers.0.attn_add")
    line = _node_line(src, "a__decoder.embed.sum")
    assert removed in line and "dashed" in line
    assert gv.STATUS[None][0] in _node_line(src, "b__embed.token")  # same block, only resized
    assert "position: learned → rotary (theta 10000)" in src  # the change list beside the pictures
    assert "124.4M → 6.74B parameters" in src


def test_diff_picture_added_blocks() -> None:
    src = gv.diff_dot(__import__("plmgraph").diff("bert-base", "albert-base")).source
    line = _node_line(src, "b__encoder.embed.project")
    assert gv.STATUS["added"][0] in line and "+ Embedding projection" in line


@needs_dot
def test_diff_svg(tmp_path: Path) -> None:
    text = html.unescape(gv.draw_diff("gpt2", "llama2-7b", tmp_path / "d.svg").read_text())
    assert "gpt2" in text and "llama2-7b" in text and "~ RMSNorm" in text


def test_zoo_family_tree_has_every_spec() -> None:
    src = gv.zoo_dot().source
    for name in zoo_names():
        assert re.search(rf'^\s*"?{re.escape(name)}"? \[label=<<B>{re.escape(name)}</B>', src, re.M), name
    assert re.search(r'^\s*gpt2 -> "llama-7b" \[penwidth=1\.6\]', src, re.M)  # extends
    assert re.search(r'^\s*"llama2-7b" -> "llama3-8b" \[penwidth=1\.6\]', src, re.M)
    assert "style=dashed" in src  # nearest relatives


def test_zoo_subset_nearest_relative() -> None:
    src = gv.zoo_dot(["gpt2", "llama2-7b", "llama3-8b", "bert-base"]).source
    # no extends edges inside this subset except llama2-7b -> llama3-8b; gpt2's nearest is llama2-7b
    assert re.search(r'"llama2-7b" -> "llama3-8b" \[penwidth', src)
    assert re.search(r'"llama2-7b" -> gpt2 \[.*style=dashed', src) or re.search(r'gpt2 -> "llama2-7b" \[.*dashed', src)
