"""Shared checks for the tuning tests (tests/tuning/): train a tuned model a few steps and compare."""

from __future__ import annotations

from typing import Any

import torch

import plmgraph as pg
from plmgraph.tuning.options import apply_options


def tuned(spec: Any, options: str, seed: int = 0) -> Any:
    """`spec` (a ModelSpec) with ``--tuning options``, built on the CPU with `seed`, in eval mode."""
    return pg.build(apply_options(spec, options), seed=seed).eval()


def perturb(model: Any, scale: float = 0.3, seed: int = 1) -> Any:
    """Move every trainable parameter away from its init (LoRA's B = 0, IA³'s ones), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def train_steps(model: Any, steps: int = 3, seq: int = 12, batch: int = 2) -> dict[str, torch.Tensor]:
    """A few AdamW steps on random tokens (next-token loss); returns the parameters before, cloned."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    vocab = model.spec.sizes.vocab
    for _ in range(steps):
        x = torch.randint(0, vocab, (batch, seq), generator=g)
        out = model(x, labels=x) if model.family != "encoder-decoder" else model(x, decoder_input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return before


def assert_only_tuning_changes(model: Any, steps: int = 3) -> list[str]:
    """Train `model` a few steps: exactly its tuning's parameters change, every other one is bitwise equal.
    Returns the names that changed."""
    before = train_steps(model, steps)
    trainable = set(model.tuning.trainable_names)
    assert trainable == {n for n, p in model.named_parameters() if p.requires_grad}
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert set(changed) == trainable, (sorted(set(changed) ^ trainable)[:5])
    return changed
