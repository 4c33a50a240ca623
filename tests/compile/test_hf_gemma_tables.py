"""The gemma2 / gemma3_text config tables on their own (no weights): transformers 4.x keys, HF's defaults,
and what they refuse (named field and value). Parity is in tests/parity/test_gemma_patterns.py."""

from __future__ import annotations

import pytest

from plmgraph.compile.hf_types import config_to_spec, find_family
from plmgraph.errors import ConversionError

DEC = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 12, "num_attention_heads": 4,
       "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 40}


def test_gemma2_defaults_are_hfs():
    """No layer_types, no caps, no query_pre_attn_scalar: HF's 4096 window on even layers, caps 50 / 30,
    scale 256**-0.5 (head_dim 8 here)."""
    s = config_to_spec({"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], **DEC})
    assert [(e.window, e.rope) for e in s.decoder.pattern] == [(4096, None), (None, None)]
    assert s.block.attention.softcap == 50.0 and s.heads[0].softcap == 30.0 and s.block.attention.scale == 256 ** -0.5
    assert find_family(s)[:2] == ("gemma2", "Gemma2ForCausalLM")


def test_gemma2_explicit_nulls_mean_none():
    s = config_to_spec({"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], **DEC,
                        "attn_logit_softcapping": None, "final_logit_softcapping": None, "sliding_window": None,
                        "query_pre_attn_scalar": 8})
    assert s.block.attention.softcap is None and s.heads[0].softcap is None and s.decoder.pattern is None
    assert s.block.attention.window is None and s.block.attention.scale is None


def test_gemma3_text_reads_the_4x_keys():
    """google/gemma-3-1b-pt style config.json (transformers 4.x): rope_theta + rope_scaling for the global
    layers, rope_local_base_freq for the local ones, sliding_window_pattern."""
    cfg = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], **DEC, "rope_theta": 1_000_000.0,
           "rope_local_base_freq": 10_000.0, "sliding_window": 512, "sliding_window_pattern": 6,
           "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "max_position_embeddings": 32768}
    s = config_to_spec(cfg)
    assert (s.position.theta, s.position.scaling.kind, s.position.scaling.factor) == (1_000_000.0, "linear", 8.0)
    assert [(e.window, e.rope and e.rope.theta, e.rope and e.rope.scaling) for e in s.decoder.pattern] == \
        [(512, 10_000.0, None)] * 5 + [(None, None, None)]
    assert s.block.attention.qk_norm and s.block.attention.softcap is None and s.heads[0].softcap is None
    mt, arch, back = find_family(s)
    assert (mt, arch) == ("gemma3_text", "Gemma3ForCausalLM")
    assert back["rope_parameters"] == {"full_attention": {"rope_theta": 1_000_000.0, "rope_type": "linear",
                                                          "factor": 8.0},
                                       "sliding_attention": {"rope_theta": 10_000.0, "rope_type": "default"}}
    assert back["layer_types"] == (["sliding_attention"] * 5 + ["full_attention"]) * 2


@pytest.mark.parametrize("model_type, extra, match", [
    ("gemma2", {"layer_types": ["chunked_attention"] * 12}, r"layer_types \['chunked_attention'\] have no"),
    ("gemma2", {"layer_types": ["full_attention"] * 3}, "layer_types has 3 entries for num_hidden_layers = 12"),
    ("gemma2", {"use_bidirectional_attention": True}, "use_bidirectional_attention = True"),
    ("gemma3_text", {"rope_parameters": {"full_attention": {"rope_type": "dynamic", "factor": 2.0,
                                                            "rope_theta": 1e6}}},
     r"rope_parameters.full_attention rope_type 'dynamic' is not supported"),
    ("gemma3_text", {"rope_parameters": {"chunked_attention": {"rope_theta": 1e4}}},
     r"rope_parameters for layer types \['chunked_attention'\]"),
])
def test_what_the_tables_refuse(model_type, extra, match):
    arch = "Gemma2ForCausalLM" if model_type == "gemma2" else "Gemma3ForCausalLM"
    with pytest.raises(ConversionError, match=match):
        config_to_spec({"model_type": model_type, "architectures": [arch], **DEC, **extra})


def test_a_pattern_no_gemma_writes_is_refused_on_export():
    """Sliding windows of two sizes: no Hugging Face class has that, so find_family names what it cannot do."""
    s = config_to_spec({"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], **DEC})
    data = s.model_dump(mode="json")
    data["decoder"]["pattern"] = [{"window": 8}, {"window": 16}]
    from plmgraph.spec import validate
    from plmgraph.spec.extends import Merged

    with pytest.raises(ConversionError, match="matches no supported Hugging Face architecture"):
        find_family(validate(Merged(data, file="x")))
