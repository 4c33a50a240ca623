"""`model(..., labels=...)` -> `out.loss` equals Hugging Face's loss on imported tiny random models."""

import pytest
import torch

tf = pytest.importorskip("transformers")
from parity_util import ids, randomize, right_padded, save_and_import  # noqa: E402

import plmgraph as pg  # noqa: E402
from plmgraph.errors import InputError  # noqa: E402


def close(a, b):
    torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


def labels_with_ignored(x, mask):
    y = x.clone()
    y[mask == 0] = -100
    y[0, 2] = -100
    return y


@torch.no_grad()
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_causal_lm_loss(tmp_path, arch):
    torch.manual_seed(0)
    if arch == "gpt2":
        hf = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24))
    else:
        hf = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                                                max_position_embeddings=64))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    x, mask = ids(101), right_padded()
    y = labels_with_ignored(x, mask)
    ref = hf(input_ids=x, attention_mask=mask, labels=y).loss
    out = model(x, attention_mask=mask, labels=y)
    close(out.loss, ref)
    assert out.logits.shape == (2, 7, 101)


@torch.no_grad()
def test_bert_pretraining_loss_mlm_plus_nsp(tmp_path):
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=72, max_position_embeddings=40)
    hf = tf.BertForPreTraining(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    x, mask = ids(97), right_padded()
    y = torch.full_like(x, -100)
    y[:, 1:4] = x[:, 1:4]
    nsp = torch.tensor([0, 1])
    ref = hf(input_ids=x, attention_mask=mask, labels=y, next_sentence_label=nsp).loss
    close(model(x, attention_mask=mask, labels=y, next_sentence_label=nsp).loss, ref)
    mlm_only = tf.BertForMaskedLM(cfg)
    mlm_only.load_state_dict(hf.state_dict(), strict=False)
    mlm_only.eval()
    close(model(x, attention_mask=mask, labels=y).loss, mlm_only(input_ids=x, attention_mask=mask, labels=y).loss)


@torch.no_grad()
def test_t5_seq2seq_loss(tmp_path):
    torch.manual_seed(0)
    cfg = tf.T5Config(vocab_size=103, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0)
    hf = tf.T5ForConditionalGeneration(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    x, mask = ids(103), right_padded()
    y = ids(103, t=5, seed=4)
    y[1, -1] = -100
    ref = hf(input_ids=x, attention_mask=mask, labels=y).loss  # HF shifts labels right itself
    dec = torch.cat([torch.zeros(2, 1, dtype=torch.long), y[:, :-1]], 1)  # decoder start 0, as HF's shift
    dec = dec.masked_fill(dec == -100, 0)
    close(model(x, attention_mask=mask, decoder_input_ids=dec, labels=y).loss, ref)


@torch.no_grad()
def test_sequence_classification_loss(tmp_path):
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=97, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=72, max_position_embeddings=40, num_labels=3)
    hf = tf.BertForSequenceClassification(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    x, mask = ids(97), right_padded()
    y = torch.tensor([2, 0])
    close(model(x, attention_mask=mask, labels=y).loss, hf(input_ids=x, attention_mask=mask, labels=y).loss)


def test_wrong_label_shapes_are_clear_errors(tmp_path):
    from helpers import tiny

    model = pg.build(tiny("gpt2"), device="cpu", seed=0)
    x = torch.randint(0, 128, (2, 6))
    with pytest.raises(InputError, match=r"labels must have shape \(2, 6\)"):
        model(x, labels=x[:, :3])
    with pytest.raises(InputError, match="no nsp head"):
        model(x, next_sentence_label=torch.tensor([0, 1]))
