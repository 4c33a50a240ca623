"""``gptj``: GPT-J (Wang & Komatsuzaki 2021): one shared LayerNorm feeding attention and MLP in
parallel (``residual: parallel, shared_norm``), interleaved rotary on the first ``rotary_dim``
dims of each head, bias-free attention, a biased untied LM head."""

from __future__ import annotations

from typing import Any

from ...spec import ModelSpec
from .base import ACT, Cfg, F, Family, bare, last_token_classifier, lm, need, question_answering
from .rope import rope_hook, rope_unhook
from .weights import QKV, R

L = "transformer.h.{layer}"
_rope_hook, _rope_unhook = rope_hook(10000.0, interleaved=True), rope_unhook(False)


def _hook(cfg: Cfg, d: dict[str, Any]) -> None:
    head_dim = cfg["n_embd"] // cfg["n_head"]
    rotary = cfg.get("rotary_dim", 64)
    _rope_hook({**cfg, "partial_rotary_factor": (rotary or head_dim) / head_dim}, d)
    d["block"]["residual"] = {"kind": "parallel", "shared_norm": True}


def _unhook(spec: ModelSpec, cfg: Cfg) -> None:
    pos, res = spec.position, spec.block.residual
    need(pos.kind == "rope" and pos.interleaved, "gptj", f"position {pos.kind!r} (its rotary is interleaved)")
    need(res.kind == "parallel" and res.shared_norm, "gptj", "a residual other than parallel with one shared norm")
    _rope_unhook(spec, cfg)
    rp = cfg.pop("rope_parameters")
    need(rp == {"rope_theta": 10000.0, "rope_type": "default", **({"partial_rotary_factor": pos.fraction}
                                                                   if pos.fraction != 1.0 else {})},
         "gptj", "rope theta other than 10000 or rope scaling")
    head_dim = spec.sizes.hidden // spec.sizes.heads
    cfg["rotary_dim"] = round(pos.fraction * head_dim)


FAMILY = Family(
    model_type="gptj",
    base={"family": "decoder",
          "block": {"placement": "pre", "norm": {"kind": "layernorm"},
                    "attention": {"kind": "self", "mask": "causal", "qkv_bias": False, "out_bias": False},
                    "mlp": {"kind": "dense", "bias": True}}},
    fields=(
        F("vocab_size", "sizes.vocab"),
        F("n_embd", "sizes.hidden"),
        F("n_layer", "sizes.layers"),
        F("n_head", "sizes.heads"),
        F("n_inner", "sizes.ffn", lambda c: 4 * c["n_embd"]),
        F("n_positions", "sizes.max_positions", 2048),
        F("layer_norm_epsilon", "block.norm.eps", 1e-5),
        F("resid_pdrop", "block.dropout", 0.0),
        F("embd_pdrop", "embeddings.dropout", 0.0),
        F("attn_pdrop", "block.attention.dropout", 0.0),
        F("activation_function", "block.mlp.activation", "gelu_new", ACT),
    ),
    archs={"GPTJForQuestionAnswering": question_answering,
           "GPTJForCausalLM": lm(False, bias=True), "GPTJModel": bare,
           "GPTJForSequenceClassification": last_token_classifier},
    bare=("GPTJModel",),
    base_prefix="transformer",
    names={
        "token": R("transformer.wte.{p}"),
        "attn_norm": R(f"{L}.ln_1.{{p}}"),
        "attn.qkv": QKV(L + ".attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{L}.attn.out_proj.{{p}}"),
        "mlp.up": R(f"{L}.mlp.fc_in.{{p}}"),
        "mlp.down": R(f"{L}.mlp.fc_out.{{p}}"),
        "final_norm": R("transformer.ln_f.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/lm.bias": R("lm_head.bias"),
        "head/sequence_classification": R("score.{p}"),
        "head/question_answering": R("qa_outputs.{p}"),
    },
    ignored=(r"\.attn\.(bias|masked_bias)$", r"\.attn\.embed_positions$"),
    hook=_hook,
    unhook=_unhook,
)
