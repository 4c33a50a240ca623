"""T5's task heads: T5ForQuestionAnswering (qa_outputs on the decoder's states) and
T5ForTokenClassification (the encoder alone, under ``transformer.``, + classifier), with padding and the
to_hf round trip; T5ForSequenceClassification (pool/eos: the decoder state at input_ids' last eos, then
T5ClassificationHead's dense + tanh + out_proj)."""

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


def _with_eos(lengths, t, eos=1, pad=0, pairs=False):
    """[B, t] ids ending each row's `lengths` tokens in eos (pairs: a second eos mid-sentence), pad after; the mask."""
    x = ids(103, b=len(lengths), t=t, seed=7)
    mask = torch.zeros(len(lengths), t, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, n - 1] = eos
        if pairs:
            x[i, n // 2] = eos
        x[i, n:] = pad
        mask[i, :n] = 1
    return x, mask


@pytest.mark.parametrize("pairs", [False, True])
@torch.no_grad()
def test_t5_sequence_classification(tmp_path, pairs):
    torch.manual_seed(0)
    hf = tf.T5ForSequenceClassification(_cfg(num_labels=3, feed_forward_proj="gated-gelu"))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    p = model.spec.pooler
    assert (p.kind, p.eos_id, p.dense, p.activation) == ("eos", 1, True, "tanh")
    assert [(h.kind, h.labels) for h in model.spec.heads] == [("sequence_classification", 3)]
    x, mask = _with_eos([8, 5, 3], 8, pairs=pairs)
    ref = hf(input_ids=x, attention_mask=mask).logits  # HF's decoder input: x shifted right
    out = model(x, attention_mask=mask, decoder_input_ids=hf._shift_right(x)).logits
    close(out, ref, "sequence logits")
    roundtrip(hf, model, tmp_path)


@torch.no_grad()
def test_t5_sequence_classification_refusals(tmp_path):
    from plmgraph.errors import InputError

    hf = tf.T5ForSequenceClassification(_cfg(num_labels=2))
    model = save_and_import(hf, tmp_path)
    x, mask = _with_eos([6, 4], 6)
    with pytest.raises(InputError, match="decoder_input_ids must have input_ids' length 6"):
        model(x, attention_mask=mask, decoder_input_ids=hf._shift_right(x)[:, :4])
    with pytest.raises(InputError, match="eos token \\(id 1\\) in every row"):
        model(x.masked_fill(x == 1, 5), attention_mask=mask, decoder_input_ids=hf._shift_right(x))
