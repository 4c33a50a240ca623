"""End-to-end property: every spec the validator accepts goes the whole way.

For each spec drawn by `strategies.specs` (valid across the whole vocabulary):
validate -> resolve -> stats -> build -> the module's unique parameters count what the graph
says and what an independent formula from the spec's fields says (`independent_count`) -> the structural oracle ->
forward with padding (kept tokens do not see the padded ones) -> backward with finite
gradients on every trainable parameter -> KV-cache steps equal the full forward (decoders)
-> diff against a zoo spec -> draw (DOT). A few examples also export to ONNX and compare ORT
with PyTorch on fresh shapes (`pg.export_onnx` verifies on two other shapes).

CI runs a bounded, derandomised profile; ``python tools/fuzz_specs.py --examples N`` runs long.
Every bug this found is kept below as an `@example` or a plain regression test.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

pytest.importorskip("hypothesis", reason="the property tests need the test extra: pip install -e '.[test]'")
import torch  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from strategies import check_structure, specs  # noqa: E402

import plmgraph as pg  # noqa: E402
from plmgraph.graph import resolve, stats  # noqa: E402
from plmgraph.spec import SpecError, validate, zoo_names  # noqa: E402
from plmgraph.spec.extends import Merged  # noqa: E402

EXAMPLES = int(os.environ.get("PLMGRAPH_FUZZ_EXAMPLES", "60"))
EXPORT_EXAMPLES = int(os.environ.get("PLMGRAPH_FUZZ_EXPORT_EXAMPLES", "3"))
B, T = 2, 7


def _validate(data: dict[str, Any]):  # noqa: ANN202
    return validate(Merged(copy.deepcopy(data), file="drawn.yaml"))


def _inputs(spec: Any, seed: int = 0, t: int = T) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    kw: dict[str, Any] = {}
    if spec.embeddings.patches is not None:
        p = spec.embeddings.patches
        kw["pixel_values"] = torch.randn(B, p.channels, p.image_size, p.image_size, generator=g)
        return kw
    kw["input_ids"] = torch.randint(0, spec.sizes.vocab, (B, t), generator=g)
    mask = torch.ones(B, t, dtype=torch.long)
    mask[1, t - 2:] = 0
    kw["attention_mask"] = mask
    if spec.embeddings.segments:
        kw["token_type_ids"] = torch.randint(0, spec.embeddings.segments, (B, t), generator=g)
    if spec.embeddings.task_types:
        kw["task_type_ids"] = torch.randint(0, spec.embeddings.task_types, (B, t), generator=g)
    if spec.family == "encoder-decoder":
        kw["decoder_input_ids"] = torch.randint(0, spec.sizes.vocab, (B, t - 2), generator=g)
    if any(st.block.attention.mask == "prefix" for st in spec.stacks.values()):
        kw["prefix_lengths"] = torch.tensor([3, 2])
    return kw


def _outputs(out: Any) -> list[torch.Tensor]:
    ts = [out.last_hidden_state]
    ts += [v for v in (out.head_outputs or {}).values() if isinstance(v, torch.Tensor)]
    return [t for t in ts if t is not None]


def _norm_params(norm: Any, width: int) -> int:
    """LayerNorm: γ (and β with bias); RMSNorm: γ."""
    return width * (2 if norm.kind == "layernorm" and norm.bias else 1)


def independent_count(spec: Any) -> int:
    """The parameter count of a spec from its fields alone, written from the papers' and Hugging Face's
    layouts (not through plmgraph's params facets): embeddings, positions, each layer's norms,
    attention and MLP (GQA, head_dim, biases, qk-norm, relative attention, cross-attention, gated and
    MoE), sharing (one layer per group), final norms, pooler and every head."""
    s, e = spec.sizes, spec.embeddings
    H, E, V = s.hidden, e.size, s.vocab
    pos = spec.position
    stacks = list(spec.stacks.items())
    total = 0
    # token tables: one shared matrix, or one per stack (share_across_stacks: false)
    if V and e.patches is None:
        total += V * E * (len(stacks) if len(stacks) > 1 and not e.share_across_stacks else 1)
    elif V and any(h.kind in ("lm", "mlm") and h.tie_embeddings for h in spec.heads):
        total += V * E
    for _name, st in stacks:
        b, at, m = st.block, st.block.attention, st.block.mlp
        # embeddings of the stack
        if e.patches is not None:
            p = e.patches
            total += E * p.channels * p.patch_size**2 + E + (E if p.cls_token else 0)
        if pos.kind == "learned":
            rows = ((e.patches.image_size // e.patches.patch_size) ** 2 + int(e.patches.cls_token)
                    if e.patches is not None else s.max_positions + pos.offset)
            total += rows * E
        elif pos.kind == "glm_2d":
            total += 2 * s.max_positions * E  # position in the text, position in the span
        for p in (pos, spec.relative_position):
            if p is not None and p.kind == "t5_relative":
                total += p.buckets * s.heads  # one scalar per (bucket, head), in the stack's first layer
            elif p is not None and p.kind == "disentangled":  # DeBERTa: 2k rows of width H (+ LayerNorm)
                total += 2 * (p.buckets or p.max_distance) * H + (2 * H if p.norm is not None else 0)
        if _name != "decoder" or len(stacks) == 1:  # token_type_ids are the encoder's input
            total += (e.segments or 0) * E
        total += (e.task_types or 0) * E
        if e.norm:
            total += _norm_params(e.norm, E)
        if E != H:
            total += E * H + H  # ALBERT's projection E -> H
        if e.mask_token:
            total += E
        # one layer
        n, kv, d = s.heads, at.kv_heads, at.head_dim
        layer = 0
        if at.kind == "self":
            layer += H * (n + 2 * kv) * d + ((n + 2 * kv) * d if at.qkv_bias else 0)
            layer += n * d * H + (H if at.out_bias else 0)
            if at.qk_norm and at.qk_norm_scope == "projection":  # OLMo 2: over all of q, all of k
                layer += _norm_params(b.norm, n * d) + _norm_params(b.norm, kv * d)
            elif at.qk_norm:
                layer += 2 * _norm_params(b.norm, d)
        elif at.kind == "disentangled":  # DeBERTa: q, k, v, out; pos_key_proj / pos_query_proj unless shared
            own = 0 if at.share_keys else int(at.c2p) + int(at.p2c)
            layer += (3 + own) * (H * n * d + (n * d if at.qkv_bias else 0)) + n * d * H + (H if at.out_bias else 0)
        else:  # Transformer-XL relative attention: q, k, v, r projections, u and v biases; XLNet's segment terms
            layer += 4 * n * d * H + 2 * n * d + n * d * H
            if at.kind == "two_stream":
                layer += n * d + 2 * n * d
        norms = 2
        if b.residual.kind == "parallel" and b.residual.shared_norm:
            norms = 1
        if b.placement == "sandwich":
            norms *= 2
        if b.cross_attention:
            layer += H * n * d + (n * d if at.qkv_bias else 0) + H * 2 * kv * d + (2 * kv * d if at.qkv_bias else 0)
            layer += n * d * H + (H if at.out_bias else 0)
            if at.qk_norm:
                layer += 2 * _norm_params(b.norm, d)
            norms += 2 if b.placement == "sandwich" else 1
        layer += norms * _norm_params(b.norm, H)
        if m.kind == "moe":
            x = m.expert
            rows = 2 * x.ffn if x.kind == "gated" else x.ffn
            layer += H * m.experts + (m.experts if m.router_bias else 0)
            layer += m.experts * (rows * H + H * x.ffn + ((rows + H) if x.bias else 0))
        else:
            rows = 2 * m.ffn if m.kind == "gated" else m.ffn
            layer += rows * H + m.ffn * H + ((rows + H) if m.bias else 0)
        distinct = {"none": st.layers, "all": 1}.get(spec.sharing.kind, getattr(spec.sharing, "groups", None))
        total += distinct * layer
        if not st.first_attn_norm:  # ModernBERT: layer 0 has no attention norm
            total -= _norm_params(b.norm, H)
        if st.final_norm:
            total += _norm_params(b.norm, H)
    pooled = {"nsp", "sop", "sequence_classification", "image_classification"}  # heads that read one vector
    if spec.pooler is not None and spec.pooler.dense and any(h.kind in pooled for h in spec.heads):
        total += H * H + (H if spec.pooler.bias else 0) + (_norm_params(spec.block.norm, H) if spec.pooler.norm else 0)
    last_norm = stacks[-1][1].block.norm
    for h in spec.heads:
        if h.kind in ("lm", "mlm"):
            width = E if h.tie_embeddings else H
            if h.transform is not None:
                total += H * width + (width if h.transform.bias else 0) + (
                    _norm_params(last_norm, width) if h.transform.norm else 0)
            if not h.tie_embeddings:
                total += V * H
            if h.bias:
                total += V
        else:
            labels = 2 if h.kind in ("nsp", "sop") else h.labels
            total += H * labels + (labels if h.bias else 0)
            tr = getattr(h, "transform", None)  # a per-token classifier's dense (-> norm), ModernBERT
            if tr is not None:
                total += H * H + (H if tr.bias else 0) + (_norm_params(spec.block.norm, H) if tr.norm else 0)
    return total


def check_cache(spec: Any, model: Any, kw: dict[str, Any]) -> None:
    """A cached run in two calls equals the full forward, or the cache is refused with a message."""
    from plmgraph.errors import InputError
    from plmgraph.train.generate import generate

    at = list(spec.stacks.values())[-1].block.attention
    relative = at.kind in ("two_stream", "segment_memory")
    kw4 = {k: v for k, v in kw.items() if k != "attention_mask"}
    key = "decoder_input_ids" if spec.family == "encoder-decoder" else "input_ids"
    seq = kw4[key]
    side = {k: v for k, v in kw4.items() if k in ("token_type_ids", "task_type_ids")}
    n = seq.shape[1] - 2
    if relative and at.memory:
        n = min(n, at.memory)  # the memory keeps the last `memory` states: all of the past here
    first = {**kw4, key: seq[:, :n], **({} if spec.family == "encoder-decoder" else
                                        {k: v[:, :n] for k, v in side.items()})}
    bidirectional = at.mask == "bidirectional"
    with torch.no_grad():
        a = model(**first, use_cache=True)
        rest: dict[str, Any] = {key: seq[:, n:], "past_key_values": a.past_key_values, "use_cache": True}
        if spec.family == "encoder-decoder":
            rest["encoder_outputs"] = a.encoder_last_hidden_state
        else:
            rest.update({k: v[:, n:] for k, v in side.items()})
        if bidirectional and not relative:
            with pytest.raises(InputError, match="only for decoders|bidirectional"):
                model(**rest)
            return
        if bidirectional:  # XLNet-style memory: segment recurrence, which generate does not pass off as a cache
            if spec.family == "decoder" and spec.heads and spec.heads[0].kind == "lm":
                with pytest.raises(InputError, match="bidirectional"):
                    generate(model, prompt=seq[:, :3], max_new_tokens=1)
            return
        full = model(**kw4).last_hidden_state
        b = model(**rest)
    torch.testing.assert_close(torch.cat([a.last_hidden_state, b.last_hidden_state], 1), full, atol=1e-5, rtol=1e-4)


def run_pipeline(data: dict[str, Any], tmp_path: Any, export: bool = False) -> None:
    try:
        spec = _validate(data)
    except SpecError as e:
        # a drawn tuning that does not fit this model (prefix tuning on ALiBi, BitFit without biases, a
        # LoRA rank above a projection's width, ...) is refused by the validator, each problem at a field
        # of `tuning`, in one message; the base model must still validate and go the whole way
        if "tuning" not in data:
            raise
        assert e.problems and all(p.field.startswith("tuning") for p in e.problems), e
        assert len(str(e)) < 600 and "Traceback" not in str(e), e
        return run_pipeline({k: v for k, v in data.items() if k != "tuning"}, tmp_path, export)
    graph = resolve(spec)
    st = stats(graph)
    model = pg.build(graph, seed=0).eval()  # every spec the validator accepts builds: no build-time refusal

    # parameter count: the module's own unique tensors, against the graph and the stats
    # (a tuning kind adds its own parameters on top of the base model the graph counts)
    unique = {id(p): p for p in model.parameters()}
    assert sum(p.numel() for p in unique.values()) == st.params
    assert sum(p.numel() for p in unique.values() if p.requires_grad) == st.trainable
    assert independent_count(spec) == graph.num_params(), (independent_count(spec), graph.num_params())
    if spec.tuning.kind == "full":
        assert st.params == graph.num_params() == st.trainable
    check_structure(spec, model)

    # forward with padding: tokens kept by the mask do not see the padded ones
    kw = _inputs(spec)
    with torch.no_grad():
        out = model(**kw)
    for t in _outputs(out):
        assert torch.isfinite(t).all()
    if "attention_mask" in kw and spec.family != "encoder-decoder":
        kw2 = dict(kw)
        ids = kw["input_ids"].clone()
        ids[1, T - 2:] = (ids[1, T - 2:] + 1) % spec.sizes.vocab
        kw2["input_ids"] = ids
        with torch.no_grad():
            out2 = model(**kw2)
        torch.testing.assert_close(out2.last_hidden_state[1, : T - 2], out.last_hidden_state[1, : T - 2])
        torch.testing.assert_close(out2.last_hidden_state[0], out.last_hidden_state[0])

    # causal really causal: changing the last token leaves earlier positions alone
    last = list(spec.stacks.values())[-1]
    if last.block.attention.mask == "causal" and spec.embeddings.patches is None:
        key = "decoder_input_ids" if spec.family == "encoder-decoder" else "input_ids"
        kw3 = {k: v for k, v in kw.items() if k != "attention_mask"}
        ids = kw3[key].clone()
        ids[:, -1] = (ids[:, -1] + 1) % spec.sizes.vocab
        with torch.no_grad():
            a = model(**{k: v for k, v in kw.items() if k != "attention_mask"}).last_hidden_state
            b = model(**{**kw3, key: ids}).last_hidden_state
        torch.testing.assert_close(a[:, :-1], b[:, :-1])

    # backward: every trainable parameter gets a finite gradient
    model.train()
    torch.manual_seed(0)
    out = model(**kw)
    loss = sum((t.float() ** 2).mean() for t in _outputs(out))
    loss.backward()
    moe_experts = spec.block.mlp.kind == "moe" or any(s.block.mlp.kind == "moe" for s in spec.stacks.values())
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            assert moe_experts and ".experts." in name, f"{name} got no gradient"
            continue
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
    model.eval()

    # KV cache: steps equal the full forward (causal and prefix masks, sliding windows, relative
    # positions, a Transformer-XL memory while it holds the whole past); a bidirectional stack
    # cannot have one, and says so
    if spec.embeddings.patches is None:
        check_cache(spec, model, kw)

    # diff against a zoo spec, and a diagram
    zoo = {"encoder": "bert-base", "decoder": "gpt2", "encoder-decoder": "t5-small"}[spec.family]
    delta = pg.diff(zoo, spec)
    assert delta.lines() and delta.to_json()
    pg.draw(graph, tmp_path / "drawn.dot")
    assert (tmp_path / "drawn.dot").stat().st_size > 0

    if export:
        path = pg.export_onnx(model, tmp_path / "drawn.onnx", verify=True)
        assert path.exists()


# --------------------------------------------------------------- regression examples

REGRESSIONS = [
    # t5 relative positions with the fewest buckets the validator allows, bidirectional and causal
    {"plmgraph": 1, "name": "r1", "family": "encoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "position": {"kind": "t5_relative", "buckets": 4, "max_distance": 3}},
    {"plmgraph": 1, "name": "r2", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "position": {"kind": "t5_relative", "buckets": 4, "max_distance": 3},
     "block": {"attention": {"kind": "self", "mask": "causal"}}},
    # llama3 / yarn scaling that names its training context, on a spec without max_positions
    {"plmgraph": 1, "name": "r3", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "position": {"kind": "rope", "scaling": {"kind": "llama3", "factor": 8.0, "original_max_positions": 16}},
     "block": {"attention": {"kind": "self", "mask": "causal"}}},
    {"plmgraph": 1, "name": "r4", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "position": {"kind": "rope", "scaling": {"kind": "yarn", "factor": 4.0, "original_max_positions": 16}},
     "block": {"attention": {"kind": "self", "mask": "causal"}}},
    # the minimal encoder-decoder (defaults everywhere), and one with a parallel encoder
    {"plmgraph": 1, "name": "r5", "family": "encoder-decoder",
     "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2}},
    {"plmgraph": 1, "name": "r6", "family": "encoder-decoder",
     "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "block": {"residual": {"kind": "parallel"}}, "decoder": {"block": {"residual": {"kind": "sequential"}}}},
    # the KV cache of a sliding window, a prefix (GLM) mask, a Transformer-XL memory, and the
    # bidirectional stacks that refuse one (a self-attention decoder, XLNet's two streams)
    {"plmgraph": 1, "name": "r7", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2},
     "position": {"kind": "alibi"}, "block": {"attention": {"kind": "self", "mask": "causal", "window": 2}}},
    {"plmgraph": 1, "name": "r8", "family": "decoder",
     "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2, "max_positions": 32},
     "position": {"kind": "glm_2d"}, "block": {"attention": {"kind": "self", "mask": "prefix"}}},
    {"plmgraph": 1, "name": "r9", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2},
     "position": {"kind": "xl_relative"}, "block": {"attention": {"kind": "segment_memory", "mask": "causal",
                                                                   "memory": 4}}},
    {"plmgraph": 1, "name": "r10", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "position": {"kind": "xl_relative"}, "embeddings": {"mask_token": True},
     "block": {"attention": {"kind": "two_stream"}}, "heads": [{"kind": "lm"}]},
    {"plmgraph": 1, "name": "r11", "family": "decoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2},
     "block": {"attention": {"kind": "self", "mask": "bidirectional"}}, "heads": [{"kind": "lm"}]},
    # DeBERTa-v3's disentangled attention over a bucketed, LayerNorm-ed table (the drawn 7 tokens pass the
    # exact buckets), and v2's layout: learned absolute positions too, separate position projections, c2p only
    {"plmgraph": 1, "name": "r12", "family": "encoder", "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2},
     "position": {"kind": "disentangled", "buckets": 4, "max_distance": 8, "norm": {"kind": "layernorm"}},
     "block": {"placement": "post", "attention": {"kind": "disentangled"}},
     "heads": [{"kind": "mlm", "transform": {"activation": "gelu", "norm": True}}]},
    {"plmgraph": 1, "name": "r13", "family": "encoder",
     "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2, "max_positions": 32},
     "position": {"kind": "learned"}, "relative_position": {"kind": "disentangled", "buckets": None, "max_distance": 4},
     "block": {"attention": {"kind": "disentangled", "c2p": True, "p2c": False, "share_keys": False}},
     "heads": [{"kind": "sequence_classification", "labels": 3}], "sharing": {"kind": "all"}},
    # MPNet: learned absolute positions (RoBERTa's offset) and a T5 bias shared by every layer
    {"plmgraph": 1, "name": "r14", "family": "encoder",
     "sizes": {"vocab": 48, "hidden": 16, "layers": 2, "heads": 2, "max_positions": 32},
     "position": {"kind": "learned", "offset": 2, "padding_aware": True},
     "relative_position": {"kind": "t5_relative", "buckets": 8, "max_distance": 16},
     "block": {"placement": "post"}, "heads": [{"kind": "mlm"}]},
]


def _with_examples(f: Any) -> Any:
    for data in REGRESSIONS:
        f = example(data=data)(f)
    return f


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@_with_examples
@given(data=specs())
def test_every_drawn_spec_goes_the_whole_way(data, tmp_path):
    run_pipeline(data, tmp_path)


@settings(max_examples=EXPORT_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=specs(family="decoder"))
def test_drawn_specs_export_to_onnx_and_match(data, tmp_path):
    pytest.importorskip("onnxruntime")
    run_pipeline(data, tmp_path, export=True)


@pytest.mark.parametrize("name", zoo_names())
def test_the_independent_count_agrees_on_every_zoo_spec(name):
    """At full size (arithmetic only, nothing is built)."""
    spec = pg.load_spec(name)
    assert independent_count(spec) == resolve(spec).num_params()


# ------------------------------------------------------------ rejected, with a message


def _base(**over: Any) -> dict[str, Any]:
    d = {"plmgraph": 1, "name": "r", "family": "decoder",
         "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2}}
    d.update(over)
    return d


@pytest.mark.parametrize("data, match", [
    # an encoder-decoder whose decoder is parallel would silently lose its cross-attention
    (_base(family="encoder-decoder", block={"residual": {"kind": "parallel"}}), "no place for cross-attention"),
    # T5 buckets of 1 or 2 divided by zero in forward; an empty log range too
    (_base(position={"kind": "t5_relative", "buckets": 1}), "at least 4"),
    (_base(position={"kind": "t5_relative", "buckets": 2}), "at least 4"),
    (_base(position={"kind": "t5_relative", "buckets": 8, "max_distance": 4}), "must exceed half the buckets"),
    # llama3 / yarn / dynamic without the training context crashed in forward
    (_base(position={"kind": "rope", "scaling": {"kind": "llama3", "factor": 8}}), "original_max_positions"),
    (_base(position={"kind": "rope", "scaling": {"kind": "yarn", "factor": 4}}), "original_max_positions"),
    (_base(position={"kind": "rope", "scaling": {"kind": "llama3", "factor": 8, "original_max_positions": 8,
                                                 "low_freq_factor": 4, "high_freq_factor": 4}}), "high_freq_factor"),
    (_base(position={"kind": "rope", "scaling": {"kind": "dynamic", "factor": 2, "original_max_positions": 8}},
           block={"attention": {"kind": "self", "head_dim": 2}}), "more than 2 rotary"),
    # head names that cannot be module paths crashed the build
    (_base(heads=[{"kind": "lm", "name": ""}]), "pattern"),
    (_base(heads=[{"kind": "lm", "name": "a.b"}]), "pattern"),
    (_base(heads=[{"kind": "lm", "name": "keys"}]), "reserved"),
    # a mask token nothing reads would never train
    (_base(embeddings={"mask_token": True}), "two_stream"),
    # a tied LM head on an image model looked for a token embedding that does not exist (KeyError at build)
    (_base(family="encoder", embeddings={"patches": {"image_size": 16, "patch_size": 8}}, heads=[{"kind": "lm"}]),
     "reads image patches has none"),
    # an encoder-decoder whose decoder ignores the encoder: the encoder never trains
    (_base(family="encoder-decoder", decoder={"block": {"cross_attention": False}}), "never reads the encoder"),
    # two_stream without the mask token its query stream starts from crashed in forward
    (_base(position={"kind": "xl_relative"}, block={"attention": {"kind": "two_stream"}}), "mask_token: true"),
    # what relative attention does not do was a build-time NotSupportedError
    (_base(position={"kind": "xl_relative"}, embeddings={"mask_token": True},
           block={"attention": {"kind": "two_stream", "kv_heads": 1}}), "one key/value head per query head"),
    (_base(position={"kind": "xl_relative"}, block={"attention": {"kind": "segment_memory", "window": 4}}),
     "no sliding window"),
    (_base(position={"kind": "xl_relative"}, block={"attention": {"kind": "segment_memory", "qk_norm": True}}),
     "no q/k norm"),
    (_base(position={"kind": "xl_relative"}, block={"attention": {"kind": "segment_memory"},
                                                     "residual": {"kind": "parallel"}}), "cannot be 'parallel'"),
])
def test_what_cannot_compile_is_rejected_with_a_message(data, match):
    with pytest.raises(SpecError, match=match):
        _validate(data)


def test_minimal_encoder_decoder_is_accepted_with_cross_attention():
    spec = _validate({"plmgraph": 1, "name": "m", "family": "encoder-decoder",
                      "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2}})
    assert spec.decoder.block.cross_attention and spec.decoder.block.attention.mask == "causal"
    assert spec.encoder.block.attention.mask == "bidirectional"


@pytest.mark.parametrize("kind", ["lora", "adapters", "prefix", "bitfit", "ia3", "prompt", "ladder"])
def test_tuning_kinds_build_and_train_only_their_plan(kind):
    small = {"adapters": {"bottleneck": 4}, "prefix": {"length": 2, "projection": 8}, "ladder": {"reduction": 2}}
    spec = _validate(_base(tuning={"kind": kind, **small.get(kind, {})}))
    model = pg.build(spec, device="meta")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(model.tuning.trainable_names)


@pytest.mark.parametrize("kind", ["lora", "ia3"])
def test_tuning_reaches_relative_attention(kind):
    """Regression: relative attention read attn.qkv's weight directly, bypassing a LoRA / IA3 wrapper
    on it, so a tuned Transformer-XL trained nothing; the wrapper's parameters now get gradients."""
    spec = _validate(_base(position={"kind": "xl_relative"}, heads=[{"kind": "lm"}], tuning={"kind": kind},
                           block={"attention": {"kind": "segment_memory", "mask": "causal"}}))
    model = pg.build(spec, seed=0)
    model(torch.randint(0, 48, (1, 5))).logits.square().sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if ".attn.qkv." in n and p.requires_grad]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_a_segment_table_in_a_relative_stack_reads_token_type_ids():
    """Regression: a Transformer-XL stack with embeddings.segments ignored token_type_ids."""
    spec = _validate(_base(position={"kind": "xl_relative"}, embeddings={"segments": 2},
                           block={"attention": {"kind": "segment_memory", "mask": "causal"}}))
    model = pg.build(spec, seed=0).eval()
    ids = torch.randint(0, 48, (1, 5))
    with torch.no_grad():
        a = model(ids).last_hidden_state
        b = model(ids, token_type_ids=torch.ones(1, 5, dtype=torch.long)).last_hidden_state
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("data", [
    # prefix tuning's extra key/value columns broke the fused MultiHeadAttention / GroupQueryAttention graph
    _base(heads=[{"kind": "lm"}], tuning={"kind": "prefix", "length": 2, "projection": 8}),
    # ORT's GroupQueryAttention refuses a head_dim that is not a multiple of 8
    _base(sizes={"vocab": 48, "hidden": 16, "layers": 1, "heads": 4}, heads=[{"kind": "lm"}]),
])
def test_onnx_export_regressions(data, tmp_path):
    pytest.importorskip("onnxruntime")
    model = pg.build(_validate(data), seed=0).eval()
    assert pg.export_onnx(model, tmp_path / "m.onnx", verify=True).exists()


def test_oracle_catches_a_wrong_module():
    """The oracle is not vacuous: a model whose decoder lost its cross-attention fails it."""
    spec = _validate({"plmgraph": 1, "name": "m", "family": "encoder-decoder",
                      "sizes": {"vocab": 48, "hidden": 16, "layers": 1, "heads": 2}})
    model = pg.build(spec, device="meta")
    del model.decoder.layers["0"].cross
    with pytest.raises(AssertionError, match="cross-attention"):
        check_structure(spec, model)


