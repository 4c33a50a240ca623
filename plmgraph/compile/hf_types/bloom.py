"""``bloom``: BLOOM (BigScience 2022): ALiBi instead of positions, a LayerNorm on the embeddings,
pre-LayerNorm blocks with biases everywhere, a tanh-GELU MLP of 4 * hidden, tied embeddings, and one
fused ``query_key_value`` whose rows are per head [q, k, v] (`Rule.qkv_per_head`).

HF numbers ALiBi's key positions over the real tokens (the attention mask's running count), plmgraph
by index: the same scores wherever the padding is on the left or at the end, but not for a token
cached after a gap of padding (right-padded batches continued with the KV cache)."""

from __future__ import annotations

from .base import F, Family, Fixed, bare, last_token_classifier, lm, question_answering, token_classifier
from .weights import R

L = "transformer.h.{layer}"

FAMILY = Family(
    model_type="bloom",
    base={"family": "decoder", "embeddings": {"norm": True}, "position": {"kind": "alibi"},
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True, "activation": "gelu_tanh"}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("hidden_size", "sizes.hidden"),
        F("n_layer", "sizes.layers"),
        F("n_head", "sizes.heads"),  # the MLP is 4 * hidden wide: the spec default ffn
        F("layer_norm_epsilon", "block.norm.eps", 1e-5),
        F("hidden_dropout", "block.dropout", 0.0),
        F("attention_dropout", "block.attention.dropout", 0.0),
    ),
    fixed=(
        Fixed("apply_residual_connection_post_layernorm", (False,), "the residual taken after the norm"),
        Fixed("pretraining_tp", (1, None), "tensor-parallel emulation changes the numerics"),
        Fixed("slow_but_exact", (False,), "tensor-parallel emulation changes the numerics"),
    ),
    archs={"BloomForQuestionAnswering": question_answering,
           "BloomForCausalLM": lm(True), "BloomModel": bare, "BloomForSequenceClassification": last_token_classifier,
           "BloomForTokenClassification": token_classifier},
    bare=("BloomModel",),
    base_prefix="transformer",
    names={
        "token": R("transformer.word_embeddings.{p}"),
        "embed_norm": R("transformer.word_embeddings_layernorm.{p}"),
        "attn_norm": R(f"{L}.input_layernorm.{{p}}"),
        "attn.qkv": R(f"{L}.self_attention.query_key_value.{{p}}", qkv_per_head=True),
        "attn.out": R(f"{L}.self_attention.dense.{{p}}"),
        "mlp_norm": R(f"{L}.post_attention_layernorm.{{p}}"),
        "mlp.up": R(f"{L}.mlp.dense_h_to_4h.{{p}}"),
        "mlp.down": R(f"{L}.mlp.dense_4h_to_h.{{p}}"),
        "final_norm": R("transformer.ln_f.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/token_classification": R("classifier.{p}"),
    },
    ignored=(r"^lm_head\.weight$",),
)
