"""Parity of ``modernbert`` (issue 11): global attention every third layer, bidirectional local attention
over ±local_attention / 2 tokens elsewhere with its own rotary base, layer 0 without an attention norm, the
fused Wqkv / Wi, bias-free LayerNorms, the MLM head's bias-free dense, the classifiers' prediction head
(dense, activation, LayerNorm: a pooler for sequences and candidates, a per-token transform for token
classification and question answering).  A tiny random model in fp32 with
HF's eager attention: padding, the HF round trip."""

import pytest
import torch
import transformers as tf
from parity_util import B, T, check_bare, check_encoder, close, ids, randomize, right_padded, roundtrip, save_and_import

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


HEAD_VARIANTS = [{}, dict(classifier_bias=True, norm_bias=True, classifier_activation="silu")]


@pytest.mark.parametrize("extra", HEAD_VARIANTS)
def test_modernbert_token_classification(tmp_path, extra):
    hf, model = _pair("ModernBertForTokenClassification", tmp_path, num_labels=5, **extra)
    h = model.spec.heads[0]
    assert h.kind == "token_classification" and h.labels == 5 and model.spec.pooler is None
    assert (h.transform.activation, h.transform.norm, h.transform.bias) == (
        extra.get("classifier_activation", "gelu"), True, extra.get("classifier_bias", False))
    assert "heads.token_classification.norm.weight" in model.state_dict()
    check_encoder(hf, model, V, {"token_classification": "logits"})
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("extra", HEAD_VARIANTS)
@torch.no_grad()
def test_modernbert_question_answering(tmp_path, extra):
    hf, model = _pair("ModernBertForQuestionAnswering", tmp_path, **extra)
    h = model.spec.heads[0]
    assert h.kind == "question_answering" and h.transform.bias == extra.get("classifier_bias", False)
    x, mask = ids(V), right_padded()
    ref, out = hf(input_ids=x, attention_mask=mask), model(x, attention_mask=mask)
    assert out.logits.shape == (B, T, 2)
    close(out.logits[..., 0], ref.start_logits, "start_logits", mask)
    close(out.logits[..., 1], ref.end_logits, "end_logits", mask)
    pos = torch.tensor([[1, 3], [2, 5]])
    close(model(x, labels=pos).loss, hf(input_ids=x, start_positions=pos[:, 0], end_positions=pos[:, 1]).loss,
          "span loss")
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("extra", [dict(classifier_pooling="cls"),
                                   dict(classifier_pooling="mean", classifier_bias=True, classifier_activation="silu")])
@torch.no_grad()
def test_modernbert_multiple_choice(tmp_path, extra):
    hf, model = _pair("ModernBertForMultipleChoice", tmp_path, **extra)
    p = model.spec.pooler
    assert [h.kind for h in model.spec.heads] == ["multiple_choice"]
    # HF's multiple-choice cls is the first kept token (the mask's argmax): plmgraph's pool/first
    assert (p.kind, p.dense, p.norm, p.bias) == ({"cls": "first"}.get(extra["classifier_pooling"], "mean"), True,
                                                 True, extra.get("classifier_bias", False))
    C = 3
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, -2:] = 0  # one right-padded candidate
    mask[1, 2, :3] = 0  # one left-padded: its cls is token 3
    ref, out = hf(input_ids=x, attention_mask=mask), model(x, attention_mask=mask)
    assert out.logits.shape == (B, C)
    close(out.logits, ref.logits, "choice scores")
    labels = torch.tensor([2, 0])
    close(model(x, attention_mask=mask, labels=labels).loss,
          hf(input_ids=x, attention_mask=mask, labels=labels).loss, "loss")
    roundtrip(hf, model, tmp_path)


def test_modernbert_classifier_transform_is_refused_where_it_cannot_be_written(tmp_path):
    from pydantic import ValidationError

    import plmgraph as pg
    from plmgraph.eject import eject
    from plmgraph.errors import ConversionError
    from plmgraph.kinds import NotCompiledYet

    base = {"name": "t", "family": "encoder",
            "sizes": {"vocab": 50, "hidden": 16, "layers": 1, "heads": 2, "ffn": 32, "max_positions": 16}}
    tagger = {"kind": "token_classification", "labels": 3, "transform": {"activation": "gelu"}}
    spec = pg.ModelSpec.model_validate(base | {"heads": [tagger]})
    with pytest.raises(NotCompiledYet, match="cannot be ejected with a transform"):
        eject(spec)
    # a BERT-like tagger with a transform is no BertForTokenClassification (nor ModernBERT: post-norm)
    with pytest.raises(ConversionError, match="matches no supported Hugging Face architecture"):
        pg.to_hf(pg.build(spec), tmp_path / "out")
    with pytest.raises(ValidationError, match="a sequence_classification head reads the pooled vector"):
        pg.ModelSpec.model_validate(base | {"heads": [{"kind": "sequence_classification", "labels": 2,
                                                        "transform": {}}]})
    with pytest.raises(NotCompiledYet, match="'pool/first' cannot be ejected"):
        eject(pg.ModelSpec.model_validate(base | {"heads": [{"kind": "sequence_classification", "labels": 2}],
                                                  "pooler": {"kind": "first"}}))
    # ModernBERT's multiple choice pooling token 0 (not the first kept token): export refuses it
    hf, model = _pair("ModernBertForMultipleChoice", tmp_path)
    d = model.spec.model_dump(mode="json")
    d["pooler"]["kind"] = "cls"
    with pytest.raises(ConversionError, match="matches no supported Hugging Face architecture"):
        pg.to_hf(pg.build(pg.ModelSpec.model_validate(d)), tmp_path / "out3")
    # ModernBERT's tagger without the norm of its head: export refuses it
    hf, model = _pair("ModernBertForTokenClassification", tmp_path, num_labels=3)
    d = model.spec.model_dump(mode="json")
    d["heads"][0]["transform"]["norm"] = False
    with pytest.raises(ConversionError, match="matches no supported Hugging Face architecture"):
        pg.to_hf(pg.build(pg.ModelSpec.model_validate(d)), tmp_path / "out2")
