"""Mixtral parity: sparse MoE (router, top-2 of 4 experts, renormalised), GQA, RoPE, sliding window."""

import pytest
import torch
import transformers as tf
from parity_util import check_decoder, randomize, save_and_import


@pytest.mark.parametrize("window", [None, 3])
def test_mixtral_causal_lm(tmp_path, window):
    torch.manual_seed(0)
    cfg = tf.MixtralConfig(vocab_size=107, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, intermediate_size=40, num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=1000.0, sliding_window=window)
    hf = tf.MixtralForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.block.mlp.experts == 4 and model.spec.block.attention.window == window
    check_decoder(hf, model, 107)
