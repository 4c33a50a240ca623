"""DeBERTa-v2/v3 parity: disentangled attention (c2p and p2c terms), log-bucketed relative positions,
the shared relative table with its LayerNorm, share_att_key or separate position projections, with and
without absolute positions; every architecture HF ships, a tiny random model in fp32 with padding, each
round-tripped through to_hf; and the configs plmgraph refuses, by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_encoder,
    check_token_classifier,
    close,
    ids,
    randomize,
    right_padded,
    roundtrip,
    save_and_import,
)

import plmgraph as pg
from plmgraph.compile.hf_config import config_to_spec
from plmgraph.errors import ConversionError

V = 91
#: v3's layout (every published v3 checkpoint): no absolute positions, 8 log buckets (the 7- and
#: 20-token inputs reach past the exact ones), the table LayerNorm-ed, keys shared with the content.
V3 = dict(position_buckets=8, max_relative_positions=16, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
          share_att_key=True, position_biased_input=False)
#: the other branches: absolute positions too, no buckets (the table is 2 * max_position_embeddings rows),
#: c2p only, separate pos_key_proj, segments.
OTHER = dict(position_buckets=-1, max_relative_positions=-1, pos_att_type="c2p", share_att_key=False,
             position_biased_input=True, type_vocab_size=2)
#: p2c only with its own pos_query_proj (v2's "p2c|c2p" string form is the OTHER case's "c2p" parse).
P2C = dict(position_buckets=6, max_relative_positions=12, pos_att_type="p2c", share_att_key=False,
           position_biased_input=False)


def config(**kw):
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                max_position_embeddings=24, relative_attention=True, layer_norm_eps=1e-7, num_labels=3,
                hidden_act="gelu")
    return tf.DebertaV2Config(**{**base, **kw})


@pytest.mark.parametrize("layout", ["v3", "other", "p2c"])
def test_masked_lm_layouts(tmp_path, layout):
    kw = {"v3": V3, "other": OTHER, "p2c": P2C}[layout]
    torch.manual_seed(0)
    hf = tf.DebertaV2ForMaskedLM(config(**kw))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    at = model.spec.encoder.block.attention
    assert at.kind == "disentangled"
    assert (at.c2p, at.p2c, at.share_keys) == ("c2p" in kw["pos_att_type"], "p2c" in kw["pos_att_type"],
                                               kw["share_att_key"])
    assert at.position_dropout == hf.config.hidden_dropout_prob  # HF's pos_dropout on the table
    if kw["position_biased_input"]:
        assert model.spec.position.kind == "learned" and model.spec.relative_position.kind == "disentangled"
    else:
        assert model.spec.position.kind == "disentangled" and model.spec.relative_position is None
    check_encoder(hf, model, V, {"mlm": "logits"}, segments=kw.get("type_vocab_size", 0))
    # the graph's parameter count (stats) is HF's, each tied tensor once
    assert pg.resolve(model.spec).num_params() == sum(p.numel() for p in hf.parameters())
    # longer than the exact buckets and the table: clamped and log-bucketed distances
    with torch.no_grad():
        x, mask = ids(V, t=20), right_padded(t=20, pad=5)
        close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "20 tokens", mask)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("arch", ["DebertaV2Model", "DebertaV2ForSequenceClassification",
                                  "DebertaV2ForTokenClassification", "DebertaV2ForQuestionAnswering"])
def test_architectures(tmp_path, arch):
    torch.manual_seed(0)
    hf = getattr(tf, arch)(config(**V3, **({"num_labels": 2} if "Question" in arch else {})))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    if arch == "DebertaV2Model":
        check_bare(hf, model, V)
    elif arch == "DebertaV2ForSequenceClassification":
        assert model.spec.pooler.dense and model.spec.pooler.activation == "gelu"  # ContextPooler
        check_encoder(hf, model, V, {"sequence_classification": "logits"})
    elif arch == "DebertaV2ForTokenClassification":
        check_token_classifier(hf, model, V)
    else:
        x, mask = ids(V), right_padded()
        with torch.no_grad():
            ref, out = hf(input_ids=x, attention_mask=mask), model(x, attention_mask=mask)
        close(out.logits[..., 0], ref.start_logits, "start logits", mask)
        close(out.logits[..., 1], ref.end_logits, "end logits", mask)
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_multiple_choice(tmp_path):
    torch.manual_seed(0)
    hf = tf.DebertaV2ForMultipleChoice(config(**OTHER))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    B, C, T = 2, 3, 6
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, -2:] = 0
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "choice scores")
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_newer_mlm_head_and_untied_legacy(tmp_path):
    """legacy: false (lm_predictions, always tied) imports; export writes the equivalent legacy head. An
    untied legacy head keeps its own decoder matrix."""
    torch.manual_seed(0)
    hf = tf.DebertaV2ForMaskedLM(config(**V3, legacy=False))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    check_encoder(hf, model, V, {"mlm": "logits"})
    pg.to_hf(model, tmp_path / "back")
    again = tf.DebertaV2ForMaskedLM.from_pretrained(tmp_path / "back").eval()
    assert again.config.legacy is True
    x, mask = ids(V), right_padded()
    close(again(input_ids=x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits,
          "exported legacy head", mask)

    hf = tf.DebertaV2ForMaskedLM(config(**V3, tie_word_embeddings=False))
    randomize(hf, seed=1)
    model = save_and_import(hf, tmp_path / "untied")
    assert model.spec.heads[0].tie_embeddings is False
    check_encoder(hf, model, V, {"mlm": "logits"})
    # untied, HF keeps cls.predictions.bias apart from the decoder's bias, which is the one forward adds
    roundtrip(hf, model, tmp_path / "untied-back", dead=("cls.predictions.bias",))


@pytest.mark.parametrize("change, match", [
    ({"conv_kernel_size": 3}, "conv_kernel_size = 3.*not supported"),
    ({"relative_attention": False}, "relative_attention = False"),
    ({"pos_att_type": ["c2p", "p2p"]}, "pos_att_type .* 'p2p'"),
    ({"pos_att_type": []}, "neither c2p nor p2c"),
    ({"norm_rel_ebd": "batch_norm"}, "norm_rel_ebd = 'batch_norm'"),
    ({"embedding_size": 16}, "embedding_size = 16 differs from hidden_size"),
    ({"pooler_hidden_size": 16}, "pooler_hidden_size = 16 differs from hidden_size"),
])
def test_refused_configs(tmp_path, change, match):
    cfg = config(**V3).to_dict()
    cfg.update(change, architectures=["DebertaV2ForMaskedLM"])
    with pytest.raises(ConversionError, match=match):
        config_to_spec(json.loads(json.dumps(cfg)))


@torch.no_grad()
def test_position_dropout_acts_on_the_table_in_training_only(tmp_path):
    """With every other dropout 0, training mode changes the output only through the table's dropout."""
    torch.manual_seed(0)
    hf = tf.DebertaV2Model(config(**V3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    x = ids(V)
    want = model(x).last_hidden_state
    assert torch.equal(model.train()(x).last_hidden_state, want)  # position_dropout 0: train == eval
    for layer in model.encoder.layers.values():
        layer.attn.position_dropout = 0.5
    assert not torch.allclose(model.train()(x).last_hidden_state, want)
    close(model.eval()(x).last_hidden_state, want, "eval ignores the table's dropout")
