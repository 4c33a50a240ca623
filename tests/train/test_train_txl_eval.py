"""Transformer-XL's held-out evaluation carries the memory across consecutive segments (as its
reference eval does) and reports the no-memory number beside it.  With a memory longer than the
text (1600 states), segment s with the carried memory sees exactly what one causal forward pass
over the whole concatenated text sees (relative positions, causal mask), so the memory number
must equal that single pass, scored at the same targets; the no-memory number must equal each
segment scored alone."""

import pytest
import torch

import plmgraph as pg
from plmgraph.train.data import load_corpus
from plmgraph.train.evaluate import evaluate
from plmgraph.train.loss import IGNORE, token_ce
from plmgraph.train.objectives import collator_for
from plmgraph.train.tokenizer import train_tokenizer

SEG = 16


def test_memory_eval_equals_one_pass_over_the_text_and_differs_from_no_memory():
    spec = pg.load_spec("transformer-xl", ["layers=2,hidden=32,heads=2,vocab=512,max_positions=64"])
    tok = train_tokenizer(load_corpus("pydoc").subset(list(range(8))).texts, spec)
    col = collator_for(spec, tok)
    assert col.recurrent
    segs = col.examples(load_corpus("pydoc").subset([50, 51]), SEG)[:24]
    assert len(segs) == 24 and all(len(s.ids) == SEG for s in segs) and 24 * SEG < 1600
    model = pg.build(spec, seed=0).eval()
    got = evaluate(model, col, segs, batch_size=4)

    ids = torch.tensor([sum((s.ids for s in segs), [])])
    labels = ids.clone()
    labels[:, ::SEG] = IGNORE  # as in training, the first token of a segment is a context token only
    with torch.no_grad():
        one_pass = model(ids).logits
        alone = torch.cat([model(ids[:, i:i + SEG]).logits for i in range(0, ids.shape[1], SEG)], 1)
    scored = int((labels[:, 1:] != IGNORE).sum())
    want = float(token_ce(one_pass, labels, shift=True, reduction="sum")) / scored
    cut = ids.reshape(-1, SEG)
    want_alone = float(token_ce(alone.reshape(-1, SEG, alone.shape[-1]), cut, shift=True, reduction="sum")) / scored
    assert got["tokens"] == scored == 24 * (SEG - 1)
    assert got["loss"] == pytest.approx(want, rel=1e-6)
    assert got["loss_no_memory"] == pytest.approx(want_alone, rel=1e-6)
    assert abs(got["loss"] - got["loss_no_memory"]) > 10 * abs(got["loss"] - want) + 1e-6 * want
    assert got["perplexity_no_memory"] == pytest.approx(torch.tensor(want_alone).exp().item(), rel=1e-6)
