"""Hypothesis strategies that draw *valid* specs across the whole block vocabulary, and a
structural oracle that checks the compiled module does what the spec says.

`specs()` draws a plain mapping (what a user would write in YAML) that the validator must
accept: every family, norm kind and placement, residual kind (sequential, parallel,
deepnorm), attention kind (self, two_stream, segment_memory, disentangled) and mask (bidirectional,
causal, prefix, sliding window), a stack's layer pattern (per-layer windows and rotary bases, Gemma 2/3),
soft-capped scores and logits, a first layer without attention norm (ModernBERT),
MHA/GQA/MQA, ``head_dim != hidden / heads``, every
position kind with rope's fraction, pairing and scaling, a relative_position next to absolute
positions (T5 bias: MPNet; DeBERTa's table), every MLP kind (MoE included),
sharing (none, all, groups), factorised embeddings, segments, task types, embedding norm
and scale, image patches, the mask token, and one or several heads of every kind. Sizes are
tiny so a drawn model builds and runs in milliseconds.

The rules it follows are the validator's, written from the user's side: when a draw would
break one (a parallel residual where cross-attention is needed), it draws the legal
neighbour instead (the decoder gets a sequential residual), never an invalid spec.

`check_structure(spec, model)` is the oracle: cross-attention where the spec says and
nowhere else, shared layers are the same module objects, tied heads read the embedding
tensor itself, causal stacks are causal (a later token does not change earlier logits).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

VOCAB, POSITIONS = 48, 32
ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "quick_gelu"]


def _norm(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"kind": "layernorm", "eps": draw(st.sampled_from([1e-5, 1e-6, 1e-12])), "bias": draw(st.booleans())}
    return {"kind": "rmsnorm", "eps": draw(st.sampled_from([1e-5, 1e-6])), "offset": draw(st.sampled_from([0.0, 1.0]))}


def _mlp(draw: Any, dense_only: bool = False) -> dict[str, Any]:
    kind = "dense" if dense_only else draw(st.sampled_from(["dense", "gated", "moe"]))
    ffn = draw(st.sampled_from([None, 24, 40]))

    def plain(k: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": k, "activation": draw(st.sampled_from(ACTIVATIONS)), "bias": draw(st.booleans())}
        if ffn is not None:
            out["ffn"] = ffn
        return out

    if kind != "moe":
        return plain(kind)
    experts = draw(st.integers(2, 4))
    return {"kind": "moe", "experts": experts, "top_k": draw(st.integers(1, experts)),
            "expert": plain(draw(st.sampled_from(["dense", "gated"]))), "router_bias": draw(st.booleans()),
            "normalize_top_k": draw(st.booleans())}


def _rope(draw: Any, head_dim: int, have_max_positions: bool) -> dict[str, Any]:
    fractions = [f for f in (1.0, 0.5, 0.25) if (head_dim * f) % 2 == 0 and head_dim * f >= 2]
    pos: dict[str, Any] = {"kind": "rope", "theta": draw(st.sampled_from([10000.0, 500000.0, 100.0])),
                           "fraction": draw(st.sampled_from(fractions)), "interleaved": draw(st.booleans())}
    scaling = draw(st.sampled_from([None, "linear", "dynamic", "llama3", "yarn"]))
    if scaling == "dynamic" and head_dim * pos["fraction"] <= 2:
        scaling = "linear"  # dynamic NTK rescales by d/(d-2)
    if scaling is not None:
        sc: dict[str, Any] = {"kind": scaling, "factor": draw(st.sampled_from([1.0, 2.0, 8.0]))}
        if scaling != "linear" and (not have_max_positions or draw(st.booleans())):
            sc["original_max_positions"] = draw(st.sampled_from([8, 16, 64]))
        if scaling == "llama3" and draw(st.booleans()):
            sc.update(low_freq_factor=1.0, high_freq_factor=4.0)
        pos["scaling"] = sc
    return pos


@st.composite
def specs(draw: Any, *, family: str | None = None) -> dict[str, Any]:
    """A valid spec as a plain mapping (``name``, ``family``, ``sizes``, ...)."""
    fam = family or draw(st.sampled_from(["encoder", "decoder", "encoder-decoder"]))
    heads = draw(st.sampled_from([2, 4]))
    hidden = heads * draw(st.sampled_from([4, 8]))
    layers = draw(st.integers(1, 3))
    max_positions = draw(st.sampled_from([None, POSITIONS]))
    patches = fam == "encoder" and draw(st.integers(0, 7)) == 0
    sizes: dict[str, Any] = {"hidden": hidden, "layers": layers, "heads": heads}
    if not patches or draw(st.booleans()):
        sizes["vocab"] = VOCAB
    if draw(st.booleans()):
        sizes["ffn"] = draw(st.sampled_from([16, 32]))

    # attention: self, or the relative kinds that need xl_relative positions (one-stack models)
    relative = fam != "encoder-decoder" and not patches and draw(st.integers(0, 5)) == 0
    # DeBERTa's disentangled attention (bidirectional encoders), over its shared relative table
    disentangled = not relative and fam == "encoder" and not patches and draw(st.integers(0, 4)) == 0
    attention: dict[str, Any]
    if disentangled:
        c2p = draw(st.booleans())
        attention = {"kind": "disentangled", "c2p": c2p, "p2c": not c2p or draw(st.booleans()),
                     "share_keys": draw(st.booleans()), "qkv_bias": draw(st.booleans()),
                     "out_bias": draw(st.booleans())}
    elif relative:
        kind = draw(st.sampled_from(["two_stream", "segment_memory"]))
        attention = {"kind": kind, "memory": draw(st.sampled_from([0, 4]))}
        if kind == "segment_memory" and fam == "decoder":
            attention["mask"] = "causal"
    else:
        attention = {"kind": "self", "qkv_bias": draw(st.booleans()), "out_bias": draw(st.booleans()),
                     "qk_norm": draw(st.booleans())}
        if attention["qk_norm"] and fam != "encoder-decoder" and draw(st.booleans()):  # OLMo 2: whole projections
            attention["qk_norm_scope"] = "projection"
        masks = {"encoder": ["bidirectional", "causal"], "decoder": ["causal", "causal", "prefix", "bidirectional"],
                 "encoder-decoder": ["bidirectional"]}[fam]
        if fam != "encoder-decoder" or draw(st.booleans()):
            attention["mask"] = draw(st.sampled_from(masks))
        if attention.get("mask") != "prefix" and draw(st.integers(0, 4)) == 0:
            attention["window"] = draw(st.sampled_from([2, 4]))
        if draw(st.integers(0, 4)) == 0:
            attention["scale"] = draw(st.sampled_from([1.0, 0.5]))
        if draw(st.integers(0, 4)) == 0:  # Gemma 2: c * tanh(scores / c)
            attention["softcap"] = draw(st.sampled_from([1.0, 5.0]))
    kv = "mha" if relative or disentangled else draw(st.sampled_from(["mha", "gqa", "mqa"]))  # one kv per q head
    if kv == "mqa":
        attention["kv_heads"] = 1
    elif kv == "gqa":
        attention["kv_heads"] = heads // 2
    head_dim = hidden // heads
    if draw(st.integers(0, 3)) == 0:
        head_dim = draw(st.sampled_from([6, 12]))
        attention["head_dim"] = head_dim
    if draw(st.integers(0, 5)) == 0:
        attention["dropout"] = 0.1

    # position
    relative_position: dict[str, Any] | None = None
    if disentangled:
        buckets = draw(st.sampled_from([None, 2, 4, 8]))
        table: dict[str, Any] = {"kind": "disentangled", "buckets": buckets,
                                 "max_distance": draw(st.sampled_from([d for d in (4, 6, 16)
                                                                       if buckets is None or d > buckets // 2 + 1]))}
        if draw(st.booleans()):
            table["norm"] = {"kind": "layernorm", "eps": 1e-7}
        if max_positions and draw(st.booleans()):  # absolute positions too (position_biased_input)
            position: dict[str, Any] = {"kind": "learned"}
            relative_position = table
        else:
            position = table
    elif relative:
        position: dict[str, Any] = {"kind": "xl_relative"}
        if draw(st.booleans()):
            position["clamp"] = 8
    else:
        choices = ["none", "sinusoidal", "rope", "alibi", "t5_relative"]
        if max_positions or patches:
            choices += ["learned"]
        if max_positions and fam != "encoder-decoder" and not patches:
            choices += ["glm_2d"]
        pk = draw(st.sampled_from(choices))
        if pk == "rope":
            position = _rope(draw, head_dim, bool(max_positions))
        elif pk == "t5_relative":
            buckets = draw(st.sampled_from([4, 5, 8, 32]))
            position = {"kind": pk, "buckets": buckets,
                        "max_distance": draw(st.sampled_from([d for d in (3, 8, 128) if d > buckets // 2]))}
        elif pk == "learned":
            position = {"kind": pk, "offset": draw(st.sampled_from([0, 0, 2]))}
        else:
            position = {"kind": pk}
        if pk in ("learned", "sinusoidal") and draw(st.integers(0, 3)) == 0:  # and a shared T5 bias (MPNet)
            buckets = draw(st.sampled_from([4, 8, 32]))
            relative_position = {"kind": "t5_relative", "buckets": buckets,
                                 "max_distance": draw(st.sampled_from([d for d in (3, 8, 128) if d > buckets // 2]))}

    # block: norm, placement, residual
    # output (OLMo 2: x + norm(f(x))) is compiled for self-attention layers only
    placement = draw(st.sampled_from(["pre", "post", "sandwich"] + ([] if relative or disentangled else ["output"])))
    residual: dict[str, Any] = {"kind": "sequential"}
    rk = draw(st.sampled_from(["sequential", "sequential", "deepnorm"] + ([] if relative else ["parallel"])))
    if rk == "parallel":
        placement = "pre"
        residual = {"kind": "parallel", "shared_norm": draw(st.booleans())}
    elif rk == "deepnorm":
        placement = "post"
        residual = {"kind": "deepnorm"}
    block: dict[str, Any] = {"norm": _norm(draw), "placement": placement, "residual": residual,
                             "attention": attention, "mlp": _mlp(draw)}
    if draw(st.integers(0, 4)) == 0:
        block["dropout"] = 0.1

    spec: dict[str, Any] = {"plmgraph": 1, "name": "drawn", "family": fam, "sizes": sizes, "block": block,
                            "position": position}
    if relative_position is not None:
        spec["relative_position"] = relative_position
    if max_positions:
        sizes["max_positions"] = max_positions

    # per-stack overrides (encoder-decoder): the decoder needs a residual with room for cross-attention
    if fam == "encoder-decoder":
        dec: dict[str, Any] = {}
        if residual["kind"] == "parallel":
            dec["block"] = {"residual": {"kind": "sequential"}}
        if draw(st.integers(0, 3)) == 0:
            dec["layers"] = draw(st.integers(1, 2))
        if draw(st.integers(0, 4)) == 0:
            dec.setdefault("block", {})["mlp"] = _mlp(draw)
        if dec:
            spec["decoder"] = dec

    # a layer pattern (Gemma 2/3, ModernBERT): per-layer windows and rotary bases, cycled over one stack
    if attention["kind"] == "self" and draw(st.integers(0, 3)) == 0:
        where = draw(st.sampled_from(["encoder", "decoder"])) if fam == "encoder-decoder" else fam
        n = spec.get("decoder", {}).get("layers", layers) if where == "decoder" else layers
        entries = []
        for _ in range(draw(st.integers(1, n))):
            e: dict[str, Any] = {}
            if attention.get("mask") != "prefix" and draw(st.booleans()):
                e["window"] = draw(st.sampled_from([2, 4]))
            if position["kind"] == "rope" and draw(st.booleans()):
                e["rope"] = {"theta": draw(st.sampled_from([100.0, 500000.0]))}
                if draw(st.integers(0, 2)) == 0:
                    e["rope"]["scaling"] = {"kind": "linear", "factor": 2.0}
            entries.append(e)
        attention.pop("window", None)  # the entries say which layers slide
        spec.setdefault(where, {})["pattern"] = entries

    # embeddings
    emb: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0 and not relative:
        emb["size"] = hidden // 2  # factorised (ALBERT)
    if not patches and draw(st.integers(0, 2)) == 0:
        emb["segments"] = draw(st.sampled_from([1, 2]))
    if not patches and draw(st.integers(0, 5)) == 0:
        emb["task_types"] = 3
    if draw(st.integers(0, 4)) == 0:
        emb["scale"] = True
    if draw(st.integers(0, 2)) == 0:
        emb["norm"] = True if draw(st.booleans()) else _norm(draw)
    if draw(st.integers(0, 4)) == 0:
        emb["dropout"] = 0.1
    if patches:
        emb["patches"] = {"image_size": 16, "patch_size": draw(st.sampled_from([4, 8])), "channels": 3,
                          "cls_token": draw(st.booleans())}
    if attention["kind"] == "two_stream":  # its query stream starts from the mask token
        emb["mask_token"] = True
    if fam == "encoder-decoder" and draw(st.integers(0, 3)) == 0:
        emb["share_across_stacks"] = False
    if emb:
        spec["embeddings"] = emb

    # sharing
    total = {n: layers for n in (["encoder", "decoder"] if fam == "encoder-decoder" else [fam])}
    if fam == "encoder-decoder" and "layers" in spec.get("decoder", {}):
        total["decoder"] = spec["decoder"]["layers"]
    sk = draw(st.sampled_from(["none", "none", "all", "groups"]))
    if sk == "all":
        spec["sharing"] = {"kind": "all"}
    elif sk == "groups":
        divisors = [g for g in range(1, 4) if all(n % g == 0 for n in total.values())]
        spec["sharing"] = {"kind": "groups", "groups": draw(st.sampled_from(divisors))}

    # ModernBERT: layer 0 reads the (normalised) embeddings without an attention norm of its own
    if (attention["kind"] == "self" and placement == "pre" and residual["kind"] == "sequential" and sk == "none"
            and draw(st.integers(0, 5)) == 0):
        spec.setdefault(draw(st.sampled_from(sorted(total))), {})["first_attn_norm"] = False

    # heads: none, one, or several; a pooler sometimes
    kinds = ["lm", "mlm", "nsp", "sop", "sequence_classification", "token_classification"]
    if patches:
        kinds = ["image_classification", "sequence_classification", "token_classification"]
        if "vocab" in sizes:
            kinds += ["lm", "mlm"]
    chosen = draw(st.lists(st.sampled_from(kinds), max_size=3))
    E = emb.get("size", hidden)
    heads_out: list[dict[str, Any]] = []
    for i, k in enumerate(chosen):
        h: dict[str, Any] = {"kind": k, "name": f"h{i}_{k}"[:20]}
        if k in ("lm", "mlm"):
            h["tie_embeddings"] = not patches and draw(st.booleans())  # an image model has no token matrix
            h["bias"] = draw(st.booleans())
            if draw(st.booleans()) or (h["tie_embeddings"] and E != hidden):
                h["transform"] = {"activation": draw(st.sampled_from(ACTIVATIONS)), "norm": draw(st.booleans()),
                                  "bias": draw(st.booleans())}
            if draw(st.integers(0, 4)) == 0:  # Gemma 2's final_logit_softcapping
                h["softcap"] = 3.0
        elif k in ("sequence_classification", "token_classification", "image_classification"):
            h["labels"] = draw(st.integers(1, 5))
            h["bias"] = draw(st.booleans())
            if k == "token_classification" and draw(st.integers(0, 3)) == 0:  # ModernBERT's per-token head
                h["transform"] = {"activation": draw(st.sampled_from(ACTIVATIONS)), "norm": draw(st.booleans()),
                                  "bias": draw(st.booleans())}
        heads_out.append(h)
    if heads_out:
        spec["heads"] = heads_out
        if draw(st.booleans()):
            spec["pooler"] = {"kind": draw(st.sampled_from(["cls", "mean", "last", "first"])),
                              "dense": draw(st.booleans())}
            if spec["pooler"]["dense"] and draw(st.integers(0, 2)) == 0:  # ModernBERT's classifier head
                spec["pooler"] |= {"norm": draw(st.booleans()), "bias": draw(st.booleans())}
    # tuning: full (the default) or a parameter-efficient kind over the frozen model. The one exception to
    # "never an invalid spec": the kind is drawn without looking at the model, so it may not fit it
    # (prefix tuning on ALiBi, BitFit without biases, IA³'s mlp.down on MoE); the validator refuses those
    # at `tuning.<field>` (the kinds' `check`), and the property test asserts that (test_property.py)
    tk = draw(st.sampled_from(["none", "none", "none", "lora", "bitfit", "ia3", "prompt", "adapters", "prefix",
                               "ladder"]))
    if tk != "none":
        tuning: dict[str, Any] = {"kind": tk}
        if tk == "lora":
            tuning.update(rank=draw(st.sampled_from([1, 4])), rslora=draw(st.booleans()))
        elif tk == "bitfit":
            tuning["heads"] = draw(st.booleans())
        elif tk == "prompt":
            tuning.update(length=draw(st.sampled_from([1, 3])), init=draw(st.sampled_from(["vocab", "random"])))
        elif tk == "adapters":
            tuning.update(bottleneck=draw(st.sampled_from([2, 4])), variant=draw(st.sampled_from(["houlsby",
                                                                                                   "pfeiffer"])))
        elif tk == "prefix":
            tuning.update(length=draw(st.sampled_from([1, 2])), projection=draw(st.sampled_from([None, 8])))
        elif tk == "ladder":
            tuning["reduction"] = draw(st.sampled_from([2, 4]))
        spec["tuning"] = tuning
    if draw(st.integers(0, 3)) == 0:
        spec["init"] = draw(st.sampled_from([{"kind": "normal", "std": 0.02, "scaled_residual": True},
                                             {"kind": "fan_in"}]))
    return spec


# ------------------------------------------------------------------------- the oracle


def check_structure(spec: Any, model: Any) -> None:
    """What the spec says is what the module does (see the module docstring). Raises AssertionError."""
    import torch

    for name, stack in spec.stacks.items():
        module = getattr(model, name, None) or model.get_submodule(name)
        cross_want = bool(stack.block.cross_attention)
        layers = dict(module.layers.items())
        for key, block in layers.items():
            has = "cross" in dict(block.named_children())
            assert has == cross_want, f"{name}.layers.{key}: cross-attention {has}, the spec says {cross_want}"
        distinct = {id(module.layers[k]) for k in module.schedule}
        want = {"none": stack.layers, "all": 1}.get(spec.sharing.kind, spec.sharing.groups)
        assert len(module.schedule) == stack.layers, f"{name}: runs {len(module.schedule)} layers, not {stack.layers}"
        assert len(distinct) == want, f"{name}: {len(distinct)} distinct layer modules, sharing says {want}"
        if spec.sharing.kind != "none":
            by_key = [module.layers[k] for k in module.schedule]
            w = [next(m.parameters()) for m in by_key]
            per = stack.layers // want
            for i in range(stack.layers):
                assert w[i] is w[(i // per) * per], f"{name}: layer {i} does not share its group's weights"
    token = model.get_submodule("embed.token") if hasattr(model, "embed") else None
    for head in spec.heads:
        if head.kind in ("lm", "mlm") and head.tie_embeddings:
            module = model.heads[head.name]
            tied = [p for p in module.parameters(recurse=True)]
            emb = token.weight if token is not None else model.get_submodule(
                f"{list(spec.stacks)[-1]}.embed.token").weight
            assert all(p is not emb for p in tied), f"heads.{head.name}: the tied matrix is registered twice"
            x = torch.randn(1, 3, spec.sizes.hidden, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                before = module(x).clone()
                emb.add_(1.0)
                after = module(x)
                emb.sub_(1.0)
            assert not torch.equal(before, after), f"heads.{head.name}: tied, but does not read the embedding"
