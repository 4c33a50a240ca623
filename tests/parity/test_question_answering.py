"""Parity of the question-answering head (``head/question_answering``): every ``*ForQuestionAnswering`` of
the imported types, a tiny random HF model in fp32 with padding, start and end logits, HF's span loss,
and the HF round trip (same architecture, state dict and spec)."""

import pytest
import torch
import transformers as tf
from parity_util import B, T, close, ids, randomize, right_padded, roundtrip, save_and_import

V = 113
ENC = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
           max_position_embeddings=64)
DEC = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           intermediate_size=48, max_position_embeddings=64, pad_token_id=0)

#: HF class prefix -> config
CASES = {
    "Bert": tf.BertConfig(**ENC),
    "Roberta": tf.RobertaConfig(**ENC, pad_token_id=1),
    "XLMRoberta": tf.XLMRobertaConfig(**ENC, pad_token_id=1),
    "Albert": tf.AlbertConfig(**ENC, embedding_size=16),
    "DistilBert": tf.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                                      max_position_embeddings=64),
    "Ernie": tf.ErnieConfig(**ENC),
    "Electra": tf.ElectraConfig(**ENC, embedding_size=16),
    "Llama": tf.LlamaConfig(**DEC),
    "Qwen2": tf.Qwen2Config(**DEC),
    "Mistral": tf.MistralConfig(**DEC),
    "Qwen3": tf.Qwen3Config(**DEC, head_dim=16),
    "Mixtral": tf.MixtralConfig(**DEC, num_local_experts=4, num_experts_per_tok=2),
    "Qwen2Moe": tf.Qwen2MoeConfig(**DEC, moe_intermediate_size=24, shared_expert_intermediate_size=40, num_experts=4,
                                  num_experts_per_tok=2),
    "GPTJ": tf.GPTJConfig(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64, rotary_dim=4),
    "Qwen3Moe": tf.Qwen3MoeConfig(**DEC, moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2),
    "GPT2": tf.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "GPTNeoX": tf.GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=48, max_position_embeddings=64),
    "OPT": tf.OPTConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
                        max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=1),
    "Bloom": tf.BloomConfig(vocab_size=V, hidden_size=32, n_layer=2, n_head=4),
    "Falcon": tf.FalconConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              ffn_hidden_size=48, max_position_embeddings=64),
}


@pytest.mark.parametrize("prefix", list(CASES))
@torch.no_grad()
def test_question_answering(tmp_path, prefix):
    torch.manual_seed(0)
    hf = getattr(tf, prefix + "ForQuestionAnswering")(CASES[prefix])
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    s = model.spec
    assert [h.kind for h in s.heads] == ["question_answering"] and s.pooler is None
    x, mask = ids(V), right_padded()
    ref = hf(input_ids=x, attention_mask=mask)
    out = model(x, attention_mask=mask)
    assert out.logits.shape == (B, T, 2)
    close(out.logits[..., 0], ref.start_logits, "start_logits", mask)
    close(out.logits[..., 1], ref.end_logits, "end_logits", mask)
    # the loss runs over every position, pads too (whose states differ by design): checked unpadded
    pos = torch.tensor([[1, 3], [2, T + 4]])  # the second end lies outside the sequence: ignored, as in HF
    want = hf(input_ids=x, start_positions=pos[:, 0], end_positions=pos[:, 1]).loss
    close(model(x, labels=pos).loss, want, "span loss")
    roundtrip(hf, model, tmp_path)
