"""Every architecture of the known types beyond the LM heads: the bare ``*Model`` (last_hidden_state
out, the checkpoint without the base-model prefix), token classification, and decoder sequence
classification; each also round-trips through ``to_hf`` to the same architecture."""

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_last_token_classifier,
    check_token_classifier,
    randomize,
    roundtrip,
    save_and_import,
)

BERT = dict(vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=72,
            max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7)
GPT2 = dict(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24, n_inner=48, pad_token_id=0)
LLAMA = dict(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=56, max_position_embeddings=64, rms_norm_eps=1e-5, pad_token_id=0)


def _pair(cls, cfg, tmp_path):
    torch.manual_seed(0)
    hf = cls(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


def test_bert_model_bare(tmp_path):
    hf, model = _pair(tf.BertModel, tf.BertConfig(**BERT), tmp_path)
    assert not any(k.startswith("bert.") for k in hf.state_dict())  # HF saves a bare model unprefixed
    check_bare(hf, model, 97, segments=3)
    roundtrip(hf, model, tmp_path, dead=("pooler.",))


def test_roberta_model_bare(tmp_path):
    cfg = tf.RobertaConfig(**BERT | {"max_position_embeddings": 42, "type_vocab_size": 1}, pad_token_id=1)
    hf, model = _pair(tf.RobertaModel, cfg, tmp_path)
    check_bare(hf, model, 97)
    roundtrip(hf, model, tmp_path, dead=("pooler.",))


def test_bert_token_classification(tmp_path):
    hf, model = _pair(tf.BertForTokenClassification, tf.BertConfig(**BERT, num_labels=4), tmp_path)
    check_token_classifier(hf, model, 97)
    roundtrip(hf, model, tmp_path)


def test_bert_sequence_classification_roundtrip(tmp_path):
    hf, model = _pair(tf.BertForSequenceClassification, tf.BertConfig(**BERT, num_labels=3), tmp_path)
    assert model.spec.pooler.kind == "cls" and model.spec.pooler.dense
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("cls", [tf.GPT2Model, tf.LlamaModel])
def test_decoder_model_bare(tmp_path, cls):
    cfg = tf.GPT2Config(**GPT2) if cls is tf.GPT2Model else tf.LlamaConfig(**LLAMA)
    hf, model = _pair(cls, cfg, tmp_path)
    check_bare(hf, model, cfg.vocab_size, decoder=True)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("cls", [tf.GPT2ForTokenClassification, tf.LlamaForTokenClassification])
def test_decoder_token_classification(tmp_path, cls):
    cfg = (tf.GPT2Config(**GPT2, num_labels=5) if cls is tf.GPT2ForTokenClassification
           else tf.LlamaConfig(**LLAMA, num_labels=5))
    hf, model = _pair(cls, cfg, tmp_path)
    assert model.spec.heads[0].kind == "token_classification"
    check_token_classifier(hf, model, cfg.vocab_size)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("cls", [tf.GPT2ForSequenceClassification, tf.LlamaForSequenceClassification])
def test_decoder_sequence_classification_last_token(tmp_path, cls):
    cfg = (tf.GPT2Config(**GPT2, num_labels=3) if cls is tf.GPT2ForSequenceClassification
           else tf.LlamaConfig(**LLAMA, num_labels=3))
    hf, model = _pair(cls, cfg, tmp_path)
    assert model.spec.pooler.kind == "last" and not model.spec.heads[0].bias
    check_last_token_classifier(hf, model, cfg.vocab_size)
    roundtrip(hf, model, tmp_path)


def test_albert_and_distilbert_model_bare(tmp_path):
    hf, model = _pair(tf.AlbertModel, tf.AlbertConfig(**BERT | {"type_vocab_size": 2}, embedding_size=16),
                      tmp_path / "albert")
    check_bare(hf, model, 97, segments=2)
    roundtrip(hf, model, tmp_path / "albert", dead=("pooler.",))
    cfg = tf.DistilBertConfig(vocab_size=97, dim=32, n_layers=2, n_heads=4, hidden_dim=40, max_position_embeddings=40)
    hf, model = _pair(tf.DistilBertModel, cfg, tmp_path / "distil")
    check_bare(hf, model, 97)
    roundtrip(hf, model, tmp_path / "distil")


MOE = dict(LLAMA, num_local_experts=3, num_experts_per_tok=2)
GLM = dict(LLAMA, head_dim=8, eos_token_id=1)


@pytest.mark.parametrize("prefix", ["Mixtral", "Glm"])
def test_mixtral_and_glm_every_architecture(tmp_path, prefix):
    cfg_cls, kw = (tf.MixtralConfig, MOE) if prefix == "Mixtral" else (tf.GlmConfig, GLM)
    hf, model = _pair(getattr(tf, prefix + "Model"), cfg_cls(**kw), tmp_path / "bare")
    check_bare(hf, model, 113, decoder=True)
    roundtrip(hf, model, tmp_path / "bare")
    hf, model = _pair(getattr(tf, prefix + "ForSequenceClassification"), cfg_cls(**kw, num_labels=3), tmp_path / "s")
    check_last_token_classifier(hf, model, 113)
    roundtrip(hf, model, tmp_path / "s")
    hf, model = _pair(getattr(tf, prefix + "ForTokenClassification"), cfg_cls(**kw, num_labels=4), tmp_path / "t")
    check_token_classifier(hf, model, 113)
    roundtrip(hf, model, tmp_path / "t")


T5 = dict(vocab_size=61, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=1, num_heads=4,
          feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-5)


def test_t5_encoder_model(tmp_path):
    hf, model = _pair(tf.T5EncoderModel, tf.T5Config(**T5), tmp_path)
    assert model.spec.family == "encoder" and model.spec.position.kind == "t5_relative"
    check_bare(hf, model, 61)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_t5_model_bare_encoder_decoder(tmp_path):
    from parity_util import close, ids, right_padded

    hf, model = _pair(tf.T5Model, tf.T5Config(**T5), tmp_path)
    assert model.spec.family == "encoder-decoder" and model.spec.heads == []
    x, mask, dec = ids(61), right_padded(), ids(61, t=5, seed=4)
    ref = hf(input_ids=x, attention_mask=mask, decoder_input_ids=dec)
    out = model(x, attention_mask=mask, decoder_input_ids=dec)
    close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, "encoder output", mask)
    close(out.last_hidden_state, ref.last_hidden_state, "decoder last_hidden_state")
    roundtrip(hf, model, tmp_path)
