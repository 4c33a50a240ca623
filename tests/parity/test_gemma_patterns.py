"""Parity of the model types with per-layer patterns and soft-capping (issue 11): Gemma 2 (sandwich norms,
score and logit soft-caps, query_pre_attn_scalar, sliding and global layers alternating) and Gemma 3's
text decoder (q/k norm, five local layers then a global one, two rotary bases).  A tiny random model of
each HF class in fp32: right padding, a cached step, the HF round trip; the bare model and classifiers."""

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
# 5 layers, window 3 over 7 tokens: the sliding layers see less than the global ones; soft-caps small
# enough that tanh bends the random model's scores and logits.
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=5, num_attention_heads=4, num_key_value_heads=2,
             head_dim=8, intermediate_size=56, max_position_embeddings=64, pad_token_id=0, sliding_window=3)
GEMMA2 = SMALL | dict(query_pre_attn_scalar=12, attn_logit_softcapping=2.0, final_logit_softcapping=1.5)
GEMMA3 = SMALL | dict(query_pre_attn_scalar=12, sliding_window_pattern=3,
                      rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0},
                                       "sliding_attention": {"rope_type": "default", "rope_theta": 10.0}})


def _pair(cls, cfg, tmp_path):
    torch.manual_seed(0)
    hf = cls(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


def test_gemma2_causal_lm(tmp_path):
    hf, model = _pair(tf.Gemma2ForCausalLM, tf.Gemma2Config(**GEMMA2), tmp_path)
    s = model.spec
    assert s.source == "Hugging Face Gemma2ForCausalLM" and s.block.placement == "sandwich"
    assert [e.window for e in s.decoder.pattern] == [3, None] and s.block.attention.window is None
    assert s.block.attention.softcap == 2.0 and s.heads[0].softcap == 1.5
    assert s.block.attention.scale == 12 ** -0.5 and s.block.norm.offset == 1.0 and s.embeddings.scale
    assert [model.graph.node(f"decoder.layers.{i}.attn")["attrs"]["window"] for i in range(5)] == [3, None] * 2 + [3]
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("extra", [
    dict(attn_logit_softcapping=None, final_logit_softcapping=None, query_pre_attn_scalar=8),  # none of them
    dict(layer_types=["sliding_attention"] * 5),  # every layer slides: block.attention.window, no pattern
    dict(layer_types=["full_attention", "full_attention", "sliding_attention", "full_attention",
                      "full_attention"]),  # no period shorter than the model: the pattern is the whole list
])
def test_gemma2_variants(tmp_path, extra):
    hf, model = _pair(tf.Gemma2ForCausalLM, tf.Gemma2Config(**(GEMMA2 | extra)), tmp_path)
    s = model.spec
    if extra.get("attn_logit_softcapping", 1) is None:
        assert s.block.attention.softcap is None and s.heads[0].softcap is None and s.block.attention.scale is None
    if "layer_types" in extra:
        windows = [model.graph.node(f"decoder.layers.{i}.attn")["attrs"]["window"] for i in range(5)]
        assert windows == [3 if t == "sliding_attention" else None for t in extra["layer_types"]]
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)


def test_gemma2_bare_and_classifiers(tmp_path):
    cfg = tf.Gemma2Config(**GEMMA2, num_labels=3)
    hf, model = _pair(tf.Gemma2Model, cfg, tmp_path / "bare")
    check_bare(hf, model, V, decoder=True)
    roundtrip(hf, model, tmp_path / "bare")
    hf, model = _pair(tf.Gemma2ForSequenceClassification, cfg, tmp_path / "seq")
    check_last_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "seq")
    hf, model = _pair(tf.Gemma2ForTokenClassification, cfg, tmp_path / "tok")
    check_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "tok")


def test_gemma3_text_causal_lm(tmp_path):
    hf, model = _pair(tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(**GEMMA3), tmp_path)
    s = model.spec
    assert s.block.attention.qk_norm and s.block.placement == "sandwich" and s.block.attention.softcap is None
    assert s.position.theta == 1000.0 and s.position.scaling.kind == "linear"
    assert [(e.window, e.rope and e.rope.theta) for e in s.decoder.pattern] == [(3, 10.0), (3, 10.0), (None, None)]
    g = model.graph
    fed = [next(u for u in g.nx.predecessors(f"decoder.layers.{i}.attn") if g.node(u)["axis"] == "position")
           for i in range(5)]
    assert fed == ["decoder.positions.0"] * 2 + ["decoder.position"] + ["decoder.positions.0"] * 2
    assert g.node("decoder.positions.0")["attrs"]["theta"] == 10.0 and "scaling" not in g.node(
        "decoder.positions.0")["attrs"]
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)


def test_gemma3_text_same_bases_and_all_local(tmp_path):
    """Equal bases need no per-layer rope; a model whose layers all slide is a one-entry pattern."""
    same = GEMMA3 | dict(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 100.0},
                                          "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}})
    hf, model = _pair(tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(**same), tmp_path / "same")
    assert all(e.rope is None for e in model.spec.decoder.pattern)
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path / "same")
    local = GEMMA3 | dict(layer_types=["sliding_attention"] * 5)
    hf, model = _pair(tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(**local), tmp_path / "local")
    assert len(model.spec.decoder.pattern) == 1 and model.spec.decoder.pattern[0].rope.theta == 10.0
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path / "local")


def test_gemma3_text_bare_and_classifier(tmp_path):
    cfg = tf.Gemma3TextConfig(**GEMMA3, num_labels=3)
    hf, model = _pair(tf.Gemma3TextModel, cfg, tmp_path / "bare")
    check_bare(hf, model, V, decoder=True)
    roundtrip(hf, model, tmp_path / "bare")
    hf, model = _pair(tf.Gemma3TextForSequenceClassification, cfg, tmp_path / "seq")
    check_last_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "seq")
