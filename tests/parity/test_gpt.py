"""GPT parity: OpenAI GPT (post-norm, Conv1D) and GPT-2 (pre-norm, Conv1D, tied lm head), with KV cache."""

import torch
import transformers as tf
from parity_util import check_decoder, randomize, save_and_import


def test_openai_gpt_lm(tmp_path):
    torch.manual_seed(0)
    cfg = tf.OpenAIGPTConfig(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24,
                             layer_norm_epsilon=1e-6, afn="gelu")
    hf = tf.OpenAIGPTLMHeadModel(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.block.placement == "post" and model.spec.block.mlp.activation == "gelu_tanh"
    check_decoder(hf, model, 101, hf_cache=False)  # HF's OpenAIGPT has no KV cache


def test_gpt2_lm(tmp_path):
    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24, n_inner=48,
                        layer_norm_epsilon=1e-6, activation_function="gelu_new")
    hf = tf.GPT2LMHeadModel(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.heads[0].tie_embeddings
    check_decoder(hf, model, 101)


@torch.no_grad()
def test_gpt2_sequence_classification_last_token(tmp_path):
    from parity_util import close, ids, right_padded

    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24, num_labels=3,
                        pad_token_id=0)
    hf = tf.GPT2ForSequenceClassification(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    assert model.spec.pooler.kind == "last"
    x, mask = ids(101), right_padded()
    x = x.masked_fill(mask == 0, 0)  # HF finds the last token by pad_token_id, plmgraph by the mask
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "logits")
