"""LoRA (plmgraph/kinds/tuning/lora.py): targets by node role, fused-qkv slices, scaling, merge, export."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny
from helpers_tuning import perturb, tuned

import plmgraph as pg
from plmgraph.spec.errors import SpecError
from plmgraph.tuning import TuningError, merge, merged_copy, plan, unmerge
from plmgraph.tuning.core import for_export
from plmgraph.tuning.options import apply_options, parse_options

X = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(0))


def _delta(model, x, host):
    """The update a LoRA adds to `host`'s output, read from a hook on the module."""
    seen = {}
    mod = model.get_submodule(host)
    h = mod.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    model(x)
    h.remove()
    inp = seen["x"]
    return mod(inp) - torch.nn.functional.linear(inp, mod.weight, mod.bias)


def test_b_starts_at_zero_so_the_model_is_the_base():
    base = pg.build(tiny("gpt2"), seed=0).eval()
    m = tuned(tiny("gpt2"), "lora:rank=4,targets=attn.qkv+attn.out+mlp.up+mlp.down")
    torch.testing.assert_close(m(X).logits, base(X).logits, rtol=0, atol=0)
    for n, p in m.named_parameters():
        if n.endswith(".B"):
            assert not p.any()
        if n.endswith(".A"):
            assert p.std() > 0


@pytest.mark.parametrize("rslora", [False, True])
def test_slices_of_the_fused_qkv_update_only_their_rows(rslora):
    spec = tiny("mistral-7b")  # GQA: q 64 rows, k and v 32 each
    m = perturb(tuned(spec, f"lora:rank=4,alpha=8,targets=attn.q+attn.v,rslora={str(rslora).lower()}"))
    host = "decoder.layers.0.attn.qkv"
    q, kv = 64, 32
    d = _delta(m, X, host)
    assert d.shape[-1] == q + 2 * kv
    assert not d[..., q:q + kv].any()  # k rows untouched
    s = 8 / (math.sqrt(4) if rslora else 4)
    lq, lv = m.get_submodule(host).lora.q, m.get_submodule(host).lora.v
    assert lq.scaling == s and (lq.A.shape, lq.B.shape, lv.B.shape) == ((4, 64), (q, 4), (kv, 4))
    x = torch.randn(3, 64)
    torch.testing.assert_close(lq.delta(x), s * x @ lq.A.t() @ lq.B.t())


def test_gated_mlp_halves():
    m = perturb(tuned(tiny("llama2-7b"), "lora:rank=2,targets=mlp.gate"))
    d = _delta(m, X, "decoder.layers.0.mlp.up")  # [gate; up], 128 rows each
    assert d[..., :128].abs().sum() > 0 and not d[..., 128:].any()


@pytest.mark.parametrize(("name", "options"), [
    ("gpt2", "lora:rank=4,targets=attn.q+attn.v+attn.out+mlp.up+mlp.down"),
    ("llama2-7b", "lora:rank=4,targets=attn.qkv+mlp.gate_up+mlp.down,rslora=true"),
    ("t5-small", "lora:rank=2,targets=attn.qkv+cross.q+cross.k+cross.out"),
    ("bert-base", "lora:rank=2,targets=q+k+v+o+mlp"),
])
def test_merge_gives_identical_outputs(name, options):
    m = perturb(tuned(tiny(name), options), scale=0.05)  # T5's N(0, 1) embeddings amplify rounding
    kw = {"decoder_input_ids": X[:, :5]} if m.family == "encoder-decoder" else {}
    y = m(X, **kw).logits
    w0 = {n: p.detach().clone() for n, p in m.named_parameters()}
    merge(m)
    torch.testing.assert_close(m(X, **kw).logits, y, atol=2e-5, rtol=1e-4)
    unmerge(m)
    torch.testing.assert_close(m(X, **kw).logits, y, atol=2e-5, rtol=1e-4)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p, w0[n], atol=1e-6, rtol=0)
    plain = merged_copy(m)
    assert plain.tuning.kind == "full" and set(dict(plain.named_parameters())) == set(plan(m.graph).base)
    torch.testing.assert_close(plain(X, **kw).logits, y, atol=2e-5, rtol=1e-4)
    assert for_export(m).tuning.kind == "full"


def test_export_takes_the_merged_model(tmp_path):
    """`plmgraph export` (ONNX) loads a tuned folder merged: the base graph's parameters, the tuned outputs."""
    from plmgraph.cli.export_cmds import _model

    m = perturb(tuned(tiny("gpt2", layers=1), "lora:rank=2,targets=attn.qkv+mlp.down"))
    pg.save(m, tmp_path / "m")
    got = _model(str(tmp_path / "m"), None, 0)
    assert got.tuning.kind == "full" and set(dict(got.named_parameters())) == set(m.tuning.base)
    torch.testing.assert_close(got(X).logits, m(X).logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "options", "match"), [
    ("gpt2", "lora:targets=mlp.gate", r"LoRA targets 'mlp.gate' match no module of gpt2; its layers have attn.qkv, "
                                      r"attn.q, attn.k, attn.v, attn.out, mlp.up, mlp.down$"),
    ("gpt2", "lora:targets=cross.q", r"'cross.q' match no module"),
    ("mixtral-8x7b", "lora:targets=mlp.down", r"'mlp.down' match no module of mixtral-8x7b; its layers have attn.qkv"),
    ("gpt2", "lora:rank=65", r"LoRA rank 65 is larger than attn.q in decoder.layers.0.attn.qkv \(64 in, 64 out\); "
                             r"the rank must be at most 64"),
    ("mistral-7b", "lora:rank=40,targets=attn.k", r"rank 40 is larger than attn.k .*\(64 in, 32 out\)"),
    ("gpt2", "lora:targets=attn.qkv+attn.v", r"'attn.qkv' and 'attn.v' overlap in decoder.layers.0.attn.qkv"),
])
def test_bad_targets_and_ranks(name, options, match):
    # refused when the spec is validated (here through --tuning), so `validate` says what `build` cannot do
    with pytest.raises(TuningError, match=match):
        apply_options(tiny(name), options)
    field = "rank" if "rank=" in options else "targets"
    with pytest.raises(SpecError, match=f"tuning.{field}: .*" + match.removesuffix("$")):
        pg.load_spec(tiny(name), [f"tuning.{k}=" + (f"[{', '.join(v)}]" if isinstance(v, list) else str(v))
                                  for k, v in parse_options(options).items()])


def test_old_short_target_names_still_validate():
    spec = pg.load_spec(tiny("gpt2"), "tuning.kind=lora")
    assert spec.tuning.targets == ["attn.q", "attn.v"]
    a = plan(apply_options(tiny("gpt2"), "lora:rank=2,targets=q+k+v+o"))
    b = plan(apply_options(tiny("gpt2"), "lora:rank=2,targets=attn.q+attn.k+attn.v+attn.out"))
    assert a.added == b.added


def test_dropout_only_in_training():
    m = perturb(tuned(tiny("gpt2"), "lora:rank=4,dropout=0.5,targets=attn.qkv"))
    y = m(X).logits
    torch.testing.assert_close(m(X).logits, y, rtol=0, atol=0)  # eval: no dropout
    m.train()
    for mod in m.modules():  # the base model's own dropout off: only the adapter's remains
        if isinstance(mod, torch.nn.Dropout) and mod.p != 0.5:
            mod.p = 0.0
    assert not torch.allclose(m(X).logits, y)
