"""LLaMA parity: RMSNorm, RoPE, SwiGLU, GQA; a variant with llama3 rope scaling, attention_bias, head_dim != H/heads."""

import pytest
import torch
import transformers as tf
from parity_util import check_decoder, close, ids, randomize, save_and_import


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


@pytest.mark.parametrize("rope", [
    {"rope_type": "linear", "factor": 2.0},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
])
def test_llama_rope_scaling(tmp_path, rope):
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=56, max_position_embeddings=64, rms_norm_eps=1e-5,
                         rope_parameters={"rope_theta": 100.0, **rope})
    hf = tf.LlamaForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.position.scaling.kind == rope["rope_type"]
    check_decoder(hf, model, 113)


def test_llama_dynamic_ntk_within_original_context(tmp_path):
    """Dynamic NTK is the identity up to max_position_embeddings (HF rescales only beyond it)."""
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=56, max_position_embeddings=16,
                         rope_parameters={"rope_theta": 100.0, "rope_type": "dynamic", "factor": 2.0})
    hf = tf.LlamaForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    sc = model.spec.position.scaling
    assert (sc.kind, sc.original_max_positions, model.spec.sizes.max_positions) == ("dynamic", 16, 32)
    check_decoder(hf, model, 113)


def _dynamic_ntk_pair(tmp_path):
    """A tiny random HF Llama with dynamic-NTK rope over a 6-position original context, and its import."""
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=56, max_position_embeddings=6,
                         rope_parameters={"rope_theta": 100.0, "rope_type": "dynamic", "factor": 2.0})
    hf = tf.LlamaForCausalLM(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path)


@torch.no_grad()
def test_llama_dynamic_ntk_beyond_original_context(tmp_path):
    """Past max_position_embeddings (6 here) both rescale the base from the sequence length."""
    hf, model = _dynamic_ntk_pair(tmp_path)
    x = ids(113, t=9)
    close(model(x).logits, hf(input_ids=x).logits, "logits at 9 > 6 positions")


@torch.no_grad()
def test_llama_dynamic_ntk_cached_step_beyond_original_context(tmp_path):
    """The cached 8th token rescales from max(position) + 1 = 8, not from its chunk length 1."""
    hf, model = _dynamic_ntk_pair(tmp_path)
    x, nxt = ids(113, t=7), ids(113, t=1, seed=2)
    ref = hf(input_ids=x, use_cache=True)
    out = model(x, use_cache=True)
    close(out.logits, ref.logits, "logits at 7 > 6 positions")
    ref2 = hf(input_ids=nxt, past_key_values=ref.past_key_values, use_cache=True).logits
    close(model(nxt, past_key_values=out.past_key_values, use_cache=True).logits, ref2, "cached 8th token")
