"""ERNIE parity: BERT plus task-type embeddings (use_task_id)."""

import torch
import transformers as tf
from parity_util import B, T, check_encoder, randomize, save_and_import


def test_ernie_pretraining_with_task_ids(tmp_path):
    torch.manual_seed(0)
    cfg = tf.ErnieConfig(vocab_size=83, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, max_position_embeddings=32, use_task_id=True, task_type_vocab_size=4,
                         layer_norm_eps=1e-8)
    hf = tf.ErnieForPreTraining(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.embeddings.task_types == 4
    tasks = torch.randint(0, 4, (B, T), generator=torch.Generator().manual_seed(7))
    check_encoder(hf, model, 83, {"mlm": "prediction_logits", "nsp": "seq_relationship_logits"}, segments=2,
                  task_type_ids=tasks)
