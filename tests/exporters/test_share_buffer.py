"""The shared key/value buffer of fused cached graphs (`onnx_fuse.shares_buffer`): ONNX Runtime GenAI's
``past_present_share_buffer: true`` (GenAI allocates past/present of ``max_length`` once and
GroupQueryAttention writes the new positions in place) and `plmgraph.runtime`'s generation loop on it.

Folders come from tests/deploy_models.py (tiny LLaMA and GPT-2, fused); the reference is plmgraph's
PyTorch `generate` (checked against transformers' in tests/train)."""

from __future__ import annotations

import json

import deploy_models
import numpy as np
import onnx_ir as ir
import pytest
from plmgraph.exporters import onnx as ox
from plmgraph.exporters import onnx_fuse

from plmgraph.runtime import OrtModel, _Stepper
from plmgraph.train.generate import generate

og = pytest.importorskip("onnxruntime_genai")
EQUAL = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
LEFT_PADDED = [[5, 6, 7, 8, 9, 10, 11], [40, 41, 42], [100, 3, 250, 17, 9]]


def genai_tokens(folder, prompts, max_length: int = 17) -> list[list[int]]:
    m = og.Model(str(folder))
    params = og.GeneratorParams(m)
    params.set_search_options(do_sample=False, max_length=max_length, batch_size=len(prompts))
    gen = og.Generator(m, params)
    gen.append_tokens(np.array(prompts, np.int32))
    while not gen.is_done():
        gen.generate_next_token()
    return [[int(t) for t in gen.get_sequence(i)] for i in range(len(prompts))]


def test_fused_folder_shares_its_buffer_and_verifies_on_one():
    model, folder = deploy_models.folder("llama2-7b")
    path = folder / "model.onnx"
    assert onnx_fuse.shares_buffer(path)
    assert json.loads((folder / "genai_config.json").read_text())["search"]["past_present_share_buffer"] is True
    assert OrtModel(folder).share_buffer  # the graph's metadata says so (a bare .onnx too)
    assert OrtModel(path).share_buffer
    report = ox.verify_onnx(model, path, kv_cache=True)
    shared = [c for c in report.checks if "shared buffer" in c.case]
    assert {c.output for c in shared} >= {"logits", "present.0.key", "present.1.value"}
    assert {c.case.split(",")[1].strip() for c in shared} >= {"past 0", "past 35", "past 36"}  # prefill, 2 steps
    assert report.tolerance_used <= 1.0


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_genai_on_the_shared_buffer_generates_pytorchs_greedy_tokens(name):
    model, folder = deploy_models.folder(name)
    assert json.loads((folder / "genai_config.json").read_text())["search"]["past_present_share_buffer"] is True
    for prompts in (EQUAL[:1], EQUAL):  # batch 1, and rows of one length (GenAI 0.18 gets left padding wrong)
        want = generate(model, deploy_models.tokenizer(), prompts, 12, temperature=0.0)
        for i, got in enumerate(genai_tokens(folder, prompts)):
            assert got == want[i, :len(got)].tolist() and len(got) > 10


def test_a_graph_that_reads_the_cache_does_not_share(tmp_path):
    """The plain graph concatenates past and new: not marked, genai_config says false, and on a shared
    buffer GenAI would get it wrong (shown: forcing the flag breaks its tokens).  A fused graph with
    one more reader of a cache input (its shape, say) is not marked either."""
    from plmgraph.exporters.onnx_folder import export_folder

    model = deploy_models.model("llama2-7b")
    folder = tmp_path / "plain"
    export_folder(model, folder, tokenizer=deploy_models.tokenizer(), fuse=False, verify=False)
    assert not onnx_fuse.shares_buffer(folder / "model.onnx") and not OrtModel(folder).share_buffer
    cfg = json.loads((folder / "genai_config.json").read_text())
    assert cfg["search"]["past_present_share_buffer"] is False
    want = generate(model, deploy_models.tokenizer(), EQUAL[:1], 12, temperature=0.0)[0].tolist()
    assert genai_tokens(folder, EQUAL[:1])[0] == want[:17]  # as exported: right
    cfg["search"]["past_present_share_buffer"] = True
    (folder / "genai_config.json").write_text(json.dumps(cfg))
    try:
        wrong = genai_tokens(folder, EQUAL[:1])[0] != want[:17]
    except Exception:  # noqa: BLE001  (GenAI may refuse the present's shape instead)
        wrong = True
    assert wrong

    _, fused = deploy_models.folder("llama2-7b")
    m = ir.load(str(fused / "model.onnx"))
    past = next(v for v in m.graph.inputs if v.name == "past_key_values.0.key")
    shape = ir.node("Shape", [past])
    m.graph.append(shape)
    m.graph.outputs.append(shape.outputs[0])
    assert onnx_fuse.shares_buffer(fused / "model.onnx") and not onnx_fuse.shares_buffer(m)


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_runtime_generates_on_one_buffer_in_place(name):
    model, folder = deploy_models.folder(name)
    m, tok = OrtModel(folder), deploy_models.tokenizer()
    want = generate(model, tok, LEFT_PADDED, 12, temperature=0.0).numpy()
    np.testing.assert_array_equal(m.generate(LEFT_PADDED, 12, temperature=0.0), want)
    step = _Stepper(m, 3, 10)
    ids = np.array([[0, 0, 5, 6], [7, 8, 9, 10], [0, 11, 12, 13]])
    mask = (ids != 0).astype(np.int64)
    buffers = list(step.buffers)
    a = step(ids, mask, ids)
    b = step(np.array([[1], [2], [3]]), np.concatenate([mask, np.ones((3, 1), np.int64)], 1), ids)
    assert step.presents is None and [x is y for x, y in zip(step.buffers, buffers, strict=True)] == [True] * 4
    assert buffers[0].shape() == [3, 4, 10, 16]
    assert np.abs(buffers[0].numpy()[:, :, :5]).sum(-1).min() > 0 and not buffers[0].numpy()[:, :, 5:].any()
    m.share_buffer = False  # the same steps with the cache concatenated: the same logits
    plain = _Stepper(m, 3, 10)
    assert plain.buffers is None
    np.testing.assert_allclose(plain(ids, mask, ids), a, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(plain(np.array([[1], [2], [3]]), np.concatenate([mask, np.ones((3, 1), np.int64)], 1),
                                     ids), b, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(m.generate(LEFT_PADDED, 12, temperature=0.0), want)
