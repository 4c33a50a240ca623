"""``gpt_bigcode``: SantaCoder / StarCoder (BigCode 2023), GPT-2's pre-LayerNorm layout in plain
``nn.Linear`` layers, with multi-query attention (``multi_query``: one key/value head, the fused
``c_attn`` rows [q; k; v]) or, without it, multi-head attention whose ``c_attn`` rows are per head
[q, k, v] (both `Rule.qkv_grouped`)."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, Fixed, bare, last_token_classifier, lm, need, token_classifier
from .openai_gpt import GPT_BASE, GPT_FIELDS
from .weights import R

L = "transformer.h.{layer}"


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    d["block"]["attention"]["kv_heads"] = 1 if cfg.get("multi_query", True) else cfg["n_head"]


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    kv = spec.block.attention.kv_heads
    need(kv in (1, spec.sizes.heads), "gpt_bigcode", f"kv_heads = {kv} (multi-query: 1, or multi-head)")
    cfg["multi_query"] = kv == 1


FAMILY = Family(
    model_type="gpt_bigcode",
    base={**GPT_BASE, "block": {**GPT_BASE["block"], "placement": "pre"}},
    fields=(*GPT_FIELDS, F("n_inner", "sizes.ffn", lambda c: 4 * c["n_embd"]),
            F("activation_function", "block.mlp.activation", "gelu_pytorch_tanh", ACT)),
    fixed=(Fixed("scale_attn_weights", (True,), "unscaled attention is not supported"),
           Fixed("add_cross_attention", (False,), "a cross-attending GPTBigCode is not supported")),
    archs={"GPTBigCodeForCausalLM": lm(True), "GPTBigCodeModel": bare,
           "GPTBigCodeForSequenceClassification": last_token_classifier,
           "GPTBigCodeForTokenClassification": token_classifier},
    bare=("GPTBigCodeModel",),
    base_prefix="transformer",
    names={
        "token": R("transformer.wte.{p}"),
        "position": R("transformer.wpe.{p}"),
        "attn_norm": R(f"{L}.ln_1.{{p}}"),
        "attn.qkv": R(f"{L}.attn.c_attn.{{p}}", qkv_grouped=True),
        "attn.out": R(f"{L}.attn.c_proj.{{p}}"),
        "mlp_norm": R(f"{L}.ln_2.{{p}}"),
        "mlp.up": R(f"{L}.mlp.c_fc.{{p}}"),
        "mlp.down": R(f"{L}.mlp.c_proj.{{p}}"),
        "final_norm": R("transformer.ln_f.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
        "head/token_classification": R("classifier.{p}"),
    },
    ignored=(r"^lm_head\.weight$", r"\.attn\.(bias|masked_bias)$"),
    init={"kind": "normal", "scaled_residual": True},  # c_proj ~ std / sqrt(2 * n_layer)
    hook=_hook,
    unhook=_unhook,
)
