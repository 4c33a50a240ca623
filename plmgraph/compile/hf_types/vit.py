"""``vit``: ViT (Dosovitskiy et al. 2020), a pre-norm encoder over image patches and a [CLS] token."""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from .base import ACT, Cfg, F, Family, bare, classifier
from .weights import QKV, R


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    p = d["embeddings"]["patches"]
    d["sizes"]["max_positions"] = (p["image_size"] // p["patch_size"]) ** 2 + 1


def _refused(c: Cfg) -> dict[str, Any]:
    raise ConversionError("config.json: architectures[0] = 'ViTForMaskedImageModeling' (SimMIM: a mask token over "
                          "patches and a convolutional pixel decoder) is not supported; supported: ViTModel, "
                          "ViTForImageClassification")


_L = "vit.encoder.layer.{layer}"

FAMILY = Family(
    model_type="vit",
    base={"family": "encoder", "embeddings": {"patches": {"cls_token": True}}, "position": {"kind": "learned"},
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "bidirectional", "out_bias": True},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("hidden_size", "sizes.hidden"),
        F("num_hidden_layers", "sizes.layers"),
        F("num_attention_heads", "sizes.heads"),
        F("intermediate_size", "sizes.ffn"),
        F("image_size", "embeddings.patches.image_size", 224),
        F("patch_size", "embeddings.patches.patch_size", 16),
        F("num_channels", "embeddings.patches.channels", 3),
        F("layer_norm_eps", "block.norm.eps", 1e-12),
        F("hidden_act", "block.mlp.activation", "gelu", ACT),
        F("qkv_bias", "block.attention.qkv_bias", True),
        F("hidden_dropout_prob", "block.dropout", 0.0),
        F("hidden_dropout_prob", "embeddings.dropout", 0.0),
        F("attention_probs_dropout_prob", "block.attention.dropout", 0.0),
    ),
    archs={"ViTForImageClassification": lambda c: {"heads": [classifier("image_classification", c)],
                                                   "pooler": {"kind": "cls", "dense": False}},
           # The bare encoder: last_hidden_state (after the final LayerNorm) out.  Its pooler (dense + tanh
           # on CLS, add_pooling_layer) is not imported, as a bare BERT's: no head reads pooler_output.
           "ViTModel": bare,
           "ViTForMaskedImageModeling": _refused},
    bare=("ViTModel",),
    base_prefix="vit",
    ignored=(r"^pooler\.",),
    names={
        "patches.cls": R("vit.embeddings.cls_token"),
        "patches": R("vit.embeddings.patch_embeddings.projection.{p}"),
        "position": R("vit.embeddings.position_embeddings", lead=1),
        "attn_norm": R(f"{_L}.layernorm_before.{{p}}"),
        "attn.qkv": QKV(_L + ".attention.attention.{x}.{p}"),
        "attn.out": R(f"{_L}.attention.output.dense.{{p}}"),
        "mlp_norm": R(f"{_L}.layernorm_after.{{p}}"),
        "mlp.up": R(f"{_L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{_L}.output.dense.{{p}}"),
        "final_norm": R("vit.layernorm.{p}"),
        "head/image_classification": R("classifier.{p}"),
    },
    hook=_hook,
)
