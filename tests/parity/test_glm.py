"""GLM (GLM-4, HF model_type glm) parity: partial interleaved rotary, q/k/v bias without o bias,
fused gate_up projection, GQA, head_dim != H/heads."""

import torch
import transformers as tf
from parity_util import check_decoder, randomize, save_and_import


def test_glm_causal_lm(tmp_path):
    torch.manual_seed(0)
    cfg = tf.GlmConfig(vocab_size=109, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=12, intermediate_size=44, max_position_embeddings=64,
                       rms_norm_eps=1e-5, pad_token_id=0, eos_token_id=1, attention_bias=True)
    hf = tf.GlmForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    p = model.spec.position
    assert p.fraction == 0.5 and p.interleaved
    assert model.spec.block.attention.qkv_bias and not model.spec.block.attention.out_bias
    check_decoder(hf, model, 109)
