"""Parity of ``modernbert`` (issue 11): global attention every third layer, bidirectional local attention
over ±local_attention / 2 tokens elsewhere with its own rotary base, layer 0 without an attention norm, the
fused Wqkv / Wi, bias-free LayerNorms, the MLM head's bias-free dense.  A tiny random model in fp32 with
HF's eager attention: padding, the HF round trip."""

import pytest
import torch
import transformers as tf
from parity_util import check_bare, check_encoder, randomize, roundtrip, save_and_import

V = 113
# 4 tokens of local attention (±2) over 7: the local layers see less than the global ones
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=40,
             max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
             sep_token_id=2, local_attention=4, global_attn_every_n_layers=3, global_rope_theta=1000.0,
             local_rope_theta=10.0, attn_implementation="eager", reference_compile=False)


def _pair(arch, tmp_path, **kw):
    torch.manual_seed(0)
    hf = getattr(tf, arch)(tf.ModernBertConfig(**(SMALL | kw)))
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / arch)


def test_modernbert_model(tmp_path):
    hf, model = _pair("ModernBertModel", tmp_path)
    s, g = model.spec, model.graph
    assert s.family == "encoder" and not s.encoder.first_attn_norm and s.embeddings.norm.bias is False
    assert [(e.window, e.rope and e.rope.theta) for e in s.encoder.pattern] == [(None, None), (3, 10.0), (3, 10.0)]
    assert "encoder.layers.0.attn_norm" not in g and "encoder.layers.1.attn_norm" in g
    assert [g.node(f"encoder.layers.{i}.attn")["attrs"]["window"] for i in range(4)] == [None, 3, 3, None]
    check_bare(hf, model, V)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("extra", [{}, dict(classifier_bias=True, decoder_bias=False, norm_bias=True,
                                            attention_bias=True, mlp_bias=True, classifier_activation="silu")])
def test_modernbert_masked_lm(tmp_path, extra):
    hf, model = _pair("ModernBertForMaskedLM", tmp_path, **extra)
    h = model.spec.heads[0]
    assert h.kind == "mlm" and h.tie_embeddings and h.transform.bias == extra.get("classifier_bias", False)
    check_encoder(hf, model, V, {"mlm": "logits"})
    roundtrip(hf, model, tmp_path)


def test_modernbert_same_bases_need_no_rope_and_odd_windows_are_refused(tmp_path):
    from plmgraph.compile.hf_types import config_to_spec
    from plmgraph.errors import ConversionError

    hf, model = _pair("ModernBertModel", tmp_path, local_rope_theta=1000.0)
    assert all(e.rope is None for e in model.spec.encoder.pattern)
    check_bare(hf, model, V)
    roundtrip(hf, model, tmp_path)
    cfg = hf.config.to_dict() | {"local_attention": 5, "layer_types": None, "architectures": ["ModernBertModel"]}
    with pytest.raises(ConversionError, match="local_attention = 5 is odd"):
        config_to_spec(cfg)


@pytest.mark.parametrize("extra", [dict(classifier_pooling="cls"),
                                   dict(classifier_pooling="mean", classifier_bias=True, classifier_activation="silu")])
def test_modernbert_sequence_classification(tmp_path, extra):
    hf, model = _pair("ModernBertForSequenceClassification", tmp_path, num_labels=3, **extra)
    p = model.spec.pooler
    assert (p.kind, p.dense, p.norm, p.bias) == (extra["classifier_pooling"], True, True,
                                                 extra.get("classifier_bias", False))
    check_encoder(hf, model, V, {"sequence_classification": "logits"})
    roundtrip(hf, model, tmp_path)
