"""ONNX export of the relative-attention encoders added with deberta-v2 and mpnet: DeBERTa's disentangled
attention (plain in the fused graph) and MPNet's T5 bias beside learned positions (ORT's MultiHeadAttention
with the bias), each imported from a tiny random Hugging Face model, exported, and verified in ONNX Runtime
on shapes other than the export shape (the long one, 35 tokens, reaches the log-bucketed distances)."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("transformers", reason="the reference models need the test extra: pip install -e '.[test]'")
import torch  # noqa: E402
from plmgraph.exporters import onnx as ox  # noqa: E402
from plmgraph.exporters.onnx_fuse import fusion_plan  # noqa: E402

import plmgraph as pg  # noqa: E402

SMALL = dict(vocab_size=91, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
             max_position_embeddings=64)
CASES = {
    "deberta-v3": (tf.DebertaV2ForMaskedLM, tf.DebertaV2Config(
        **SMALL, relative_attention=True, position_buckets=8, max_relative_positions=16, pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False), None),
    "deberta-v2 absolute + c2p": (tf.DebertaV2ForSequenceClassification, tf.DebertaV2Config(
        **SMALL, relative_attention=True, pos_att_type="c2p", share_att_key=False, position_biased_input=True,
        num_labels=3), None),
    "mpnet": (tf.MPNetForMaskedLM, tf.MPNetConfig(**SMALL), "com.microsoft.MultiHeadAttention"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_relative_encoders_export_and_verify(tmp_path, case):
    cls, cfg, kernel = CASES[case]
    torch.manual_seed(0)
    hf = cls(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = pg.from_hf(tmp_path / "hf")
    assert {f.op for f in fusion_plan(model)} == {kernel}  # DeBERTa: plain; MPNet: fused with the bias
    path = pg.export_onnx(model, tmp_path / "m.onnx", verify=True)
    report = ox.verify_onnx(model, path)
    shapes = {c.shape[:2] for c in report.checks if c.output in ("logits", "last_hidden_state")}
    assert (2, 16) not in shapes and {s[0] for s in shapes} >= {1, 3} and max(s[1] for s in shapes) > 16
    assert report.max_abs_diff < 1e-4
