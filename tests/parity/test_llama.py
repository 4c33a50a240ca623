"""LLaMA parity: RMSNorm, RoPE, SwiGLU, GQA; a variant with llama3 rope scaling, attention_bias, head_dim != H/heads."""

import torch
import transformers as tf
from parity_util import check_decoder, randomize, save_and_import


def test_llama_causal_lm(tmp_path):
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=56, max_position_embeddings=64, rms_norm_eps=1e-5,
                         rope_theta=500.0)
    hf = tf.LlamaForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert not model.spec.heads[0].tie_embeddings
    check_decoder(hf, model, 113)


def test_llama_gqa_llama3_scaling_bias(tmp_path):
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=113, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, intermediate_size=56, max_position_embeddings=64,
                         rms_norm_eps=1e-5, attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 100.0, "factor": 4.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 2.0,
                                          "original_max_position_embeddings": 8})
    hf = tf.LlamaForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    s = model.spec
    assert s.block.attention.kv_heads == 2 and s.block.attention.head_dim == 16
    assert s.position.scaling.kind == "llama3" and s.heads[0].tie_embeddings
    check_decoder(hf, model, 113)
