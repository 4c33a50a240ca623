"""DistilBERT parity: no segments, post-norm, MLM head (vocab_transform/layer_norm/projector)."""

import torch
import transformers as tf
from parity_util import check_encoder, randomize, save_and_import


def test_distilbert_masked_lm(tmp_path):
    torch.manual_seed(0)
    cfg = tf.DistilBertConfig(vocab_size=79, dim=32, n_layers=2, n_heads=4, hidden_dim=56,
                              max_position_embeddings=30, activation="gelu")
    hf = tf.DistilBertForMaskedLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    check_encoder(hf, model, 79, {"mlm": "logits"})


def test_distilbert_sequence_classification(tmp_path):
    torch.manual_seed(0)
    cfg = tf.DistilBertConfig(vocab_size=79, dim=32, n_layers=2, n_heads=4, hidden_dim=56,
                              max_position_embeddings=30, num_labels=4)
    hf = tf.DistilBertForSequenceClassification(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.pooler.activation == "relu"
    check_encoder(hf, model, 79, {"sequence_classification": "logits"})
