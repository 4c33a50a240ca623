"""Every architecture of XLNet and ViT beyond the LM / image-classification heads: the bare models, XLNet's
sequence classifier and multiple choice (XLNetSequenceSummary: the last position, dense + tanh, then
logits_proj), token classification and the simple span head; tiny random HF models in fp32 with padding
(left and right for the summary, which reads position -1 whatever the mask), and the to_hf round trip.
XLNetForQuestionAnswering and ViTForMaskedImageModeling are refused by name."""

import pytest
import torch
import transformers as tf
from parity_util import (
    B,
    T,
    check_bare,
    check_token_classifier,
    close,
    ids,
    randomize,
    right_padded,
    roundtrip,
    save_and_import,
)

import plmgraph as pg
from plmgraph.errors import ConversionError

V = 101
XLNET = dict(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=48, ff_activation="gelu", layer_norm_eps=1e-6,
             mem_len=None, clamp_len=-1)


def _pair(cls, cfg, tmp_path):
    torch.manual_seed(0)
    hf = cls(cfg)
    randomize(hf)  # every parameter: the summary's dense and logits_proj biases too
    return hf, save_and_import(hf, tmp_path / "hf")


def _masks():
    right = right_padded()
    return {"right": right, "left": right.flip(1)}


def test_xlnet_model_bare(tmp_path):
    hf, model = _pair(tf.XLNetModel, tf.XLNetConfig(**XLNET), tmp_path)
    assert not any(k.startswith("transformer.") for k in hf.state_dict())
    check_bare(hf, model, V)
    with torch.no_grad():  # left padding (XLNet's convention) too
        x, mask = ids(V), right_padded().flip(1)
        close(model(x, attention_mask=mask).last_hidden_state, hf(input_ids=x, attention_mask=mask).last_hidden_state,
              "last_hidden_state, left padding", mask)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_xlnet_sequence_classification(tmp_path):
    hf, model = _pair(tf.XLNetForSequenceClassification, tf.XLNetConfig(**XLNET, num_labels=3), tmp_path)
    p = model.spec.pooler
    assert (p.kind, p.by_mask, p.dense, p.activation) == ("last", False, True, "tanh")
    assert [h.kind for h in model.spec.heads] == ["sequence_classification"]
    assert model.num_params() == sum(q.numel() for q in hf.parameters())
    x = ids(V)
    for side, mask in _masks().items():
        close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, f"logits, {side}")
    close(model(x).logits, hf(input_ids=x).logits, "logits without a mask")
    labels = torch.tensor([2, 0])
    close(model(x, labels=labels).loss, hf(input_ids=x, labels=labels).loss, "loss")
    roundtrip(hf, model, tmp_path)


def test_xlnet_token_classification(tmp_path):
    hf, model = _pair(tf.XLNetForTokenClassification, tf.XLNetConfig(**XLNET, num_labels=4), tmp_path)
    assert model.spec.heads[0].kind == "token_classification"
    check_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_xlnet_question_answering_simple(tmp_path):
    hf, model = _pair(tf.XLNetForQuestionAnsweringSimple, tf.XLNetConfig(**XLNET), tmp_path)
    assert [h.kind for h in model.spec.heads] == ["question_answering"]
    x = ids(V)
    for side, mask in _masks().items():
        ref, out = hf(input_ids=x, attention_mask=mask), model(x, attention_mask=mask)
        close(out.logits[..., 0], ref.start_logits, f"start_logits, {side}", mask)
        close(out.logits[..., 1], ref.end_logits, f"end_logits, {side}", mask)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_xlnet_multiple_choice(tmp_path):
    hf, model = _pair(tf.XLNetForMultipleChoice, tf.XLNetConfig(**XLNET), tmp_path)
    assert [h.kind for h in model.spec.heads] == ["multiple_choice"] and not model.spec.pooler.by_mask
    C = 3
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, :2] = 0  # a left-padded candidate
    mask[1, 2, -2:] = 0  # and a right-padded one
    out, ref = model(x, attention_mask=mask), hf(input_ids=x, attention_mask=mask)
    assert out.logits.shape == (B, C)
    close(out.logits, ref.logits, "choice scores")
    labels = torch.tensor([2, 0])
    close(model(x, attention_mask=mask, labels=labels).loss, hf(input_ids=x, attention_mask=mask,
                                                                labels=labels).loss, "loss")
    roundtrip(hf, model, tmp_path)


VIT = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
           intermediate_size=48, layer_norm_eps=1e-6)


@torch.no_grad()
def test_vit_model_bare(tmp_path):
    hf, model = _pair(tf.ViTModel, tf.ViTConfig(**VIT), tmp_path)
    assert hf.pooler is not None and model.spec.heads == []  # HF's add_pooling_layer pooler: not imported
    assert not any(k.startswith("vit.") for k in hf.state_dict())
    px = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = model(pixel_values=px)
    assert out.logits is None
    close(out.last_hidden_state, hf(pixel_values=px).last_hidden_state, "last_hidden_state")
    roundtrip(hf, model, tmp_path, dead=("pooler.",))


@pytest.mark.parametrize("cls,cfg,why", [
    (tf.XLNetForQuestionAnswering, tf.XLNetConfig(**XLNET), "beam-search"),
    (tf.ViTForMaskedImageModeling, tf.ViTConfig(**VIT), "SimMIM"),
])
def test_refused_by_name(tmp_path, cls, cfg, why):
    cls(cfg).save_pretrained(tmp_path)
    with pytest.raises(ConversionError, match=f"{cls.__name__}.*{why}"):
        pg.from_hf(tmp_path)


def test_pooler_by_mask_false_only_for_last():
    from pydantic import ValidationError

    from plmgraph.kinds.pool.pooler import Pooler

    assert not Pooler(kind="last", by_mask=False).by_mask
    for kind in ("cls", "mean", "first"):
        with pytest.raises(ValidationError, match="by_mask: false applies to kind last only"):
            Pooler(kind=kind, by_mask=False)


def test_xlnet_summary_refusals(tmp_path):
    """The last-position pooler is not ejected yet (refused by name), and a summary HF would pool otherwise
    (mean, first, cls_index, to the labels) is refused by the importer naming the field."""
    from plmgraph.eject import eject
    from plmgraph.kinds.base import NotCompiledYet

    hf, model = _pair(tf.XLNetForSequenceClassification, tf.XLNetConfig(**XLNET, num_labels=3), tmp_path)
    with pytest.raises(NotCompiledYet, match="'pool/last' with by_mask: false cannot be ejected"):
        eject(model.spec)
    for key, value in [("summary_type", "mean"), ("summary_activation", "gelu"), ("summary_proj_to_labels", True)]:
        tf.XLNetForSequenceClassification(tf.XLNetConfig(**XLNET, num_labels=3, **{key: value})).save_pretrained(
            tmp_path / key)
        with pytest.raises(ConversionError, match=f"{key} = .* is not supported"):
            pg.from_hf(tmp_path / key)
