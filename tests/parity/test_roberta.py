"""RoBERTa parity: RobertaForMaskedLM (positions offset by padding_idx + 1), RobertaForSequenceClassification."""

import torch
import transformers as tf
from parity_util import check_encoder, randomize, save_and_import


def config(**kw):
    # pad_token_id 1 -> positions start at 2; the table has max_positions + 2 rows.
    return tf.RobertaConfig(vocab_size=91, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=40, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1,
                            layer_norm_eps=1e-6, hidden_act="gelu_new", **kw)


def test_roberta_masked_lm(tmp_path):
    torch.manual_seed(0)
    hf = tf.RobertaForMaskedLM(config())
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.position.offset == 2 and model.spec.sizes.max_positions == 32
    check_encoder(hf, model, 91, {"mlm": "logits"})


def test_roberta_sequence_classification(tmp_path):
    torch.manual_seed(0)
    hf = tf.RobertaForSequenceClassification(config(num_labels=3))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    check_encoder(hf, model, 91, {"sequence_classification": "logits"})
