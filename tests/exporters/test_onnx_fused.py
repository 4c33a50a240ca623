"""Fused ONNX graphs (`exporters/onnx_fuse.py`): ONNX Runtime's kernels in the file, checked in a real
ONNX Runtime session against PyTorch eager on shapes other than the export shape (batch 2, seq 16).

The other export tests (test_onnx.py) run on fused graphs too, fusion being the default; these check
what the fused graph is made of, left padding through the fused kernels, the plain graph (`fuse=False`),
tied weights and the relative tolerance."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
import torch
from helpers import tiny
from plmgraph.exporters import onnx as ox
from plmgraph.exporters import onnx_fuse
from plmgraph.exporters.runtime import import_onnxruntime
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, export_cmds  # noqa: F401  (register commands)
from plmgraph.errors import ExportError
from plmgraph.spec import load_spec

ort = import_onnxruntime()


def ops(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache: dict[tuple, tuple[torch.nn.Module, object]] = {}

    def get(spec: str, kv_cache: bool = False, fuse: bool = True):
        key = (spec, kv_cache, fuse)
        if key not in cache:
            model = pg.build(load_spec(tiny(spec)), seed=0).eval()
            path = tmp_path_factory.mktemp("fused") / f"{spec}-{kv_cache}-{fuse}.onnx"
            pg.export_onnx(model, path, kv_cache=kv_cache, fuse=fuse, verify=False)  # the tests verify
            cache[key] = model, path
        return cache[key]

    return get


def test_llama_gqa_with_rotary_cache_and_skip_norms(exported):
    model, path = exported("llama2-70b", kv_cache=True)  # tiny: 4 query heads, 2 kv heads
    got = ops(path)
    assert got["GroupQueryAttention"] == 2 and "RotaryEmbedding" not in got  # rotary inside the kernel
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    gqa = next(n for n in nodes if n.op_type == "GroupQueryAttention")
    assert {a.name: a.i for a in gqa.attribute}["do_rotary"] == 1 and gqa.input[1] == ""  # packed QKV
    assert got["SkipSimplifiedLayerNormalization"] == 4 and got["SimplifiedLayerNormalization"] == 1
    assert not {"Sin", "Cos", "Softmax", "Reciprocal", "Pow"} & set(got)  # tables, not trigonometry per call
    plan = onnx_fuse.fusion_plan(model)
    assert [f.op for f in plan] == ["com.microsoft.GroupQueryAttention"] * 2
    report = ox.verify_onnx(model, path, kv_cache=True)
    assert report.fused and report.tolerance_used <= 1.0 and {c.case.split(",")[0] for c in report.checks} >= {
        "batch 1", "batch 3"}


def test_fused_left_padded_batch_then_decode_matches_pytorch(exported):
    """A left-padded batch of 2 (a shape not exported), prefill from an empty cache, then two decode steps
    fed ONNX Runtime's own presents: every real position equals PyTorch's with the positions a left-padding
    runtime feeds it (counted from each row's first kept token), though the graph, rotating at past + i,
    takes none: rotation is relative."""
    model, path = exported("llama2-70b", kv_cache=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sig = ox.signature(model, True)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 128, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, :3] = 0  # row 0: three pads on the left
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    empty = {n: np.zeros((2, 2, 0, 16), np.float32) for n in sig.past_names()}
    assert "position_ids" not in {i.name for i in sess.get_inputs()}
    got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), **empty})
    with torch.no_grad():
        want = model(ids, attention_mask=mask, position_ids=pos, use_cache=True)
    keep = mask.bool()
    torch.testing.assert_close(torch.from_numpy(got[0])[keep], want.logits[keep], atol=1e-4, rtol=1e-4)
    past, cache = got[len(sig.outputs) - len(sig.past_names()):], want.past_key_values
    for _ in range(2):
        new = want.logits[:, -1:].argmax(-1)
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
        pos = mask.sum(1, keepdim=True) - 1
        got = sess.run(None, {"input_ids": new.numpy(), "attention_mask": mask.numpy(),
                              **dict(zip(sig.past_names(), past, strict=True))})
        with torch.no_grad():
            want = model(new, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        torch.testing.assert_close(torch.from_numpy(got[0]), want.logits, atol=1e-4, rtol=1e-4)
        past, cache = got[len(sig.outputs) - len(sig.past_names()):], want.past_key_values
        assert past[0].shape == (2, 2, mask.shape[1], 16)


def test_gpt2_fused_and_plain_both_verify(exported):
    fused_model, fused = exported("gpt2", kv_cache=True)
    plain_model, plain = exported("gpt2", kv_cache=True, fuse=False)
    f, p = ops(fused), ops(plain)
    assert f["GroupQueryAttention"] == 2 and f["SkipLayerNormalization"] >= 3 and "Softmax" not in f
    assert "GroupQueryAttention" not in p and p["Softmax"] == 2
    assert sum(f.values()) < sum(p.values())
    assert ox.is_fused(fused) and not ox.is_fused(plain)
    assert ox.verify_onnx(fused_model, fused, kv_cache=True).fused
    assert not ox.verify_onnx(plain_model, plain, kv_cache=True).fused
    # same inputs and outputs, so a runtime feeds either
    names = [[i.name for i in ort.InferenceSession(str(x), providers=["CPUExecutionProvider"]).get_inputs()]
             for x in (fused, plain)]
    assert names[0] == names[1]


def test_bert_packed_attention_padded(exported):
    """BERT's q, k, v come from one biased projection: each layer is one packed com.microsoft.Attention
    (x, W, b, the padding mask as attention_bias), exact against PyTorch on a padded batch."""
    model, path = exported("bert-base")
    got = ops(path)
    assert got["Attention"] == 2 and "MultiHeadAttention" not in got and "Split" not in got
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = ox.example_inputs(model, ox.signature(model), 3, 11, seed=9, pad=4)
    got = sess.run(None, {k: v.numpy() for k, v in feed.items()})
    with torch.no_grad():
        want = model(**feed)
    keep = feed["attention_mask"].bool()
    torch.testing.assert_close(torch.from_numpy(got[2])[keep], want.last_hidden_state[keep], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(got[0])[keep], want.head_outputs["mlm"][keep], atol=1e-4, rtol=1e-4)


def test_tied_embeddings_stored_once(exported):
    model, path = exported("gpt2", kv_cache=True)  # GPT-2 ties the LM head to the token embedding
    from onnx import numpy_helper

    table = model.embed.token.weight.detach().numpy()
    copies = [t.name for t in onnx.load(str(path)).graph.initializer
              for a in [numpy_helper.to_array(t)] if a.shape in (table.shape, table.T.shape)
              and (np.array_equal(a, table) or np.array_equal(a, table.T))]
    assert len(copies) == 1, copies


def test_plans_say_why_a_block_stays_plain():
    glm = pg.build(load_spec(tiny("glm")), device="meta")
    assert all(f.op is None and "prefix" in f.why for f in onnx_fuse.fusion_plan(glm))
    xl = pg.build(load_spec(tiny("transformer-xl")), device="meta")
    assert all(f.op is None and "relative" in f.why for f in onnx_fuse.fusion_plan(xl))
    bert = pg.build(load_spec(tiny("bert-base")), device="meta")
    assert {f.op for f in onnx_fuse.fusion_plan(bert)} == {"com.microsoft.MultiHeadAttention"}


def test_relative_tolerance_reported_per_output(tmp_path):
    """Large logits (std ~ 3): judged on their scale by the relative part; every output says how much
    of the tolerance it used; with no room at all the same graph fails, naming the output."""
    big = pg.build(load_spec(tiny("llama2-70b", layers=1)), seed=0).eval()
    with torch.no_grad():
        for name, p in big.named_parameters():
            if p.dim() == 2:
                p.mul_(3.0 if not name.startswith("heads.") else 24.0)
    big_path = tmp_path / "big.onnx"
    pg.export_onnx(big, big_path, verify=False)
    feed = ox.example_inputs(big, ox.signature(big), 1, 5)
    with torch.no_grad():
        assert big(**feed).logits.std() > 1.0
    report = ox.verify_onnx(big, big_path)
    assert set(report.per_output()) == {"logits", "last_hidden_state"}
    assert all(0.0 <= c.tolerance_used <= 1.0 for c in report.checks)
    with pytest.raises(ExportError, match="'logits' differs from PyTorch .* > atol 1e-12 \\+ rtol 0"):
        ox.verify_onnx(big, big_path, atol=1e-12, rtol=0.0)


def test_cli_no_fuse_writes_the_plain_graph(tmp_path):
    out = tmp_path / "plain.onnx"
    r = CliRunner().invoke(app, ["export", "gpt2", "-O", "layers=1,hidden=32,heads=2,ffn=64,vocab=64,max_positions=32",
                                 "-o", str(out), "--no-fuse", "--json"])
    assert r.exit_code == 0, r.output
    assert out.exists() and not ox.is_fused(out)


@pytest.mark.parametrize(("spec", "kv_cache"), [("gpt2", True), ("llama2-70b", True), ("bert-base", False)])
def test_every_output_of_a_fused_graph_is_typed(exported, spec, kv_cache):
    """The rewrites after ONNX Runtime's optimizer (skip norms, the tied head's FusedMatMul, packed
    attention) make new nodes; the graph outputs they produce keep an element type (not 0, undefined),
    the one ONNX Runtime reports."""
    _, path = exported(spec, kv_cache=kv_cache)
    outputs = onnx.load(str(path), load_external_data=False).graph.output
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in outputs
               if not o.name.startswith("present.")), [(o.name, o.type.tensor_type.elem_type) for o in outputs]
    assert all(o.type.tensor_type.elem_type != onnx.TensorProto.UNDEFINED for o in outputs)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert {o.name: o.type for o in sess.get_outputs()} == {
        o.name: f"tensor({onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)})".replace(
            "float32", "float") for o in outputs}


def _session_ops(path, tmp_path) -> collections.Counter:
    """The op histogram of the graph an ONNX Runtime session runs (its own fusions applied at load)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "session.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return ops(tmp_path / "session.onnx")


def test_layer_norms_plain_and_not_fused_again(exported, tmp_path):
    """In a graph without a cache LayerNorm + residual stays Add + LayerNormalization (post-norm BERT:
    Add(Add(x, skip), bias), the order ONNX Runtime's skip fusion does not match; Sum(x, skip) without a
    bias), and a session loading the file does not fuse them back; a cached graph keeps
    SkipLayerNormalization, RMSNorm SkipSimplifiedLayerNormalization."""
    _, gpt2 = exported("gpt2")
    _, gpt2_cached = exported("gpt2", kv_cache=True)
    _, bert = exported("bert-base")
    _, llama = exported("llama2-70b", kv_cache=True)
    g, gc, b, ll = (_session_ops(p, tmp_path) for p in (gpt2, gpt2_cached, bert, llama))
    assert g["LayerNormalization"] == 5 and "SkipLayerNormalization" not in g
    assert gc["SkipLayerNormalization"] == 5 and "LayerNormalization" not in gc
    # 2 layers x 2, the embeddings' (Sum(words + positions, token types)) and the MLM transform's
    assert b["LayerNormalization"] == 6 and "SkipLayerNormalization" not in b and b["Sum"] == 1
    assert ll["SkipSimplifiedLayerNormalization"] == 4


def test_skip_norms_and_multi_head_attention_on_request(exported, tmp_path):
    """``fuse_skip_norms(plain_layer_norms=False, pack_attention=False)`` (what an encoder-decoder
    folder asks for, `onnx_seq2seq`) fuses the norms into SkipLayerNormalization and keeps
    MultiHeadAttention; the graph still matches PyTorch on a padded batch."""
    model, _ = exported("bert-base")
    path = tmp_path / "bert.onnx"
    sig = ox.signature(model)
    ox.export_graph(model, path, sig)
    ox.optimize_graph(path)
    done = onnx_fuse.fuse_skip_norms(path, plain_layer_norms=False, pack_attention=False)
    got = ops(path)
    assert got["MultiHeadAttention"] == 2 and "Attention" not in got and got["SkipLayerNormalization"] >= 4
    assert done["packed_attention"] == 0 and done["unfused_layer_norms"] == 0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = ox.example_inputs(model, sig, 3, 11, seed=9, pad=4)
    out = sess.run(None, {k: v.numpy() for k, v in feed.items()})
    with torch.no_grad():
        want = model(**feed)
    keep = feed["attention_mask"].bool()
    torch.testing.assert_close(torch.from_numpy(out[2])[keep], want.last_hidden_state[keep], atol=1e-4, rtol=1e-4)
