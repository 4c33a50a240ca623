"""T5 parity: relative position buckets, RMSNorm, unscaled attention, d_kv != d_model / heads,
tied head with hidden**-0.5 scaling (v1.0) and untied gated-gelu (v1.1); KV cache in the decoder."""

import pytest
import torch
import transformers as tf
from parity_util import check_seq2seq, randomize, save_and_import


@pytest.mark.parametrize("variant", ["t5", "t5-v1_1"])
def test_t5_conditional_generation(tmp_path, variant):
    torch.manual_seed(0)
    v11 = variant == "t5-v1_1"
    cfg = tf.T5Config(vocab_size=103, d_model=32, d_kv=12, d_ff=40, num_layers=2, num_decoder_layers=3,
                      num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                      layer_norm_epsilon=1e-5, feed_forward_proj="gated-gelu" if v11 else "relu",
                      tie_word_embeddings=not v11)
    hf = tf.T5ForConditionalGeneration(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.heads[0].scale_tied is (not v11)
    assert model.spec.decoder.layers == 3
    check_seq2seq(hf, model, 103)
