"""``distilbert``: a six-layer BERT without segments or pooler, with its own field and tensor names."""

from __future__ import annotations

from .base import ACT, F, Family, bare, classifier, mlm, multiple_choice, question_answering
from .weights import QKV, R

_L = "distilbert.transformer.layer.{layer}"

FAMILY = Family(
    model_type="distilbert",
    base={"family": "encoder", "embeddings": {"norm": True}, "position": {"kind": "learned"},
          "block": {"placement": "post", "norm": {"kind": "layernorm", "eps": 1e-12},
                    "attention": {"kind": "self", "mask": "bidirectional", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("dim", "sizes.hidden"),
        F("n_layers", "sizes.layers"),
        F("n_heads", "sizes.heads"),
        F("hidden_dim", "sizes.ffn"),
        F("max_position_embeddings", "sizes.max_positions", 512),
        F("activation", "block.mlp.activation", "gelu", ACT),
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("attention_dropout", "block.attention.dropout", 0.1),
    ),
    archs={
        "DistilBertModel": bare,
        "DistilBertForMaskedLM": lambda c: {"heads": [mlm(c, "activation")]},
        "DistilBertForSequenceClassification": lambda c: {
            "heads": [classifier("sequence_classification", c)],
            "pooler": {"kind": "cls", "dense": True, "activation": "relu"}},
        "DistilBertForTokenClassification": lambda c: {"heads": [classifier("token_classification", c)]},
        "DistilBertForQuestionAnswering": question_answering,
        "DistilBertForMultipleChoice": lambda c: multiple_choice(c, {"kind": "cls", "dense": True,
                                                                     "activation": "relu"}),
    },
    names={
        "token": R("distilbert.embeddings.word_embeddings.{p}"),
        "position": R("distilbert.embeddings.position_embeddings.{p}"),
        "embed_norm": R("distilbert.embeddings.LayerNorm.{p}"),
        "attn.qkv": QKV(_L + ".attention.{x}.{p}", "q_lin", "k_lin", "v_lin"),
        "attn.out": R(f"{_L}.attention.out_lin.{{p}}"),
        "attn_norm": R(f"{_L}.sa_layer_norm.{{p}}"),
        "mlp.up": R(f"{_L}.ffn.lin1.{{p}}"),
        "mlp.down": R(f"{_L}.ffn.lin2.{{p}}"),
        "mlp_norm": R(f"{_L}.output_layer_norm.{{p}}"),
        "head/mlm.transform": R("vocab_transform.{p}"),
        "head/mlm.norm": R("vocab_layer_norm.{p}"),
        "head/mlm.bias": R("vocab_projector.bias"),
        "head/mlm.proj": R("vocab_projector.{p}"),
        "pooler.dense": R("pre_classifier.{p}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/token_classification": R("classifier.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/multiple_choice": R("classifier.{p}"),
    },
    ignored=(r"^vocab_projector\.weight$",),
    bare=("DistilBertModel",),
    base_prefix="distilbert",
)
