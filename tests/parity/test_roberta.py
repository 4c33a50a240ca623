"""RoBERTa parity: RobertaForMaskedLM (positions offset by padding_idx + 1), RobertaForSequenceClassification."""

import torch
import transformers as tf
from parity_util import check_encoder, randomize, save_and_import


def config(**kw):
    # pad_token_id 1 -> positions start at 2; the table has max_positions + 2 rows.
    return tf.RobertaConfig(vocab_size=91, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=40, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1,
                            layer_norm_eps=1e-6, hidden_act="gelu_new", **kw)


def test_roberta_masked_lm(tmp_path):
    torch.manual_seed(0)
    hf = tf.RobertaForMaskedLM(config())
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.position.offset == 2 and model.spec.sizes.max_positions == 32
    check_encoder(hf, model, 91, {"mlm": "logits"})


def test_roberta_sequence_classification(tmp_path):
    torch.manual_seed(0)
    hf = tf.RobertaForSequenceClassification(config(num_labels=3))
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    check_encoder(hf, model, 91, {"sequence_classification": "logits"})


@torch.no_grad()
def test_roberta_left_padding_positions_count_real_tokens(tmp_path):
    """HF numbers positions over non-pad tokens (create_position_ids_from_input_ids): with left padding
    every kept token's position differs from its index, so this fails unless positions are padding-aware."""
    from parity_util import B, T, close, ids

    torch.manual_seed(0)
    hf = tf.RobertaForMaskedLM(config())
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[-1, :3] = 0
    x = ids(91).masked_fill(mask == 0, 1)  # pad_token_id where the mask is 0, as a tokenizer writes
    ref = hf(input_ids=x, attention_mask=mask)
    out = model(x, attention_mask=mask)
    close(out.logits, ref.logits, "mlm logits with left padding", mask)
