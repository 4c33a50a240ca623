"""BART parity: learned positions offset 2 per stack, embedding LayerNorm, post-norm, final_logits_bias."""

import pytest
import torch
import transformers as tf
from parity_util import check_seq2seq, randomize, save_and_import


@pytest.mark.parametrize("scale_embedding", [False, True])
def test_bart_conditional_generation(tmp_path, scale_embedding):
    torch.manual_seed(0)
    cfg = tf.BartConfig(vocab_size=97, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=40, decoder_ffn_dim=48, max_position_embeddings=32,
                        scale_embedding=scale_embedding, activation_function="gelu")
    hf = tf.BartForConditionalGeneration(cfg)
    randomize(hf)
    with torch.no_grad():  # a fine-tuned, nonzero final_logits_bias must survive the import
        hf.final_logits_bias.copy_(torch.randn(hf.final_logits_bias.shape, generator=torch.Generator().manual_seed(9)))
    model = save_and_import(hf, tmp_path)
    assert model.spec.heads[0].bias
    check_seq2seq(hf, model, 97)
