"""``falcon``: Falcon (TII 2023), a rotary decoder in three layouts, all with one fused
``query_key_value`` whose rows are grouped per key/value head (`Rule.qkv_grouped`):

* Falcon-7B (``parallel_attn``, ``multi_query``): attention and MLP in parallel on one shared
  LayerNorm (``input_layernorm``), one key/value head;
* Falcon-40B/180B (``new_decoder_architecture``): parallel with two LayerNorms (``ln_attn``,
  ``ln_mlp``; ``num_ln_in_parallel_attn: 1`` shares one), ``num_kv_heads`` grouped key/value heads;
* ``parallel_attn: false``: sequential pre-norm sublayers (``input_layernorm``,
  ``post_attention_layernorm``).

``bias`` switches every linear's bias.  ALiBi Falcons (``alibi: true``, Falcon-RW) scale the ALiBi bias
by 1/sqrt(head_dim) together with the scores, which plmgraph's ALiBi does not: refused.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import (
    ACT,
    Cfg,
    F,
    Family,
    Fixed,
    bare,
    last_token_classifier,
    lm,
    need,
    question_answering,
    token_classifier,
)
from .rope import rope_hook, rope_unhook
from .weights import R

L = "transformer.h.{layer}"
_rope_hook, _rope_unhook = rope_hook(10000.0), rope_unhook(False)
#: the graph of a parallel block with two norms has both of these nodes (a sequential one has no `add`)
TWO_NORMS = ("{stack}.layers.{layer}.add", "{stack}.layers.{layer}.mlp_norm")


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    _rope_hook(cfg, d)
    heads = cfg["num_attention_heads"]
    b = d["block"]
    if cfg.get("new_decoder_architecture"):
        if cfg.get("parallel_attn") is False:
            raise ConversionError("config.json: new_decoder_architecture = true with parallel_attn = false has no "
                                  "plmgraph equivalent (HF's decoder layer has no norms for it); supported: "
                                  "parallel_attn = true")
        b["attention"]["kv_heads"] = cfg.get("num_kv_heads") or heads
        n_ln = cfg.get("num_ln_in_parallel_attn") or 2
        if n_ln not in (1, 2):
            raise ConversionError(f"config.json: num_ln_in_parallel_attn = {n_ln!r} is not supported; supported: 1, 2")
        b["residual"] = {"kind": "parallel", "shared_norm": n_ln == 1}
    else:
        b["attention"]["kv_heads"] = 1 if cfg.get("multi_query", True) else (cfg.get("num_kv_heads") or heads)
        b["residual"] = {"kind": "parallel", "shared_norm": True} if cfg.get("parallel_attn", True) \
            else {"kind": "sequential"}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    _rope_unhook(spec, cfg)
    b, heads = spec.block, spec.sizes.heads
    kv = b.attention.kv_heads
    need(b.attention.qkv_bias == b.attention.out_bias == b.mlp.bias, "falcon",
         "different biases on qkv, the attention output and the MLP (one `bias` switches them all)")
    parallel = b.residual.kind == "parallel"
    new = parallel and (not b.residual.shared_norm or kv not in (1, heads))
    if not new:
        need(kv in (1, heads), "falcon", f"kv_heads = {kv} without the new decoder architecture")
    cfg.update(new_decoder_architecture=new, parallel_attn=parallel, multi_query=kv == 1 and not new,
               num_kv_heads=kv if new else heads,
               num_ln_in_parallel_attn=(1 if b.residual.shared_norm else 2) if new else None)


FAMILY = Family(
    model_type="falcon",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal"}, "mlp": {"kind": "dense"}}},
    fields=(F("vocab_size", "sizes.vocab"),
            F("hidden_size", "sizes.hidden"),
            F("num_hidden_layers", "sizes.layers"),
            F("num_attention_heads", "sizes.heads"),
            F("ffn_hidden_size", "sizes.ffn", lambda c: 4 * c["hidden_size"]),
            F("max_position_embeddings", "sizes.max_positions", 2048),
            F("layer_norm_epsilon", "block.norm.eps", 1e-5),
            F("bias", "block.attention.qkv_bias", False),
            F("bias", "block.attention.out_bias", False),
            F("bias", "block.mlp.bias", False),
            F("activation", "block.mlp.activation", "gelu", ACT),
            F("hidden_dropout", "block.dropout", 0.0),
            F("attention_dropout", "block.attention.dropout", 0.0)),
    fixed=(Fixed("alibi", (False, None), "Falcon's ALiBi is scaled by 1/sqrt(head_dim) with the scores, "
                 "which plmgraph's ALiBi is not"),),
    archs={"FalconForQuestionAnswering": question_answering,
           "FalconForCausalLM": lm(True), "FalconModel": bare,
           "FalconForSequenceClassification": last_token_classifier,
           "FalconForTokenClassification": token_classifier},
    bare=("FalconModel",),
    base_prefix="transformer",
    names={
        "token": R("transformer.word_embeddings.{p}"),
        "attn_norm": [R(f"{L}.ln_attn.{{p}}", when=TWO_NORMS), R(f"{L}.input_layernorm.{{p}}")],
        "attn.qkv": R(f"{L}.self_attention.query_key_value.{{p}}", qkv_grouped=True),
        "attn.out": R(f"{L}.self_attention.dense.{{p}}"),
        "mlp_norm": [R(f"{L}.ln_mlp.{{p}}", when=TWO_NORMS), R(f"{L}.post_attention_layernorm.{{p}}")],
        "mlp.up": R(f"{L}.mlp.dense_h_to_4h.{{p}}"),
        "mlp.down": R(f"{L}.mlp.dense_4h_to_h.{{p}}"),
        "final_norm": R("transformer.ln_f.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "head/token_classification": R("classifier.{p}"),
    },
    ignored=(r"^lm_head\.weight$",),
    hook=_hook,
    unhook=_unhook,
)
