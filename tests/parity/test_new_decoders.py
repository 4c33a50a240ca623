"""Parity of the rotary decoders added as small modules of hf_types: a tiny random model of each HF
class in fp32, with right padding and a cached step, then the HF round trip (same architecture,
same state dict, same spec).  Each type also runs its bare ``*Model`` and one classifier."""

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_decoder,
    check_last_token_classifier,
    check_token_classifier,
    randomize,
    roundtrip,
    save_and_import,
)

V = 113
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=56, max_position_embeddings=64, pad_token_id=0)

#: case -> (config class, prefix of the HF classes, config kwargs, what the spec must say)
CASES = {
    "mistral": (tf.MistralConfig, "Mistral", dict(sliding_window=3, rms_norm_eps=1e-5),
                lambda s: s.block.attention.window == 3),
    "mistral-nowindow": (tf.MistralConfig, "Mistral", dict(sliding_window=None),
                         lambda s: s.block.attention.window is None),
    "qwen2": (tf.Qwen2Config, "Qwen2", dict(rope_theta=1000.0),
              lambda s: s.block.attention.qkv_bias and not s.block.attention.out_bias),
    "qwen2-window": (tf.Qwen2Config, "Qwen2", dict(use_sliding_window=True, sliding_window=3, max_window_layers=0),
                     lambda s: s.block.attention.window == 3),
    "qwen3": (tf.Qwen3Config, "Qwen3", dict(head_dim=16),
              lambda s: s.block.attention.qk_norm and s.block.attention.head_dim == 16),
    "gemma": (tf.GemmaConfig, "Gemma", dict(head_dim=12, num_key_value_heads=1),
              lambda s: s.block.norm.offset == 1.0 and s.embeddings.scale and s.block.attention.head_dim == 12
              and s.block.mlp.activation == "gelu_tanh" and s.heads[0].tie_embeddings),
    "starcoder2": (tf.Starcoder2Config, "Starcoder2", dict(sliding_window=4, norm_epsilon=1e-6),
                   lambda s: s.block.norm.kind == "layernorm" and s.block.mlp.kind == "dense"
                   and s.block.attention.window == 4),
    "gpt_neox": (tf.GPTNeoXConfig, "GPTNeoX", dict(num_key_value_heads=None, layer_norm_eps=1e-6,
                                                   rope_parameters={"rope_theta": 100.0, "partial_rotary_factor": 0.5,
                                                                    "rope_type": "default"}),
                 lambda s: s.block.residual.kind == "parallel" and not s.block.residual.shared_norm
                 and s.position.fraction == 0.5),
    "gpt_neox-sequential": (tf.GPTNeoXConfig, "GPTNeoX", dict(num_key_value_heads=None, use_parallel_residual=False),
                            lambda s: s.block.residual.kind == "sequential" and s.position.fraction == 0.25),
    "opt": (tf.OPTConfig, "OPT", dict(ffn_dim=56, word_embed_proj_dim=32, activation_function="gelu"),
            lambda s: s.position.offset == 2 and s.position.padding_aware and s.block.placement == "pre"),
    "opt-post": (tf.OPTConfig, "OPT", dict(ffn_dim=56, do_layer_norm_before=False, enable_bias=False),
                 lambda s: s.block.placement == "post" and not s.decoder.final_norm),
    "stablelm": (tf.StableLmConfig, "StableLm", dict(use_qkv_bias=True, layer_norm_eps=1e-6),
                 lambda s: s.position.fraction == 0.25 and s.block.attention.qkv_bias
                 and s.block.norm.kind == "layernorm"),
    "stablelm-parallel": (tf.StableLmConfig, "StableLm", dict(use_parallel_residual=True, partial_rotary_factor=0.5),
                          lambda s: s.block.residual.kind == "parallel" and s.block.residual.shared_norm
                          and s.position.fraction == 0.5),
    "phi3": (tf.Phi3Config, "Phi3", dict(sliding_window=5),
             lambda s: s.block.mlp.kind == "gated" and s.block.attention.window == 5),
}


def _pair(case, tmp_path, arch="ForCausalLM", **kw):
    cfg_cls, prefix, extra, _ = CASES[case]
    torch.manual_seed(0)
    args = {k: v for k, v in (SMALL | extra | kw).items() if v is not None or k not in ("num_key_value_heads",)}
    if cfg_cls is tf.OPTConfig:  # no GQA, ffn_dim for intermediate_size
        args = {k: v for k, v in args.items() if k not in ("num_key_value_heads", "intermediate_size")}
    hf = getattr(tf, prefix + arch)(cfg_cls(**args))
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


@pytest.mark.parametrize("case", list(CASES))
def test_causal_lm(tmp_path, case):
    hf, model = _pair(case, tmp_path)
    assert model.spec.source == f"Hugging Face {type(hf).__name__}" and CASES[case][3](model.spec)
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("case", sorted({c.split("-")[0] for c in CASES}))
def test_bare_model(tmp_path, case):
    hf, model = _pair(case, tmp_path, "Model")
    check_bare(hf, model, V, decoder=True)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("case", sorted({c.split("-")[0] for c in CASES}))
def test_classifiers(tmp_path, case):
    hf, model = _pair(case, tmp_path / "seq", "ForSequenceClassification", num_labels=3)
    check_last_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "seq")
    if not hasattr(tf, CASES[case][1] + "ForTokenClassification"):
        return
    hf, model = _pair(case, tmp_path / "tok", "ForTokenClassification", num_labels=4)
    check_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "tok")


@pytest.mark.parametrize("rotary_dim", [4, 8])
def test_gptj(tmp_path, rotary_dim):
    """GPT-J: parallel attention and MLP on one shared LayerNorm, interleaved partial rotary, biased lm head."""
    torch.manual_seed(0)
    cfg = tf.GPTJConfig(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64,
                        rotary_dim=rotary_dim, layer_norm_epsilon=1e-6)
    hf = tf.GPTJForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    s = model.spec
    assert s.block.residual.kind == "parallel" and s.block.residual.shared_norm and s.position.interleaved
    assert s.position.fraction == rotary_dim / 8 and s.heads[0].bias
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)
    hf = tf.GPTJModel(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "bare")
    check_bare(hf, model, V, decoder=True)


@pytest.mark.parametrize("heads", [4, 6])  # 6: ALiBi slopes for a head count that is not a power of 2
def test_bloom(tmp_path, heads):
    """BLOOM: ALiBi, embedding LayerNorm, per-head fused query_key_value, every architecture."""
    torch.manual_seed(0)
    cfg = tf.BloomConfig(vocab_size=V, hidden_size=8 * heads, n_layer=2, n_head=heads, layer_norm_epsilon=1e-6,
                         pad_token_id=0, num_labels=3)
    hf = tf.BloomForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "lm")
    assert model.spec.position.kind == "alibi" and model.spec.embeddings.norm
    # HF numbers BLOOM's ALiBi positions over the real tokens: a cached step after right padding (a gap
    # of pads before the new token) sees other distances, so the cached step runs after left padding,
    # where it is the same model; right padding is checked without the cache (the classifiers below).
    check_decoder(hf, model, V, left_pad=True)
    roundtrip(hf, model, tmp_path / "lm")
    for arch, check in (("BloomModel", lambda h, m: check_bare(h, m, V)),
                        ("BloomForSequenceClassification", lambda h, m: check_last_token_classifier(h, m, V)),
                        ("BloomForTokenClassification", lambda h, m: check_token_classifier(h, m, V))):
        hf = getattr(tf, arch)(cfg)
        randomize(hf)
        model = save_and_import(hf, tmp_path / arch)
        check(hf, model)
        roundtrip(hf, model, tmp_path / arch)
