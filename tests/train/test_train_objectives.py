"""Objective collators: statistics on thousands of tokens (with tolerances) and label alignment."""

import pytest
import torch

import plmgraph as pg
from plmgraph.errors import InputError
from plmgraph.kinds.objective.mlm import MLM
from plmgraph.spec import SpecError
from plmgraph.train.data import load_corpus
from plmgraph.train.loss import IGNORE
from plmgraph.train.objectives import collator_for, random_spans_noise_mask
from plmgraph.train.tokenizer import train_tokenizer

SIZES = "layers=1,hidden=32,heads=2,vocab=1024,max_positions=128"


@pytest.fixture(scope="module")
def corpus():
    return load_corpus("pydoc")


_toks = {}


def setup(name, corpus, *over, seq_len=64):
    spec = pg.load_spec(name, [SIZES, *over])
    key = (spec.family, tuple(o.kind for o in spec.objectives))
    if key not in _toks:
        _toks[key] = train_tokenizer(corpus.texts[:30], spec)
    col = collator_for(spec, _toks[key], seed=0)
    return spec, col, col.examples(corpus, seq_len)


def batch(col, exs, n=200, epoch=0):
    idx = list(range(n))
    return col([exs[i] for i in idx], idx, epoch)


def test_mlm_rate_and_80_10_10(corpus):
    spec, col, exs = setup("roberta-base", corpus, "objectives.0.dynamic=false")
    b = batch(col, exs)
    orig = torch.stack([torch.tensor(exs[i].ids) for i in range(200)])
    special = torch.isin(orig, col.special)
    sel = b["labels"] != IGNORE
    n = int((~special).sum())
    assert n > 10_000
    assert abs(sel.sum().item() / n - 0.15) < 0.01
    assert not (sel & special).any()
    assert torch.equal(b["labels"][sel], orig[sel])  # labels are the originals, at their own positions
    masked = (b["input_ids"] == col.tok.id("mask")) & sel
    kept = (b["input_ids"] == orig) & sel
    frac_mask, frac_kept = masked.sum().item() / sel.sum().item(), kept.sum().item() / sel.sum().item()
    assert abs(frac_mask - 0.8) < 0.03
    assert abs(frac_kept - 0.1) < 0.03  # (a random replacement may equal the original: ~0.1%)
    assert torch.equal(b["input_ids"][~sel], orig[~sel])
    assert not torch.isin(b["input_ids"][sel & ~masked & ~kept], col.special).any()


def test_static_masking_repeats_dynamic_redraws(corpus):
    _, static, exs = setup("bert-base", corpus)
    assert not static.dynamic
    assert torch.equal(batch(static, exs, 8, 0)["labels"], batch(static, exs, 8, 3)["labels"])
    _, dynamic, exs = setup("roberta-base", corpus)
    assert dynamic.dynamic
    assert not torch.equal(batch(dynamic, exs, 8, 0)["labels"], batch(dynamic, exs, 8, 1)["labels"])
    assert torch.equal(batch(dynamic, exs, 8, 1)["labels"], batch(dynamic, exs, 8, 1)["labels"])  # seeded


def test_whole_word_masking_masks_words_together(corpus):
    _, col, exs = setup("bert-base", corpus, "objectives.0.unit=whole_word", "objectives.0.rate=0.3")
    b = batch(col, exs)
    sel = b["labels"] != IGNORE
    pieces = 0
    for i in range(200):
        starts = exs[i].starts
        word = torch.cumsum(torch.tensor(starts), 0)
        row = sel[i, :len(starts)]
        special = torch.isin(torch.tensor(exs[i].ids), col.special)
        for w in torch.unique(word[row]):
            members = (word == w) & ~special
            assert row[members].all(), "a word was masked only in part"
            pieces += int(members.sum() > 1)
    assert pieces > 100  # multi-piece words were among the masked ones
    frac = sel.sum().item() / (~torch.isin(b["input_ids"], col.special) | sel).sum().item()
    assert 0.25 < frac < 0.35


def test_nsp_pairs(corpus):
    _, col, exs = setup("bert-base", corpus)
    assert col.layout == "pairs" and len(exs) > 1000
    labels = torch.tensor([e.sentence_label for e in exs], dtype=torch.float)
    assert abs(labels.mean().item() - 0.5) < 0.05
    cls, sep = col.tok.id("cls"), col.tok.id("sep")
    for e in exs[:300]:
        assert e.ids[0] == cls and e.ids[-1] == sep and e.ids.count(sep) == 2 and len(e.ids) <= 64
        cut = e.ids.index(sep)
        assert e.types == [0] * (cut + 1) + [1] * (len(e.ids) - cut - 1)
    b = batch(col, exs, 16)
    assert torch.equal(b["next_sentence_label"], labels[:16].long())
    assert torch.equal(b["token_type_ids"][b["attention_mask"] == 0], torch.zeros_like(b["token_type_ids"][
        b["attention_mask"] == 0]))


def test_sop_swaps_half_of_consecutive_pairs(corpus):
    _, col, exs = setup("albert-base", corpus, "embeddings.size=32")
    assert col.layout == "pairs"
    labels = torch.tensor([e.sentence_label for e in exs], dtype=torch.float)
    assert abs(labels.mean().item() - 0.5) < 0.05
    assert "sentence_order_label" in batch(col, exs, 4)


def test_t5_noise_mask_lengths_match_the_reference():
    g = torch.Generator().manual_seed(0)
    for length, density, mean in [(113, 0.15, 3.0), (512, 0.15, 3.0), (64, 0.5, 2.0), (10, 0.15, 3.0)]:
        for _ in range(20):
            m = random_spans_noise_mask(length, density, mean, g)
            noise = min(max(round(length * density), 1), length - 1)
            spans = max(round(noise / mean), 1)
            assert m.shape == (length,) and int(m.sum()) == noise
            assert not m[0]  # T5's mask starts with kept tokens
            starts = int((m[1:] & ~m[:-1]).sum())
            assert starts == spans


def test_span_corruption_alignment_and_statistics(corpus):
    _, col, exs = setup("t5-small", corpus, "objectives.0.sentinels=20")
    b = batch(col, exs)
    sent = set(col.tok.sentinels)
    eos = col.tok.id("eos")
    noise_total = 0
    for i in range(200):
        ids = exs[i].ids
        inp = [t for t in b["input_ids"][i].tolist() if t != col.tok.id("pad")][:len(ids) + 1]
        lab = [t for t in b["labels"][i].tolist() if t != IGNORE]
        assert inp[-1] == eos and lab[-1] == eos
        # rebuild the original from inputs + targets
        spans, cur = {}, None
        for t in lab[:-1]:
            if t in sent:
                cur = t
                spans[cur] = []
            else:
                spans[cur].append(t)
        rebuilt = []
        for t in inp[:-1]:
            rebuilt += spans[t] if t in sent else [t]
        assert rebuilt == ids
        assert list(spans) == col.tok.sentinels[:len(spans)]  # <extra_id_0> first
        noise_total += sum(len(s) for s in spans.values())
        dec = b["decoder_input_ids"][i]
        assert dec[0] == col.tok.id("pad") and dec[1:len(lab)].tolist() == lab[:-1]
    assert abs(noise_total / (200 * len(exs[0].ids)) - 0.15) < 0.01


def test_clm_labels_are_inputs_and_documents_end_in_eos(corpus):
    _, col, exs = setup("gpt2", corpus)
    b = batch(col, exs, 4)
    assert torch.equal(b["labels"], b["input_ids"])
    eos = col.tok.id("eos")
    total = sum(e.ids.count(eos) for e in exs)
    assert len(corpus.docs) - 1 <= total <= len(corpus.docs)


@pytest.mark.parametrize("name, over, match", [
    ("gpt2", ["objectives=[{kind: mlm}]"], "objective 'mlm' .* needs an encoder; .* is a decoder with causal"),
    ("bert-base", ["objectives=[{kind: span_corruption}]"], "span_corruption' .* needs an encoder-decoder"),
    ("bert-base", ["objectives=[{kind: denoising}]"], "'denoising' .* needs an encoder-decoder; bert-base is an enc"),
    ("t5-small", ["objectives=[{kind: mlm}]"], "'mlm' .* needs an encoder; t5-small is an encoder-decoder"),
    ("xlnet-base", ["objectives=[{kind: clm}]"], "'clm' .* needs a decoder with causal attention .* bidirectional"),
    ("gpt2", ["objectives=[{kind: permutation}]"], "'permutation' .* needs attention kind 'two_stream'; gpt2's "
                                                  "is self"),
    ("gpt2", ["objectives=[{kind: blank_infilling}]"], "'blank_infilling' .* needs a decoder with attention mask "
                                                      "'prefix'"),
    ("gpt2", ["objectives=[{kind: classification}]"], "'classification' .* first head is lm"),
    ("distilbert", ["objectives=[{kind: nsp}]"], "'nsp' needs a head of kind 'nsp'"),
])
def test_objectives_the_spec_cannot_train_are_validation_errors(name, over, match):
    with pytest.raises(SpecError, match=match):
        pg.load_spec(name, [SIZES, *over])


def test_objectives_the_spec_cannot_train_are_refused_for_python_specs(corpus):
    spec = pg.load_spec("gpt2", [SIZES])
    tok = train_tokenizer(corpus.texts[:5], spec)
    spec.__dict__["objectives"] = [MLM()]  # a spec edited in Python, past the validator
    with pytest.raises(InputError, match="objective 'mlm' .* needs an encoder; gpt2 is a decoder with causal"):
        collator_for(spec, tok)
    spec.__dict__["objectives"] = []
    with pytest.raises(InputError, match="declares no objectives"):
        collator_for(spec, tok)
