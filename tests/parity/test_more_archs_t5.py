"""T5's task heads: T5ForQuestionAnswering (qa_outputs on the decoder's states) and
T5ForTokenClassification (the encoder alone, under ``transformer.``, + classifier), with padding and the
to_hf round trip; T5ForSequenceClassification is refused by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import close, ids, randomize, right_padded, roundtrip, save_and_import


def _cfg(**kw):
    return tf.T5Config(vocab_size=103, d_model=32, d_kv=12, d_ff=40, num_layers=2, num_decoder_layers=3,
                       num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                       layer_norm_epsilon=1e-5, decoder_start_token_id=0, **kw)


@pytest.mark.parametrize("proj", ["relu", "gated-gelu"])
@torch.no_grad()
def test_t5_question_answering(tmp_path, proj):
    torch.manual_seed(0)
    hf = tf.T5ForQuestionAnswering(_cfg(feed_forward_proj=proj))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert [h.kind for h in model.spec.heads] == ["question_answering"] and model.spec.decoder.layers == 3
    x, mask = ids(103), right_padded()
    dec = ids(103, t=6, seed=4)
    dmask = right_padded(t=6, pad=1)
    ref = hf(input_ids=x, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dmask)
    out = model(x, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dmask).logits
    close(out[..., 0], ref.start_logits, "start logits", dmask)
    close(out[..., 1], ref.end_logits, "end logits", dmask)
    # HF's default decoder input: the encoder input shifted right behind decoder_start_token_id
    ref = hf(input_ids=x, attention_mask=mask)
    out = model(x, attention_mask=mask, decoder_input_ids=hf._shift_right(x)).logits
    close(out[..., 0], ref.start_logits, "start logits (shifted input)")
    close(out[..., 1], ref.end_logits, "end logits (shifted input)")
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_t5_token_classification(tmp_path):
    torch.manual_seed(0)
    hf = tf.T5ForTokenClassification(_cfg(num_labels=5, feed_forward_proj="gated-gelu"))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.family == "encoder" and model.spec.encoder.layers == 2
    assert [(h.kind, h.labels) for h in model.spec.heads] == [("token_classification", 5)]
    x, mask = ids(103), right_padded()
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "token logits", mask)
    roundtrip(hf, model, tmp_path)
    assert json.loads((tmp_path / "back" / "config.json").read_text())["num_labels"] == 5
