"""BART's other noises (Lewis et al. 2020 §2.2): token deletion and document rotation, selected by
the denoising objective's `deletion` and `rotate` next to text infilling (`rate`) and sentence
permutation.  Statistics on thousands of tokens, with tolerances; labels are always the original."""

import math

import pytest
import torch

import plmgraph as pg
from plmgraph.spec.errors import SpecError
from plmgraph.train.data import load_corpus
from plmgraph.train.loss import IGNORE
from plmgraph.train.objectives import collator_for, document_rotation, token_deletion
from plmgraph.train.tokenizer import train_tokenizer

SIZES = "layers=1,hidden=32,heads=2,vocab=1024,max_positions=128"


def test_token_deletion_removes_ceil_rate_n_tokens_uniformly():
    g = torch.Generator().manual_seed(0)
    deleted_at = torch.zeros(60)
    total = gone_total = 0
    for trial in range(1000):
        n = 60 - trial % 20
        ids = list(range(1000, 1000 + n))  # unique ids: what is kept can be traced
        starts = [i % 3 == 0 for i in range(n)]
        out, st = token_deletion(ids, starts, 0.3, g)
        assert len(out) == n - math.ceil(0.3 * n)
        assert out == sorted(out)  # the kept tokens keep their order
        word = {1000 + i: i // 3 for i in range(n)}
        assert st == [k == 0 or word[t] != word[out[k - 1]] for k, t in enumerate(out)]
        for t in set(ids) - set(out):
            deleted_at[t - 1000] += 1
        total += n
        gone_total += n - len(out)
    assert abs(gone_total / total - 0.3) < 0.01
    # uniform over positions: each of the first 41 positions (present in every trial) deleted ~30 % of the time
    rate = deleted_at[:41] / 1000
    assert (rate - 0.3).abs().max() < 0.06, rate


def test_document_rotation_begins_at_a_uniform_token_with_probability_rate():
    g = torch.Generator().manual_seed(1)
    n, trials, rotated, begin = 40, 4000, 0, torch.zeros(40)
    ids = list(range(n))
    for _ in range(trials):
        out = document_rotation(ids, 0.5, g)
        k = out[0]
        assert out == ids[k:] + ids[:k]  # a rotation
        rotated += k != 0
        begin[k] += 1
    # P(changed) = rate * (1 - 1/n): the chosen token may be the first
    assert abs(rotated / trials - 0.5 * (1 - 1 / n)) < 0.03
    chosen = begin[1:] / (trials * 0.5)  # each other start ~ 1/n of the rotations
    assert (chosen - 1 / n).abs().max() < 0.015, chosen
    assert document_rotation([5], 1.0, g) == [5] and document_rotation(ids, 0.0, g) == ids


@pytest.fixture(scope="module")
def data():
    corpus = load_corpus("pydoc").subset(list(range(20)))
    spec = pg.load_spec("bart-base", [SIZES])
    return corpus, train_tokenizer(corpus.texts, spec)


def collate(data, *over, n=300):
    corpus, tok = data
    col = collator_for(pg.load_spec("bart-base", [SIZES, *over]), tok, seed=0)
    exs = col.examples(corpus, 64)
    b = col([exs[i] for i in range(n)], list(range(n)), 0)
    bos, eos, pad = tok.id("bos"), tok.id("eos"), tok.id("pad")
    rows = []
    for i in range(n):
        lab = [t for t in b["labels"][i].tolist() if t != IGNORE]
        assert lab == [bos] + exs[i].ids + [eos]  # labels: always the original
        inp = b["input_ids"][i, :int(b["attention_mask"][i].sum())].tolist()
        assert inp[0] == bos and inp[-1] == eos and pad not in inp
        rows.append((exs[i].ids, inp[1:-1]))
    return rows, tok


def test_the_denoising_objective_deletes_and_rotates_by_its_spec_fields(data):
    rows, tok = collate(data, "objectives.0.rate=0", "objectives.0.permute_sentences=false",
                        "objectives.0.deletion=0.3")
    kept = total = 0
    for orig, inp in rows:
        assert len(inp) == len(orig) - math.ceil(0.3 * len(orig))
        it = iter(orig)
        assert all(t in it for t in inp)  # a subsequence: deletion only, no masks
        kept += len(inp)
        total += len(orig)
    assert total > 10_000 and abs(1 - kept / total - 0.3) < 0.01

    rows, _ = collate(data, "objectives.0.rate=0", "objectives.0.permute_sentences=false", "objectives.0.rotate=1")
    changed = 0
    for orig, inp in rows:
        k = next(k for k in range(len(orig)) if orig[k:] + orig[:k] == inp)  # a rotation of the original
        changed += k != 0
    assert changed > 0.95 * len(rows)

    rows, _ = collate(data, "objectives.0.permute_sentences=false")  # the default: no deletion, no rotation
    assert all(inp[0] == orig[0] or inp[0] == tok.id("mask") for orig, inp in rows)

    rows, _ = collate(data, "objectives.0.deletion=0.1", "objectives.0.rotate=0.5")  # all four noises at once
    masks = sum(inp.count(tok.id("mask")) for _, inp in rows)
    assert masks > len(rows)  # infilling still runs


def test_denoising_fields_are_validated():
    with pytest.raises(SpecError, match="with no noise"):
        pg.load_spec("bart-base", ["objectives.0.rate=0", "objectives.0.permute_sentences=false"])
    with pytest.raises(SpecError, match="deletion"):
        pg.load_spec("bart-base", ["objectives.0.deletion=1.0"])
    with pytest.raises(SpecError, match="rotate"):
        pg.load_spec("bart-base", ["objectives.0.rotate=1.5"])
