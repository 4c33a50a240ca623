"""``bart``: BART (Lewis et al. 2019), a post-norm encoder-decoder with learned positions offset by 2."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, bare, cfg_value, classifier, lm, question_answering
from .weights import QKV, R


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    heads = {cfg_value(cfg, "encoder_attention_heads", 12), cfg_value(cfg, "decoder_attention_heads", 12)}
    if len(heads) > 1:
        raise ConversionError(
            f"config.json: encoder_attention_heads ({cfg['encoder_attention_heads']}) != decoder_attention_heads "
            f"({cfg['decoder_attention_heads']}); plmgraph has one sizes.heads"
        )
    d["sizes"]["heads"] = heads.pop()
    d["sizes"]["layers"] = d["encoder"]["layers"]
    d["sizes"]["ffn"] = d["encoder"]["block"]["mlp"]["ffn"]


def _sequence_classifier(c: Cfg) -> dict[str, Any]:
    """BartForSequenceClassification: the decoder state at input_ids' last eos, BartClassificationHead's
    dense + tanh (the pooler), then its out_proj (the classifier)."""
    return {"heads": [classifier("sequence_classification", c)],
            "pooler": {"kind": "eos", "eos_id": int(cfg_value(c, "eos_token_id", 2)), "dense": True,
                       "activation": "tanh"}}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    cfg["encoder_attention_heads"] = cfg["decoder_attention_heads"] = spec.sizes.heads
    if spec.pooler is not None and spec.pooler.kind == "eos" and spec.heads:
        cfg["eos_token_id"] = cfg["forced_eos_token_id"] = spec.pooler.eos_id
    if "initializer_range" in cfg:  # BART calls it init_std
        cfg["init_std"] = cfg.pop("initializer_range")


_L = "model.{stack}.layers.{layer}"

FAMILY = Family(
    model_type="bart",
    base={"family": "encoder-decoder", "embeddings": {"share_across_stacks": True, "norm": True},
          "position": {"kind": "learned", "offset": 2},
          "block": {"placement": "post", "norm": {"kind": "layernorm", "eps": 1e-5},
                    "attention": {"kind": "self", "qkv_bias": True, "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("d_model", "sizes.hidden"),
        F("encoder_layers", "encoder.layers", 12),
        F("decoder_layers", "decoder.layers", 12),
        F("encoder_ffn_dim", "encoder.block.mlp.ffn", 4096),
        F("decoder_ffn_dim", "decoder.block.mlp.ffn", 4096),
        F("max_position_embeddings", "sizes.max_positions", 1024),
        F("activation_function", "block.mlp.activation", "gelu", ACT),
        F("scale_embedding", "embeddings.scale", False),
        F("dropout", "block.dropout", 0.1),
        F("dropout", "embeddings.dropout", 0.1),
        F("attention_dropout", "block.attention.dropout", 0.0),
    ),
    # final_logits_bias (a persistent buffer, zeros in a fresh model) is the lm head's bias, so a
    # fine-tuned nonzero one is kept exactly; plmgraph trains it, HF does not.
    # BartModel: the decoder's last_hidden_state out; BartForQuestionAnswering: qa_outputs on the decoder states;
    # BartForSequenceClassification: pool/eos. BartForCausalLM: `refused`.
    archs={"BartForConditionalGeneration": lm(True, bias=True), "BartModel": bare,
           "BartForQuestionAnswering": question_answering, "BartForSequenceClassification": _sequence_classifier},
    refused={"BartForCausalLM": "it is BART's decoder alone, whose layers still hold the cross-attention weights "
             "(encoder_attn) that nothing reads without an encoder; a plmgraph decoder has no unused sublayer"},
    bare=("BartModel",),
    base_prefix="model",
    names={
        "token": R("model.shared.{p}"),
        "position": R("model.{stack}.embed_positions.{p}"),
        "embed_norm": R("model.{stack}.layernorm_embedding.{p}"),
        "attn.qkv": QKV(_L + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{_L}.self_attn.out_proj.{{p}}"),
        "attn_norm": R(f"{_L}.self_attn_layer_norm.{{p}}"),
        "cross.q": R(f"{_L}.encoder_attn.q_proj.{{p}}"),
        "cross.kv": R(f"{_L}.encoder_attn.k_proj.{{p}}", f"{_L}.encoder_attn.v_proj.{{p}}", split="kv"),
        "cross.out": R(f"{_L}.encoder_attn.out_proj.{{p}}"),
        "cross_norm": R(f"{_L}.encoder_attn_layer_norm.{{p}}"),
        "mlp.up": R(f"{_L}.fc1.{{p}}"),
        "mlp.down": R(f"{_L}.fc2.{{p}}"),
        "mlp_norm": R(f"{_L}.final_layer_norm.{{p}}"),
        "head/lm.bias": R("final_logits_bias", lead=1, zeros_if_missing=True),
        "head/lm.proj": R("lm_head.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
        "pooler.dense": R("classification_head.dense.{p}"),
        "head/sequence_classification": R("classification_head.out_proj.{p}"),
    },
    ignored=(r"^model\.(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
    hook=_hook,
    unhook=_unhook,
    extra_hf={"decoder_start_token_id": 2, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
              "forced_eos_token_id": 2},
)
