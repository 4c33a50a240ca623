"""IA³: learned vectors on k, v and the MLP's intermediate activation (as PEFT)."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from helpers_tuning import assert_only_tuning_changes, perturb, tuned

import plmgraph as pg
from plmgraph.tuning import TuningError, merge, unmerge

X = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(0))


def test_starts_at_one_and_scales_what_peft_scales():
    base = pg.build(tiny("mistral-7b"), seed=0).eval()
    m = tuned(tiny("mistral-7b"), "ia3")
    torch.testing.assert_close(m(X).logits, base(X).logits, rtol=0, atol=0)
    assert m.tuning.added == {**{f"decoder.layers.{i}.attn.qkv.ia3.{s}": (32,) for i in (0, 1) for s in "kv"},
                              **{f"decoder.layers.{i}.mlp.down.ia3.all": (128,) for i in (0, 1)}}
    # the k vector scales exactly the k rows of the fused projection
    qkv = m.get_submodule("decoder.layers.0.attn.qkv")
    with torch.no_grad():
        qkv.ia3.k.fill_(2.0)
    x = torch.randn(3, 64)
    y = torch.nn.functional.linear(x, qkv.weight, qkv.bias)
    want = torch.cat([y[:, :64], 2 * y[:, 64:96], y[:, 96:]], dim=1)
    torch.testing.assert_close(qkv(x), want)
    # and the down projection's input (the intermediate activation)
    down = m.get_submodule("decoder.layers.0.mlp.down")
    with torch.no_grad():
        down.ia3.all.fill_(3.0)
    h = torch.randn(3, 128)
    torch.testing.assert_close(down(h), torch.nn.functional.linear(3 * h, down.weight, down.bias))


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b", "bert-base"])
def test_only_the_vectors_train_and_merge_is_exact(name):
    m = tuned(tiny(name), "ia3")
    assert_only_tuning_changes(m)
    m = perturb(tuned(tiny(name), "ia3"), scale=0.2).eval()
    y = m(X).logits
    merge(m)
    torch.testing.assert_close(m(X).logits, y, atol=1e-5, rtol=1e-4)
    unmerge(m)
    torch.testing.assert_close(m(X).logits, y, atol=1e-5, rtol=1e-4)


def test_targets_that_match_nothing():
    from plmgraph.tuning.options import apply_options

    with pytest.raises(TuningError, match=r"IA³ targets 'mlp.gate' match no module of gpt2"):
        pg.build(apply_options(tiny("gpt2"), "ia3:targets=attn.k+mlp.gate"), device="meta")
