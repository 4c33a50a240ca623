"""ONNX export of a multiple-choice model (``head/multiple_choice``): the graph takes [batch, choices,
seq] inputs and returns [batch, choices] scores, verified against PyTorch by `verify_onnx` (other
batch, choice and sequence sizes than the export's, one candidate padded), and its scores equal those
of the tiny random Hugging Face ``BertForMultipleChoice`` it was imported from; Optimum's
``ORTModelForMultipleChoice`` loads its export folder and gives the same scores."""

import json
import os
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import torch
from plmgraph.exporters import onnx as ox

import plmgraph as pg

tf = pytest.importorskip("transformers", reason="the reference models need the test extra: pip install -e '.[test]'")


def _imported(tmp_path):
    """A tiny random BertForMultipleChoice (weights at std 0.3) and plmgraph's import of it."""
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64)
    hf = tf.BertForMultipleChoice(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3)
    hf.save_pretrained(tmp_path / "hf")
    return hf, pg.from_hf(tmp_path / "hf").eval()


@pytest.mark.parametrize("fuse", [True, False])
def test_multiple_choice_exports_with_choices_axis_and_matches_hf(tmp_path, fuse):
    hf, model = _imported(tmp_path)
    path = ox.export_onnx(model, tmp_path / "mc.onnx", fuse=fuse)  # verified against PyTorch (verify=True)
    report = ox.verify_onnx(model, path)
    assert {c.shape for c in report.checks if c.output == "logits"} == {(1, 2), (3, 4)}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [
        (n, ["batch", "choices", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    B, C, T = 2, 3, 7
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 113, (B, C, T), generator=g)
    types = torch.zeros(B, C, T, dtype=torch.long)
    types[..., 4:] = 1
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[1, 2, -3:] = 0  # one padded candidate
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    got = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                "token_type_ids": types.numpy()})[0]
    assert got.shape == (B, C) and float(want.abs().max()) > 0.1
    torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4)
    assert not np.allclose(got[:, 0], got[:, 1])


OPTIMUM = os.environ.get("PLMGRAPH_OPTIMUM_PYTHON")


@pytest.mark.skipif(not OPTIMUM, reason="PLMGRAPH_OPTIMUM_PYTHON names no interpreter with optimum-onnx")
def test_optimum_multiple_choice_loads_the_folder(tmp_path):
    from plmgraph.exporters.onnx_folder import export_folder

    hf, model = _imported(tmp_path)
    report = export_folder(model, tmp_path / "deploy", kv_cache=False)
    assert "config.json" in report.files
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(0, 113, (2, 3, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 2, -3:] = 0
    types = torch.zeros_like(ids)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    script = ("import json, sys, torch\nfrom optimum.onnxruntime import ORTModelForMultipleChoice\n"
              "m = ORTModelForMultipleChoice.from_pretrained(sys.argv[1])\n"
              "a = [torch.tensor(json.loads(x)) for x in sys.argv[2:5]]\n"
              "print(json.dumps(m(input_ids=a[0], attention_mask=a[1], token_type_ids=a[2]).logits.tolist()))\n")
    r = subprocess.run([OPTIMUM, "-c", script, str(tmp_path / "deploy"), *(json.dumps(x.tolist()) for x in
                                                                            (ids, mask, types))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.tensor(json.loads(r.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
