"""BART's and OpenAI GPT's architectures beyond the LM heads: the bare ``BartModel`` (the decoder's
last_hidden_state out), ``BartForQuestionAnswering`` (qa_outputs on the decoder states),
``BartForSequenceClassification`` (pool/eos: the decoder state at input_ids' last eos, dense + tanh,
out_proj), the bare ``OpenAIGPTModel`` and ``OpenAIGPTForSequenceClassification`` (the last real token);
fp32 parity with padding and the to_hf round trip.  The architectures with no head kind are refused by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_last_token_classifier,
    close,
    ids,
    randomize,
    right_padded,
    roundtrip,
    save_and_import,
)

import plmgraph as pg
from plmgraph.errors import ConversionError, ExportError, InputError

BART = dict(vocab_size=97, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=40, decoder_ffn_dim=48, max_position_embeddings=32,
            activation_function="gelu")
GPT = dict(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24, pad_token_id=0)


def _pair(cls, cfg, tmp_path):
    torch.manual_seed(0)
    hf = cls(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


@torch.no_grad()
def _seq2seq(hf, model):
    x, mask, dec = ids(97), right_padded(), ids(97, t=5, seed=4)
    return (hf(input_ids=x, attention_mask=mask, decoder_input_ids=dec),
            model(x, attention_mask=mask, decoder_input_ids=dec), mask)


def test_bart_model_bare(tmp_path):
    hf, model = _pair(tf.BartModel, tf.BartConfig(**BART), tmp_path)
    assert not any(k.startswith("model.") for k in hf.state_dict())  # HF saves a bare model unprefixed
    assert model.spec.family == "encoder-decoder" and model.spec.heads == []
    ref, out, mask = _seq2seq(hf, model)
    assert out.logits is None
    close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, "encoder output", mask)
    close(out.last_hidden_state, ref.last_hidden_state, "decoder last_hidden_state")
    roundtrip(hf, model, tmp_path)


def test_bart_question_answering(tmp_path):
    hf, model = _pair(tf.BartForQuestionAnswering, tf.BartConfig(**BART), tmp_path)
    assert [h.kind for h in model.spec.heads] == ["question_answering"]
    ref, out, _ = _seq2seq(hf, model)
    close(out.logits[..., 0], ref.start_logits, "start_logits")
    close(out.logits[..., 1], ref.end_logits, "end_logits")
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_bart_sequence_classification_last_eos(tmp_path):
    from transformers.models.bart.modeling_bart import shift_tokens_right

    hf, model = _pair(tf.BartForSequenceClassification, tf.BartConfig(**BART, num_labels=3), tmp_path)
    p = model.spec.pooler
    assert (p.kind, p.eos_id, p.dense, p.activation) == ("eos", hf.config.eos_token_id, True, "tanh")
    x, mask = ids(97), right_padded()
    x[:, 1] = 2  # an earlier eos in every row: the last one is pooled
    x[0, -2], x[1, -3] = 2, 2  # row 0: one more token after its last eos (not the last kept token)
    x[1, -2:] = 1  # the padded row: its last real token is its eos, then pad (1) tokens
    dec = shift_tokens_right(x, hf.config.pad_token_id, hf.config.decoder_start_token_id)
    ref = hf(input_ids=x, attention_mask=mask).logits  # HF shifts input_ids right itself
    close(model(x, attention_mask=mask, decoder_input_ids=dec).logits, ref, "sequence logits")
    assert not torch.allclose(model(x, attention_mask=mask, decoder_input_ids=dec).last_hidden_state[0, -2],
                              model(x, attention_mask=mask, decoder_input_ids=dec).last_hidden_state[0, -1])
    with pytest.raises(InputError, match="decoder_input_ids must have input_ids' length 7, got 5"):
        model(x, attention_mask=mask, decoder_input_ids=dec[:, :5])
    with pytest.raises(InputError, match="needs an eos token"):
        model(x.masked_fill(x == 2, 5), attention_mask=mask, decoder_input_ids=dec)
    roundtrip(hf, model, tmp_path)
    from plmgraph.exporters.onnx import signature

    with pytest.raises(ExportError, match=r"pooler \(kind eos\).*ONNX export of such a model is not supported"):
        signature(model)


def test_pool_eos_id_only_with_kind_eos():
    from plmgraph.spec.heads import Pooler

    with pytest.raises(ValueError, match="`eos_id` goes with kind eos"):
        Pooler(kind="last", eos_id=2)
    with pytest.raises(ValueError, match="`eos_id` goes with kind eos"):
        Pooler(kind="eos")


def test_openai_gpt_model_bare(tmp_path):
    hf, model = _pair(tf.OpenAIGPTModel, tf.OpenAIGPTConfig(**GPT), tmp_path)
    assert not any(k.startswith("transformer.") for k in hf.state_dict())
    check_bare(hf, model, 101)  # HF's OpenAIGPTModel has no KV cache
    roundtrip(hf, model, tmp_path)


def test_openai_gpt_sequence_classification_last_token(tmp_path):
    hf, model = _pair(tf.OpenAIGPTForSequenceClassification, tf.OpenAIGPTConfig(**GPT, num_labels=3), tmp_path)
    assert model.spec.pooler.kind == "last" and not model.spec.heads[0].bias
    check_last_token_classifier(hf, model, 101)
    roundtrip(hf, model, tmp_path)


@pytest.mark.parametrize("cls,cfg,why", [(tf.OpenAIGPTDoubleHeadsModel, tf.OpenAIGPTConfig(**GPT), "mc_token_ids"),
                                         (tf.BartForCausalLM, tf.BartConfig(**BART), "encoder_attn")])
def test_architectures_without_a_head_kind_refused_by_name(tmp_path, cls, cfg, why):
    torch.manual_seed(0)
    cls(cfg).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [cls.__name__]
    with pytest.raises(ConversionError, match=f"'{cls.__name__}' is not supported: .*{why}"):
        pg.from_hf(tmp_path)
