"""The newer model types' config tables: what they refuse (named field and value) and the legacy
keys they read; parity itself is under tests/parity/."""

from __future__ import annotations

import pytest

from plmgraph.compile.hf_types import config_to_spec
from plmgraph.errors import ConversionError

DEC = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
       "intermediate_size": 40}


def test_qwen2_refuses_sliding_window_on_only_some_layers():
    cfg = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], **DEC, "use_sliding_window": True,
           "sliding_window": 8, "max_window_layers": 2,
           "layer_types": ["full_attention"] * 2 + ["sliding_attention"] * 2}
    with pytest.raises(ConversionError, match=r"layer_types mixes .*max_window_layers = 2"):
        config_to_spec(cfg)


def test_qwen2_window_off_unless_use_sliding_window():
    cfg = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], **DEC, "use_sliding_window": False,
           "sliding_window": 8}
    assert config_to_spec(cfg).block.attention.window is None


def test_mistral_window_defaults_to_hf_4096_and_null_is_none():
    base = {"model_type": "mistral", "architectures": ["MistralForCausalLM"], **DEC}
    assert config_to_spec(base).block.attention.window == 4096
    assert config_to_spec(base | {"sliding_window": None}).block.attention.window is None


def test_opt_refuses_a_projected_embedding():
    cfg = {"model_type": "opt", "architectures": ["OPTForCausalLM"], "vocab_size": 50, "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 40, "word_embed_proj_dim": 16}
    with pytest.raises(ConversionError, match="word_embed_proj_dim = 16"):
        config_to_spec(cfg)


def test_phi3_longrope_is_refused_by_name():
    cfg = {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], **DEC,
           "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}
    with pytest.raises(ConversionError, match="rope type 'longrope'"):
        config_to_spec(cfg)


def test_gpt_neox_reads_4x_rotary_keys():
    """Pythia's config.json (transformers 4.x) says rotary_pct and rotary_emb_base."""
    cfg = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], **DEC, "rotary_pct": 0.25,
           "rotary_emb_base": 10000, "use_parallel_residual": True}
    s = config_to_spec(cfg)
    assert (s.position.fraction, s.position.theta) == (0.25, 10000.0)
    assert s.block.residual.kind == "parallel" and not s.block.residual.shared_norm


def test_gemma_bidirectional_variant_is_refused():
    cfg = {"model_type": "gemma", "architectures": ["GemmaForCausalLM"], **DEC, "head_dim": 8,
           "use_bidirectional_attention": True}
    with pytest.raises(ConversionError, match="use_bidirectional_attention = True"):
        config_to_spec(cfg)


def test_bert_model_is_supported():
    """The issue's first complaint: a sentence-embedding BertModel config."""
    cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 50, "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 40}
    s = config_to_spec(cfg)
    assert s.heads == [] and s.family == "encoder"


# The real checkpoints' config.json values (as cited in each zoo spec file).
ZOO_CONFIGS = {
    "mistral-7b": dict(model_type="mistral", architectures=["MistralForCausalLM"], vocab_size=32000,
                       hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=10000.0,
                       sliding_window=4096, tie_word_embeddings=False, hidden_act="silu"),
    "qwen2.5-7b": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], vocab_size=152064, hidden_size=3584,
                       intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       max_position_embeddings=131072, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       use_sliding_window=False, sliding_window=131072, max_window_layers=28,
                       tie_word_embeddings=False, hidden_act="silu"),
    "phi3-mini": dict(model_type="phi3", architectures=["Phi3ForCausalLM"], vocab_size=32064, hidden_size=3072,
                      intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      max_position_embeddings=4096, original_max_position_embeddings=4096, rms_norm_eps=1e-5,
                      rope_theta=10000.0, sliding_window=2047, tie_word_embeddings=False, hidden_act="silu"),
    "pythia-1.4b": dict(model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"], vocab_size=50304,
                        hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
                        max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
                        use_parallel_residual=True, tie_word_embeddings=False, hidden_act="gelu"),
    "opt-1.3b": dict(model_type="opt", architectures=["OPTForCausalLM"], vocab_size=50272, hidden_size=2048,
                     ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32, max_position_embeddings=2048,
                     do_layer_norm_before=True, activation_function="relu", word_embed_proj_dim=2048,
                     tie_word_embeddings=True),
    "gemma2-9b": dict(model_type="gemma2", architectures=["Gemma2ForCausalLM"], vocab_size=256000, hidden_size=3584,
                      intermediate_size=14336, num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8,
                      head_dim=256, max_position_embeddings=8192, rms_norm_eps=1e-6, rope_theta=10000.0,
                      query_pre_attn_scalar=256, sliding_window=4096, attn_logit_softcapping=50.0,
                      final_logit_softcapping=30.0, hidden_act="gelu_pytorch_tanh",
                      hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, attention_bias=False),
}


@pytest.mark.parametrize("name", sorted(ZOO_CONFIGS))
def test_checkpoint_config_imports_to_its_zoo_spec(name):
    """The zoo spec is the architecture the importer reads from the real config.json."""
    import plmgraph as pg
    from plmgraph.compile.hf_types import _comparable, find_family

    got, zoo = config_to_spec(ZOO_CONFIGS[name], name), pg.load_spec(name)
    assert _comparable(got) == _comparable(zoo)
    assert find_family(zoo)[:2] == (ZOO_CONFIGS[name]["model_type"], ZOO_CONFIGS[name]["architectures"][0])
