"""BERT parity: BertForPreTraining (MLM + NSP on the tanh pooler), BertForSequenceClassification."""

import torch
import transformers as tf
from parity_util import check_encoder, randomize, save_and_import


def config(**kw):
    return tf.BertConfig(vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=72, max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7,
                         hidden_act="gelu", **kw)


def test_bert_pretraining(tmp_path):
    torch.manual_seed(0)
    hf = tf.BertForPreTraining(config())
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert [h.kind for h in model.spec.heads] == ["mlm", "nsp"]
    check_encoder(hf, model, 97, {"mlm": "prediction_logits", "nsp": "seq_relationship_logits"}, segments=3)


def test_bert_sequence_classification(tmp_path):
    torch.manual_seed(0)
    hf = tf.BertForSequenceClassification(config(num_labels=5))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    check_encoder(hf, model, 97, {"sequence_classification": "logits"}, segments=3)


def test_bert_masked_lm_untied(tmp_path):
    torch.manual_seed(0)
    hf = tf.BertForMaskedLM(config(tie_word_embeddings=False))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert [h.kind for h in model.spec.heads] == ["mlm"] and not model.spec.heads[0].tie_embeddings
    check_encoder(hf, model, 97, {"mlm": "logits"}, segments=3)
