"""ALBERT parity: factorised embeddings (E < H), cross-layer sharing (all and groups), MLM + SOP."""

import pytest
import torch
import transformers as tf
from parity_util import check_encoder, randomize, save_and_import


@pytest.mark.parametrize("groups", [1, 2])
def test_albert_pretraining(tmp_path, groups):
    torch.manual_seed(0)
    cfg = tf.AlbertConfig(vocab_size=89, embedding_size=24, hidden_size=48, num_hidden_layers=4,
                          num_hidden_groups=groups, num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=32, layer_norm_eps=1e-9, hidden_act="gelu_new")
    hf = tf.AlbertForPreTraining(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.sharing.kind == ("all" if groups == 1 else "groups")
    check_encoder(hf, model, 89, {"mlm": "prediction_logits", "sop": "sop_logits"}, segments=2)
