"""Parity of the multiple-choice head (``head/multiple_choice``): every ``*ForMultipleChoice`` of the
imported encoders, a tiny random HF model in fp32 on [B, C, T] inputs with padding, the [B, C] scores,
HF's loss, and the HF round trip (same architecture, state dict and spec)."""

import pytest
import torch
import transformers as tf
from parity_util import close, ids, randomize, roundtrip, save_and_import

V, B, C, T = 113, 2, 3, 6
ENC = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
           max_position_embeddings=64)
CASES = {
    "Bert": tf.BertConfig(**ENC),
    "Roberta": tf.RobertaConfig(**ENC, pad_token_id=1),
    "XLMRoberta": tf.XLMRobertaConfig(**ENC, pad_token_id=1),
    "Albert": tf.AlbertConfig(**ENC, embedding_size=16),
    "DistilBert": tf.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                                      max_position_embeddings=64),
    "Ernie": tf.ErnieConfig(**ENC),
}


@pytest.mark.parametrize("prefix", list(CASES))
@torch.no_grad()
def test_multiple_choice(tmp_path, prefix):
    torch.manual_seed(0)
    hf = getattr(tf, prefix + "ForMultipleChoice")(CASES[prefix])
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    assert [h.kind for h in model.spec.heads] == ["multiple_choice"] and model.spec.pooler.kind == "cls"
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, -2:] = 0  # one padded candidate
    ref = hf(input_ids=x, attention_mask=mask)
    out = model(x, attention_mask=mask)
    assert out.logits.shape == (B, C)
    close(out.logits, ref.logits, "choice scores")
    labels = torch.tensor([2, 0])
    close(model(x, attention_mask=mask, labels=labels).loss, hf(input_ids=x, attention_mask=mask,
                                                                labels=labels).loss, "loss")
    roundtrip(hf, model, tmp_path)
