"""Deploy folders in fp16, int8 and int4 (`plmgraph export ... -o DIR --kv-cache --precision P`,
exporters/onnx_quant.py): each, fused and plain, is written, loads in ONNX Runtime and in ONNX Runtime
GenAI and generates; its perplexity on held-out text (pydoc_data.topics) stays within the precision's
bound of PyTorch fp32's; refusals and failures leave nothing behind.

The model is a tiny LLaMA-like decoder trained briefly on pydoc_data.topics (a random model's perplexity
is the vocabulary size whatever the precision, which would let any conversion pass).
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import onnx
import pytest
import torch
from helpers import tiny
from plmgraph.exporters import onnx_folder, onnx_quant
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, export_cmds  # noqa: F401  (registers `export`)
from plmgraph.errors import ExportError
from plmgraph.runtime import OrtModel
from plmgraph.train.evaluate import perplexity

og = pytest.importorskip("onnxruntime_genai")
VOCAB = 300
PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]


@functools.cache
def trained() -> tuple[object, object]:
    """A 2-layer LLaMA-like model (hidden 64) and its tokenizer, 150 AdamW steps on pydoc topics
    (the last 10 topics in sorted order, which `held_out_ids` reads, are not trained on)."""
    from pydoc_data.topics import topics

    from plmgraph.train.tokenizer import train_tokenizer

    spec = tiny("llama2-7b", vocab=VOCAB)
    texts = [topics[k].strip() for k in sorted(topics)[:30]]
    tok = train_tokenizer(texts, spec, vocab_size=VOCAB)
    ids = torch.tensor([t for text in texts for t in tok.encode(text)])
    torch.manual_seed(0)
    model = pg.build(spec, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(150):
        at = torch.randint(0, len(ids) - 65, (8,), generator=g)
        x = torch.stack([ids[a:a + 64] for a in at])
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


@functools.cache
def folder(tmp: str, precision: str, fuse: bool) -> tuple[object, object]:
    """(export report, folder) of the trained model, once per test process."""
    from pathlib import Path

    model, tok = trained()
    out = Path(tmp) / f"{'fused' if fuse else 'plain'}-{precision}"
    return onnx_folder.export_folder(model, out, tokenizer=tok, fuse=fuse, precision=precision), out


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("precision"))


CASES = [(p, f) for f in (True, False) for p in ("fp16", "int8", "int4")]


@pytest.mark.parametrize(("precision", "fuse"), CASES, ids=[f"{p}-{'fused' if f else 'plain'}" for p, f in CASES])
def test_each_precision_exports_loads_in_ort_and_genai_and_generates(root, precision, fuse):
    report, out = folder(root, precision, fuse)
    model, tok = trained()
    v = report.verification
    assert isinstance(v, onnx_quant.PrecisionReport) and v.precision.name == precision and v.fused == fuse
    graph = onnx.load(str(out / "model.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    assert ("GroupQueryAttention" in ops) == fuse  # converted after fusion: the fused kernels are kept
    weights = 2 * 4 + 1  # per layer qkv, out, gate+up, down; the LM head
    past = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input if i.name.startswith("past_key")}
    if precision == "fp16":
        assert set(past.values()) == {onnx.TensorProto.FLOAT16}
        matrices = {t.data_type for t in graph.graph.initializer if len(t.dims) == 2}
        assert matrices == {onnx.TensorProto.FLOAT16}
    else:
        assert set(past.values()) == {onnx.TensorProto.FLOAT}
        assert ops.count("MatMulInteger" if precision == "int8" else "MatMulNBits") == weights
        assert "MatMul" not in ops or not fuse  # the plain graph keeps its two activation x activation MatMuls
    assert {o.name: o.type.tensor_type.elem_type for o in graph.graph.output}["logits"] == onnx.TensorProto.FLOAT
    genai = json.loads((out / "genai_config.json").read_text())
    assert genai["search"]["past_present_share_buffer"] == fuse  # a converted fused graph keeps GenAI's shared buffer
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dtype"] == ("float16" if precision == "fp16" else "float32")
    assert cfg["onnx_precision"]["precision"] == precision
    if precision == "int4":
        assert (cfg["onnx_precision"]["block_size"], cfg["onnx_precision"]["symmetric"]) == (32, False)
    # The verification is a bound, stated as such, and the conversion changed something
    tol = onnx_quant.TOLERANCES[precision]
    assert 0 < v.max_rel_diff <= tol.rel and v.ppl_ratio <= tol.ppl_ratio
    assert {c.output for c in v.checks} == {o.name for o in graph.graph.output}  # every output, cache included
    assert ("quantized" if precision != "fp16" else "float16") in v.summary()
    # GenAI loads the folder and generates what ONNX Runtime's own cached loop (plmgraph.runtime) does
    m = og.Model(str(out))
    params = og.GeneratorParams(m)
    params.set_search_options(do_sample=False, max_length=17, batch_size=2)
    gen = og.Generator(m, params)
    gen.append_tokens(np.array(PROMPTS, np.int32))
    while not gen.is_done():
        gen.generate_next_token()
    want = OrtModel(out).generate(PROMPTS, 12, temperature=0.0, ignore_eos=True)
    for i in range(2):
        got = [int(t) for t in gen.get_sequence(i)]
        assert len(got) > 10 and got == want[i, :len(got)].tolist()
    if precision == "fp16":  # and for fp16, PyTorch's own greedy tokens
        from plmgraph.train.generate import generate

        torch_ids = generate(model, tok, PROMPTS, 12, temperature=0.0, eos_token_id=-1)
        assert want.tolist() == torch_ids.tolist()


def test_perplexity_bounds_hold_and_are_measured_against_pytorch(root):
    model, tok = trained()
    ids, text = onnx_quant.held_out_ids(model, tok)
    assert text.startswith("pydoc_data.topics") and len(ids) == onnx_quant.HELD_OUT_TOKENS
    want = perplexity(model, ids, window=onnx_quant.ppl_window(model))
    assert want["perplexity"] < VOCAB / 4  # trained: far from a random model's ~VOCAB
    ratios = {}
    for precision in ("fp16", "int8", "int4"):
        v = folder(root, precision, True)[0].verification
        assert math.isclose(v.ppl_torch, want["perplexity"], rel_tol=1e-9) and v.ppl_tokens == len(ids) - 1
        assert v.ppl_ratio <= onnx_quant.TOLERANCES[precision].ppl_ratio
        ratios[precision] = v.ppl_ratio
    assert abs(ratios["fp16"] - 1) < 1e-3
    assert ratios["int4"] != 1.0 and ratios["int8"] != 1.0  # the quantized graphs are not the fp32 one


def test_ort_perplexity_is_pytorchs_on_the_fp32_graph(tmp_path):
    """The sliding window in ONNX Runtime is the same computation as plmgraph.train.evaluate.perplexity."""
    import onnxruntime as ort

    model, tok = trained()
    ids, _ = onnx_quant.held_out_ids(model, tok, tokens=300)
    out = tmp_path / "fp32"
    onnx_folder.export_folder(model, out, tokenizer=tok, verify=False)
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for window, stride in ((64, 32), (40, 7)):
        got = onnx_quant.ort_perplexity(sess, ids, window, stride)
        want = perplexity(model, ids, window=window, stride=stride)
        assert got["tokens"] == want["tokens"] == 299
        assert math.isclose(got["perplexity"], want["perplexity"], rel_tol=1e-4)


def test_a_graph_over_its_bound_is_refused_and_nothing_is_written(root, tmp_path, monkeypatch):
    model, tok = trained()
    _, out = folder(root, "int8", True)  # (exported under the real bounds)
    monkeypatch.setitem(onnx_quant.TOLERANCES, "int8", onnx_quant.Tolerance(rel=1.0, ppl_ratio=1.00001))
    with pytest.raises(ExportError, match=r"int8 graph's perplexity is .* ratio 1\.\d+, over the int8 bound 1\.00001"):
        onnx_folder.export_folder(model, tmp_path / "deploy", tokenizer=tok, precision="int8")
    assert list(tmp_path.iterdir()) == []
    ids, text = onnx_quant.held_out_ids(model, tok, tokens=200)
    with pytest.raises(ExportError, match=r"int8 graph's output 'logits' differs from PyTorch fp32 on batch 1, past "
                                          r"0, seq 5 by .* of its largest magnitude .* over the int8 bound 1e-06"):
        onnx_quant.verify_precision(model, out / "model.onnx", onnx_quant.precision("int8"), ids, text,
                                    tolerance=onnx_quant.Tolerance(rel=1e-6, ppl_ratio=2.0))


def test_a_tied_head_is_untied_and_quantized_and_a_folder_without_tokenizer_samples_its_text(tmp_path):
    import deploy_models

    model = deploy_models.model("gpt2")  # tied LM head: FusedMatMul(x, E, transB) in the fused graph
    report = onnx_folder.export_folder(model, tmp_path / "gpt2", precision="int8")
    v = report.verification
    assert v.converted["untied heads"] == 1 and v.converted["MatMulInteger"] == 2 * 4 + 1
    assert v.ppl_text.startswith("tokens sampled from the PyTorch model")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "gpt2" / "model.onnx")).graph.node]
    assert "FusedMatMul" not in ops and "GroupQueryAttention" in ops
    m = og.Model(str(tmp_path / "gpt2"))
    params = og.GeneratorParams(m)
    params.set_search_options(do_sample=False, max_length=12, batch_size=1)
    gen = og.Generator(m, params)
    gen.append_tokens(np.array(PROMPTS[:1], np.int32))
    while not gen.is_done():
        gen.generate_next_token()
    assert len(gen.get_sequence(0)) == 12


def test_precisions_that_cannot_work_are_refused(tmp_path):
    model, tok = trained()
    with pytest.raises(ExportError, match=r"--precision int8: bert-base is an encoder; converted "
                                          r"precisions are written for decoder deploy folders"):
        onnx_folder.export_folder(pg.build(tiny("bert-base")), tmp_path / "bert", kv_cache=False, precision="int8")
    with pytest.raises(ExportError, match=r"int4 --block-size 128: the block must divide the input width of every "
                                          r"linear layer .*\(64, 128\); 64 is not a multiple of 128; block sizes "
                                          r"that fit: 16, 32, 64"):
        onnx_folder.export_folder(model, tmp_path / "d", precision=onnx_quant.precision("int4", 128))
    with pytest.raises(ExportError, match=r"int4 block size 24 is not one of 16, 32, 64, 128, 256"):
        onnx_quant.precision("int4", 24)
    with pytest.raises(ExportError, match=r"--block-size / --symmetric are int4's .* precision int8 has none"):
        onnx_quant.precision("int8", 32)
    with pytest.raises(ExportError, match=r"precision 'int3' is not one of fp32, fp16, int8, int4"):
        onnx_quant.precision("int3")
    assert list(tmp_path.iterdir()) == []


def test_cli_precision_and_its_refusals(tmp_path):
    model, tok = trained()
    ck = tmp_path / "ck"
    pg.save(model, ck)
    tok.save(ck / "tokenizer.json")
    r = CliRunner().invoke(app, ["export", str(ck), "-o", str(tmp_path / "d"), "--kv-cache", "--precision", "int4",
                                 "--block-size", "16", "--symmetric", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)["verification"]
    assert (got["precision"], got["block_size"], got["symmetric"]) == ("int4", 16, True)
    assert got["perplexity"]["ratio"] <= onnx_quant.TOLERANCES["int4"].ppl_ratio
    assert set(got["per_output"]) >= {"logits", "present.0.key"}
    for args, message in ((["-o", str(tmp_path / "m.onnx"), "--kv-cache", "--precision", "int8"],
                           "written for deploy folders"),
                          (["-o", str(tmp_path / "e"), "--kv-cache", "--precision", "int4", "--block-size", "48"],
                           "int4 block size 48 is not one of"),
                          (["-o", str(tmp_path / "e"), "--kv-cache", "--precision", "bf16"],
                           "precision 'bf16' is not one of")):
        r = CliRunner().invoke(app, ["export", str(ck), *args])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "d"]
