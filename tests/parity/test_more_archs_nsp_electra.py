"""BERT's and ERNIE's ``*ForNextSentencePrediction`` (the nsp head alone: ``cls.seq_relationship`` on the tanh
pooler), ``ElectraForMultipleChoice`` (ElectraSequenceSummary: the first token, dense, gelu, then a classifier
to 1 per candidate); fp32 parity with padding and the to_hf round trip.  ``GPT2DoubleHeadsModel`` and
ELECTRA's other summary settings are refused by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import check_encoder, close, ids, randomize, roundtrip, save_and_import

import plmgraph as pg
from plmgraph.errors import ConversionError

V = 89
ENC = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
           max_position_embeddings=64)


def _pair(cls, cfg, tmp_path):
    torch.manual_seed(0)
    hf = cls(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


@pytest.mark.parametrize("cls,cfg", [(tf.BertForNextSentencePrediction, tf.BertConfig(**ENC, type_vocab_size=3)),
                                     (tf.ErnieForNextSentencePrediction,
                                      tf.ErnieConfig(**ENC, type_vocab_size=3, use_task_id=True))])
def test_next_sentence_prediction(tmp_path, cls, cfg):
    hf, model = _pair(cls, cfg, tmp_path)
    assert [h.kind for h in model.spec.heads] == ["nsp"]
    p = model.spec.pooler
    assert (p.kind, p.dense, p.activation) == ("cls", True, "tanh")
    assert not any(k.startswith("cls.predictions") for k in hf.state_dict())
    extra = {}
    if cfg.model_type == "ernie":
        extra["task_type_ids"] = torch.randint(0, 3, (2, 7), generator=torch.Generator().manual_seed(5))
    check_encoder(hf, model, V, {"nsp": "logits"}, segments=3, **extra)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_electra_multiple_choice(tmp_path):
    hf, model = _pair(tf.ElectraForMultipleChoice, tf.ElectraConfig(**ENC, embedding_size=16), tmp_path)
    assert [h.kind for h in model.spec.heads] == ["multiple_choice"]
    p = model.spec.pooler
    assert (p.kind, p.dense, p.activation) == ("cls", True, "gelu")
    B, C, T = 2, 3, 6
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, -2:] = 0  # one padded candidate
    mask[1, 2, -3:] = 0
    seg = torch.randint(0, 2, (B, C, T), generator=torch.Generator().manual_seed(3))
    ref = hf(input_ids=x, attention_mask=mask, token_type_ids=seg)
    out = model(x, attention_mask=mask, token_type_ids=seg)
    assert out.logits.shape == (B, C)
    close(out.logits, ref.logits, "choice scores")
    labels = torch.tensor([2, 0])
    close(model(x, attention_mask=mask, token_type_ids=seg, labels=labels).loss,
          hf(input_ids=x, attention_mask=mask, token_type_ids=seg, labels=labels).loss, "loss")
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("key,value", [("summary_type", "mean"), ("summary_use_proj", False),
                                       ("summary_activation", "tanh"), ("summary_proj_to_labels", True)])
def test_electra_multiple_choice_other_summary_refused(tmp_path, key, value):
    torch.manual_seed(0)
    tf.ElectraForMultipleChoice(tf.ElectraConfig(**ENC, embedding_size=16)).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConversionError, match=f"{key} = .* is not supported for ElectraForMultipleChoice"):
        pg.from_hf(tmp_path)


def test_gpt2_double_heads_refused_by_name(tmp_path):
    torch.manual_seed(0)
    tf.GPT2DoubleHeadsModel(tf.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24)
                            ).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["GPT2DoubleHeadsModel"]
    with pytest.raises(ConversionError, match="'GPT2DoubleHeadsModel' is not supported: .*mc_token_ids"):
        pg.from_hf(tmp_path)
