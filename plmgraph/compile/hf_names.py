"""Hugging Face tensor names <-> plmgraph parameter names, derived from the ArchGraph.

The list of tensors to expect is never written by hand: it is `ArchGraph.param_shapes()`,
and each ``"<node>.<param>"`` finds its HF source by the node's ``role`` (or, for heads,
its ``kind``) in a per-``model_type`` table of name templates.  A template may use
``{stack}``, ``{layer}``, ``{group}`` (ALBERT's layer group: the owner layer divided by
layers per group), ``{expert}`` and ``{p}`` (the parameter's last name, ``weight``/``bias``).

A `Rule` says how the HF tensors become the plmgraph one, with the few transforms real
checkpoints need: concatenate on dim 0 (q, k, v -> ``qkv``; gate, up -> gated ``up``),
transpose (GPT's Conv1D), drop a leading 1 (ViT's ``[1, N, H]`` position table), stack
experts (Mixtral).  Every transform is invertible, so `to_hf` reads the same table.

Lookup order for a parameter ``attn.qkv.weight`` of role ``attn`` in stack ``decoder``:
``decoder:attn.qkv.weight``, ``attn.qkv.weight``, ``decoder:attn.qkv``, ``attn.qkv``,
``decoder:attn``, ``attn``; the first key present wins.  A key may map to a list of rules:
alternatives (the first one whose tensors are all in the checkpoint is used; export
writes the first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConversionError
from ..graph import ArchGraph

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Rule:
    """How one plmgraph parameter is made of HF tensors."""

    names: tuple[str, ...]
    split: str | None = None  # "qkv" | "kv" | "halves": the sizes of `names` along dim 0
    t: bool = False  # HF stores the matrix transposed (Conv1D)
    lead: int = 0  # HF adds this many leading 1-dims
    experts: bool = False  # names contain {expert}; one tensor per expert, stacked on dim 0
    zeros_if_missing: bool = False  # absent tensor == zeros (BART's final_logits_bias)
    only: str | None = None  # applies only to nodes of this kind
    also: tuple[str, ...] = ()  # other names HF keeps for the same tensor: written on export, ignored on import
    heads: bool = False  # HF splits the heads * head_dim axis into [heads, head_dim] (XLNet's [H, n, d])


def R(*names: str, **kw: Any) -> Rule:
    return Rule(tuple(names), **kw)


def QKV(template: str, q: str = "query", k: str = "key", v: str = "value", **kw: Any) -> Rule:
    return R(*(template.format(x=x, layer="{layer}", group="{group}", stack="{stack}", p="{p}") for x in (q, k, v)),
             split="qkv", **kw)


# ------------------------------------------------------------------------- tables


def _bert_like(p: str, mlm: str = "cls.predictions", nsp: str = "cls.seq_relationship") -> dict[str, Any]:
    L = f"{p}.encoder.layer.{{layer}}"
    return {
        "token": R(f"{p}.embeddings.word_embeddings.{{p}}"),
        "position": R(f"{p}.embeddings.position_embeddings.{{p}}"),
        "segment": R(f"{p}.embeddings.token_type_embeddings.{{p}}"),
        "task_type": R(f"{p}.embeddings.task_type_embeddings.{{p}}"),
        "embed_norm": R(f"{p}.embeddings.LayerNorm.{{p}}"),
        "attn.qkv": QKV(L + ".attention.self.{x}.{p}"),
        "attn.out": R(f"{L}.attention.output.dense.{{p}}"),
        "attn_norm": R(f"{L}.attention.output.LayerNorm.{{p}}"),
        "mlp.up": R(f"{L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{L}.output.dense.{{p}}"),
        "mlp_norm": R(f"{L}.output.LayerNorm.{{p}}"),
        "pooler.dense": R(f"{p}.pooler.dense.{{p}}"),
        "head/mlm.transform": R(f"{mlm}.transform.dense.{{p}}"),
        "head/mlm.norm": R(f"{mlm}.transform.LayerNorm.{{p}}"),
        # The decoder Linear's bias is what forward adds; HF ties `<mlm>.bias` to it only when the
        # embeddings are tied (transformers 5), so an untied checkpoint may hold two different ones.
        "head/mlm.bias": [R(f"{mlm}.decoder.bias", also=(f"{mlm}.bias",)), R(f"{mlm}.bias")],
        "head/mlm.proj": R(f"{mlm}.decoder.{{p}}"),
        "head/nsp": R(f"{nsp}.{{p}}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/token_classification": R("classifier.{p}"),
    }


def _roberta() -> dict[str, Any]:
    t = _bert_like("roberta")
    t.update({
        "head/mlm.transform": R("lm_head.dense.{p}"),
        "head/mlm.norm": R("lm_head.layer_norm.{p}"),
        "head/mlm.bias": [R("lm_head.decoder.bias", also=("lm_head.bias",)), R("lm_head.bias")],
        "head/mlm.proj": R("lm_head.decoder.{p}"),
        # RobertaClassificationHead: dense + tanh on <s>, then out_proj == a dense tanh pooler + classifier.
        "pooler.dense": R("classifier.dense.{p}"),
        "head/sequence_classification": R("classifier.out_proj.{p}"),
    })
    return t


def _albert() -> dict[str, Any]:
    L = "albert.encoder.albert_layer_groups.{group}.albert_layers.0"
    t = _bert_like("albert", mlm="predictions")
    t.update({
        "project": R("albert.encoder.embedding_hidden_mapping_in.{p}"),
        "attn.qkv": QKV(L + ".attention.{x}.{p}"),
        "attn.out": R(f"{L}.attention.dense.{{p}}"),
        "attn_norm": R(f"{L}.attention.LayerNorm.{{p}}"),
        "mlp.up": R(f"{L}.ffn.{{p}}"),
        "mlp.down": R(f"{L}.ffn_output.{{p}}"),
        "mlp_norm": R(f"{L}.full_layer_layer_norm.{{p}}"),
        "pooler.dense": R("albert.pooler.{p}"),
        "head/mlm.transform": R("predictions.dense.{p}"),
        "head/mlm.norm": R("predictions.LayerNorm.{p}"),
        "head/sop": R("sop_classifier.classifier.{p}"),
    })
    return t


def _distilbert() -> dict[str, Any]:
    L = "distilbert.transformer.layer.{layer}"
    return {
        "token": R("distilbert.embeddings.word_embeddings.{p}"),
        "position": R("distilbert.embeddings.position_embeddings.{p}"),
        "embed_norm": R("distilbert.embeddings.LayerNorm.{p}"),
        "attn.qkv": QKV(L + ".attention.{x}.{p}", "q_lin", "k_lin", "v_lin"),
        "attn.out": R(f"{L}.attention.out_lin.{{p}}"),
        "attn_norm": R(f"{L}.sa_layer_norm.{{p}}"),
        "mlp.up": R(f"{L}.ffn.lin1.{{p}}"),
        "mlp.down": R(f"{L}.ffn.lin2.{{p}}"),
        "mlp_norm": R(f"{L}.output_layer_norm.{{p}}"),
        "head/mlm.transform": R("vocab_transform.{p}"),
        "head/mlm.norm": R("vocab_layer_norm.{p}"),
        "head/mlm.bias": R("vocab_projector.bias"),
        "head/mlm.proj": R("vocab_projector.{p}"),
        "pooler.dense": R("pre_classifier.{p}"),
        "head/sequence_classification": R("classifier.{p}"),
        "head/token_classification": R("classifier.{p}"),
    }


def _gpt(token: str, position: str, final_norm: str | None) -> dict[str, Any]:
    L = "transformer.h.{layer}"
    t = {
        "token": R(f"transformer.{token}.{{p}}"),
        "position": R(f"transformer.{position}.{{p}}"),
        "attn_norm": R(f"{L}.ln_1.{{p}}"),
        "attn.qkv": R(f"{L}.attn.c_attn.{{p}}", t=True),
        "attn.out": R(f"{L}.attn.c_proj.{{p}}", t=True),
        "mlp_norm": R(f"{L}.ln_2.{{p}}"),
        "mlp.up": R(f"{L}.mlp.c_fc.{{p}}", t=True),
        "mlp.down": R(f"{L}.mlp.c_proj.{{p}}", t=True),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
    }
    if final_norm:
        t["final_norm"] = R(f"transformer.{final_norm}.{{p}}")
    return t


def _llama(mlp: dict[str, Any]) -> dict[str, Any]:
    L = "model.layers.{layer}"
    return {
        "token": R("model.embed_tokens.{p}"),
        "attn_norm": R(f"{L}.input_layernorm.{{p}}"),
        "attn.qkv": QKV(L + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{L}.self_attn.o_proj.{{p}}"),
        "mlp_norm": R(f"{L}.post_attention_layernorm.{{p}}"),
        **mlp,
        "final_norm": R("model.norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
        "head/sequence_classification": R("score.{p}"),
    }


L_LLAMA = "model.layers.{layer}"
MOE = f"{L_LLAMA}.block_sparse_moe"
MOE_V5 = f"{L_LLAMA}.mlp"  # transformers 5 module layout (fused experts)


def _t5() -> dict[str, Any]:
    B = "{stack}.block.{layer}.layer"
    t: dict[str, Any] = {
        "token": R("shared.{p}"),
        "position": R("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.{p}"),
        "attn_norm": R(f"{B}.0.layer_norm.{{p}}"),
        "attn.qkv": QKV(B + ".0.SelfAttention.{x}.{p}", "q", "k", "v"),
        "attn.out": R(f"{B}.0.SelfAttention.o.{{p}}"),
        "cross_norm": R(f"{B}.1.layer_norm.{{p}}"),
        "cross.q": R(f"{B}.1.EncDecAttention.q.{{p}}"),
        "cross.kv": R(f"{B}.1.EncDecAttention.k.{{p}}", f"{B}.1.EncDecAttention.v.{{p}}", split="kv"),
        "cross.out": R(f"{B}.1.EncDecAttention.o.{{p}}"),
        "final_norm": R("{stack}.final_layer_norm.{p}"),
        "head/lm.proj": R("lm_head.{p}"),
    }
    for stack, i in (("encoder", 1), ("decoder", 2)):
        t[f"{stack}:mlp_norm"] = R(f"{B}.{i}.layer_norm.{{p}}")
        t[f"{stack}:mlp.up"] = [R(f"{B}.{i}.DenseReluDense.wi.{{p}}", only="mlp/dense"),
                                R(f"{B}.{i}.DenseReluDense.wi_0.{{p}}", f"{B}.{i}.DenseReluDense.wi_1.{{p}}",
                                  split="halves", only="mlp/gated")]
        t[f"{stack}:mlp.down"] = R(f"{B}.{i}.DenseReluDense.wo.{{p}}")
    return t


def _bart() -> dict[str, Any]:
    L = "model.{stack}.layers.{layer}"
    return {
        "token": R("model.shared.{p}"),
        "position": R("model.{stack}.embed_positions.{p}"),
        "embed_norm": R("model.{stack}.layernorm_embedding.{p}"),
        "attn.qkv": QKV(L + ".self_attn.{x}_proj.{p}", "q", "k", "v"),
        "attn.out": R(f"{L}.self_attn.out_proj.{{p}}"),
        "attn_norm": R(f"{L}.self_attn_layer_norm.{{p}}"),
        "cross.q": R(f"{L}.encoder_attn.q_proj.{{p}}"),
        "cross.kv": R(f"{L}.encoder_attn.k_proj.{{p}}", f"{L}.encoder_attn.v_proj.{{p}}", split="kv"),
        "cross.out": R(f"{L}.encoder_attn.out_proj.{{p}}"),
        "cross_norm": R(f"{L}.encoder_attn_layer_norm.{{p}}"),
        "mlp.up": R(f"{L}.fc1.{{p}}"),
        "mlp.down": R(f"{L}.fc2.{{p}}"),
        "mlp_norm": R(f"{L}.final_layer_norm.{{p}}"),
        "head/lm.bias": R("final_logits_bias", lead=1, zeros_if_missing=True),
        "head/lm.proj": R("lm_head.{p}"),
    }


def _xlnet() -> dict[str, Any]:
    L = "transformer.layer.{layer}.rel_attn"
    FF = "transformer.layer.{layer}.ff"
    return {
        "token": R("transformer.word_embedding.{p}"),
        "mask_token": R("transformer.mask_emb"),
        # q, k, v, r are einsum weights "ibh,hnd->ibnd" [H, n, d]; o is "ibnd,hnd->ibh" [H, n, d]
        "attn.qkv": QKV(L + ".{x}", "q", "k", "v", t=True, heads=True),
        "attn.r": R(f"{L}.r", t=True, heads=True),
        "attn.out": R(f"{L}.o", heads=True),
        "attn.r_w_bias": R(f"{L}.r_w_bias"),
        "attn.r_r_bias": R(f"{L}.r_r_bias"),
        "attn.r_s_bias": R(f"{L}.r_s_bias"),
        "attn.seg_embed": R(f"{L}.seg_embed"),
        "attn_norm": R(f"{L}.layer_norm.{{p}}"),
        "mlp.up": R(f"{FF}.layer_1.{{p}}"),
        "mlp.down": R(f"{FF}.layer_2.{{p}}"),
        "mlp_norm": R(f"{FF}.layer_norm.{{p}}"),
        "head/lm.bias": R("lm_loss.bias"),
        "head/lm.proj": R("lm_loss.{p}"),
    }


def _vit() -> dict[str, Any]:
    L = "vit.encoder.layer.{layer}"
    return {
        "patches.cls": R("vit.embeddings.cls_token"),
        "patches": R("vit.embeddings.patch_embeddings.projection.{p}"),
        "position": R("vit.embeddings.position_embeddings", lead=1),
        "attn_norm": R(f"{L}.layernorm_before.{{p}}"),
        "attn.qkv": QKV(L + ".attention.attention.{x}.{p}"),
        "attn.out": R(f"{L}.attention.output.dense.{{p}}"),
        "mlp_norm": R(f"{L}.layernorm_after.{{p}}"),
        "mlp.up": R(f"{L}.intermediate.dense.{{p}}"),
        "mlp.down": R(f"{L}.output.dense.{{p}}"),
        "final_norm": R("vit.layernorm.{p}"),
        "head/image_classification": R("classifier.{p}"),
    }


TABLES: dict[str, dict[str, Any]] = {
    "bert": _bert_like("bert"),
    "ernie": _bert_like("ernie"),
    "roberta": _roberta(),
    "albert": _albert(),
    "distilbert": _distilbert(),
    "openai-gpt": _gpt("tokens_embed", "positions_embed", None),
    "gpt2": _gpt("wte", "wpe", "ln_f"),
    "t5": _t5(),
    "bart": _bart(),
    "llama": _llama({
        "mlp.up": R(f"{L_LLAMA}.mlp.gate_proj.{{p}}", f"{L_LLAMA}.mlp.up_proj.{{p}}", split="halves"),
        "mlp.down": R(f"{L_LLAMA}.mlp.down_proj.{{p}}"),
    }),
    "mixtral": _llama({
        "mlp.router": [R(f"{MOE}.gate.{{p}}"), R(f"{MOE_V5}.gate.{{p}}")],
        "mlp.experts.up_weight": [
            R(f"{MOE}.experts.{{expert}}.w1.weight", f"{MOE}.experts.{{expert}}.w3.weight", split="halves",
              experts=True),
            R(f"{MOE_V5}.experts.gate_up_proj"),
        ],
        "mlp.experts.down_weight": [R(f"{MOE}.experts.{{expert}}.w2.weight", experts=True),
                                    R(f"{MOE_V5}.experts.down_proj")],
    }),
    "glm": _llama({
        "mlp.up": R(f"{L_LLAMA}.mlp.gate_up_proj.{{p}}"),
        "mlp.down": R(f"{L_LLAMA}.mlp.down_proj.{{p}}"),
    }),
    "vit": _vit(),
    "xlnet": _xlnet(),
}

#: Tensors a checkpoint may hold that are not parameters of the model: buffers HF saves
#: (or saved in older versions) and the second name of a tied matrix (HF ties it on load).
IGNORED: dict[str, tuple[str, ...]] = {
    "*": (r"(^|\.)position_ids$", r"(^|\.)token_type_ids$", r"rotary_emb\.inv_freq$"),
    "bert": (r"^cls\.predictions\.decoder\.weight$",),
    "ernie": (r"^cls\.predictions\.decoder\.weight$",),
    "roberta": (r"^lm_head\.decoder\.weight$",),
    "albert": (r"^predictions\.decoder\.weight$",),
    "distilbert": (r"^vocab_projector\.weight$",),
    "openai-gpt": (r"^lm_head\.weight$", r"\.attn\.bias$"),
    "gpt2": (r"^lm_head\.weight$", r"\.attn\.(bias|masked_bias)$"),
    "t5": (r"^(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
    "bart": (r"^model\.(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
    "llama": (r"^lm_head\.weight$",),
    "mixtral": (r"^lm_head\.weight$",),
    "glm": (r"^lm_head\.weight$",),
    "vit": (),
    "xlnet": (r"^lm_loss\.weight$",),
}


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Item:
    """One plmgraph parameter and the HF tensors (names and shapes) it is made of."""

    key: str  # "<node>.<param>"
    shape: Shape
    rule: Rule
    groups: tuple[tuple[str, ...], ...]  # per expert (or one): the HF names concatenated
    sizes: tuple[int, ...]  # dim-0 sizes of the names (before transpose/lead)
    heads: tuple[int, int] | None = None  # (heads, head_dim) when the rule splits the last axis

    @property
    def hf_names(self) -> list[str]:
        return [n for g in self.groups for n in g]

    def hf_shape(self, i: int) -> Shape:
        """The HF shape of the i-th name of a group."""
        inner = self.shape[1:] if self.rule.experts else self.shape
        s: Shape = (self.sizes[i], *inner[1:]) if self.sizes else inner
        if self.rule.t and len(s) == 2:
            s = (s[1], s[0])
        if self.heads is not None:
            s = (*s[:-1], *self.heads)
        return (1,) * self.rule.lead + s

    def hf_shapes(self) -> dict[str, Shape]:
        return {n: self.hf_shape(i) for g in self.groups for i, n in enumerate(g)}


def _split_sizes(rule: Rule, d: dict[str, Any], shape: Shape) -> tuple[int, ...]:
    if rule.split is None:
        return ()
    a = d["attrs"]
    if rule.split == "qkv":
        n, kv, hd = a["heads"], a["kv_heads"], a["head_dim"]
        return (n * hd, kv * hd, kv * hd)
    if rule.split == "kv":
        return (a["kv_heads"] * a["head_dim"],) * 2
    rows = shape[1] if rule.experts else shape[0]
    return (rows // 2, rows // 2)


def _candidates(table: dict[str, Any], d: dict[str, Any], param: str) -> list[Rule]:
    key = d["kind"] if d["axis"] == "head" else d["role"]
    stack = d["stack"]
    keys = [f"{key}.{param}"]
    if "." in param:
        keys.append(f"{key}.{param.rsplit('.', 1)[0]}")
    keys.append(key)
    for k in keys:
        for kk in ([f"{stack}:{k}"] if stack else []) + [k]:
            if kk in table:
                rules = table[kk] if isinstance(table[kk], list) else [table[kk]]
                rules = [r for r in rules if r.only is None or r.only == d["kind"]]
                if rules:
                    return rules
    return []


def plan(graph: ArchGraph, model_type: str, available: set[str] | None = None) -> list[Item]:
    """For every parameter of `graph`, the HF tensors it is made of.

    `available` (the checkpoint's names) picks among alternative layouts; without it, the
    first (what ``save_pretrained`` writes) is used.

    Raises:
        ConversionError: a parameter no rule of `model_type` covers (a spec feature the
            HF family does not have).
    """
    table = TABLES[model_type]
    spec = graph.spec
    items: list[Item] = []
    unmapped: list[str] = []
    for node in graph.owners():
        d = graph.node(node)
        for param, shape in d["params"].items():
            rules = _candidates(table, d, param)
            if not rules:
                unmapped.append(f"{node}.{param} {tuple(shape)}")
                continue
            options = [_item(graph, spec, node, d, param, tuple(shape), r) for r in rules]
            chosen = options[0]
            if available is not None:
                for o in options:
                    if all(n in available for n in o.hf_names):
                        chosen = o
                        break
            items.append(chosen)
    if unmapped:
        raise ConversionError(
            f"no Hugging Face {model_type} tensor for: {', '.join(unmapped)}"
        )
    return items


def _item(graph: ArchGraph, spec: Any, node: str, d: dict[str, Any], param: str, shape: Shape, rule: Rule) -> Item:
    layer = d["layer"]
    group = None
    if layer is not None:
        n_layers = spec.stacks[d["stack"]].layers
        sh = spec.sharing
        per = {"none": 1, "all": n_layers}.get(sh.kind) or n_layers // sh.groups
        group = layer // per
    fmt = {"stack": d["stack"], "layer": layer, "group": group, "p": param.rsplit(".", 1)[-1]}
    experts = range(shape[0]) if rule.experts else [None]
    groups = tuple(tuple(n.format(**fmt, expert=e) for n in rule.names) for e in experts)
    heads = (d["attrs"]["heads"], d["attrs"]["head_dim"]) if rule.heads else None
    return Item(f"{node}.{param}", shape, rule, groups, _split_sizes(rule, d, shape), heads)


def ignored(model_type: str, name: str) -> bool:
    return any(re.search(p, name) for p in IGNORED["*"] + IGNORED.get(model_type, ()))
