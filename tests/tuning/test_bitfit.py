"""BitFit: only the biases train."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from helpers_tuning import assert_only_tuning_changes, tuned

import plmgraph as pg
from plmgraph.tuning import TuningError, plan
from plmgraph.tuning.core import for_export
from plmgraph.tuning.options import apply_options


@pytest.mark.parametrize("name", ["gpt2", "bert-base"])
def test_only_biases_train(name):
    m = tuned(tiny(name), "bitfit")
    names = m.tuning.trainable_names
    assert names and all(n.endswith("bias") for n in names)
    assert set(names) == {n for n, p in m.named_parameters() if n.endswith("bias")}
    assert not m.tuning.added
    if m.family != "encoder-decoder" and name == "gpt2":
        assert_only_tuning_changes(m)


def test_heads_option_adds_the_heads():
    spec = apply_options(tiny("bert-base"), "bitfit:heads=true")
    p = plan(spec)
    assert any(n.startswith("heads.") and n.endswith("weight") for n in p.kept)


def test_a_model_without_biases_is_refused():
    with pytest.raises(TuningError, match=r"BitFit: llama2-7b has no biases to train"):
        pg.build(apply_options(tiny("llama2-7b"), "bitfit"), device="meta")


def test_export_keeps_the_trained_biases():
    m = tuned(tiny("gpt2"), "bitfit")
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.5)
    plain = for_export(m)
    x = torch.randint(0, 128, (2, 5))
    assert plain.tuning.kind == "full"
    torch.testing.assert_close(plain(x).logits, m(x).logits, rtol=0, atol=0)
