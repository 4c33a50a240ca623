"""The seed objectives added to training: statistics on thousands of tokens (with tolerances) and
label alignment for BART denoising, GLM blank infilling, XLNet permutation LM, ERNIE knowledge
masking, CLM continuation and classification; XLNet's loss on a collated batch equals Hugging
Face's; the data sources they read (JSONL labels and spans, folders, digits, Unigram)."""

import json
import math

import pytest
import torch

import plmgraph as pg
from plmgraph.errors import InputError
from plmgraph.train.data import load_corpus
from plmgraph.train.loss import IGNORE
from plmgraph.train.objectives import collator_for, heuristic_spans, image_data, text_infilling
from plmgraph.train.tokenizer import train_tokenizer

SIZES = "layers=1,hidden=32,heads=2,vocab=1024,max_positions=128"


@pytest.fixture(scope="module")
def corpus():
    return load_corpus("pydoc").subset(list(range(30)))  # 30 topics, about 190 kB


_toks = {}


def setup(name, corpus, *over, seq_len=64):
    spec = pg.load_spec(name, [SIZES, *over])
    key = (spec.family, tuple(o.kind for o in spec.objectives))
    if key not in _toks:
        _toks[key] = train_tokenizer(corpus.texts, spec)
    col = collator_for(spec, _toks[key], seed=0)
    return spec, col, col.examples(corpus, seq_len)


def batch(col, exs, n=200, epoch=0):
    idx = list(range(n))
    return col([exs[i] for i in idx], idx, epoch)


# ---------------------------------------------------------------- BART

def test_text_infilling_masks_whole_words_in_poisson_spans():
    g = torch.Generator().manual_seed(0)
    masked_words = masks = zero = words_total = 0
    for trial in range(300):
        n = 40 + trial % 50
        starts = (torch.rand(n, generator=g) < 0.6).tolist()
        starts[0] = True
        ids = list(range(1000, 1000 + n))  # unique ids: the kept tokens can be traced
        out = text_infilling(ids, starts, 0.3, 3.0, mask_id=7, gen=g)
        kept = [t for t in out if t != 7]
        assert kept == [t for t in ids if t in set(kept)]  # the rest keeps its order
        word = torch.cumsum(torch.tensor(starts), 0).tolist()
        gone = {word[t - 1000] for t in ids if t not in set(kept)}
        kept_words = {word[t - 1000] for t in kept}
        assert not gone & kept_words  # whole words only
        n_words = word[-1]
        assert len(gone) == math.ceil(0.3 * n_words)
        masked_words += len(gone)
        masks += out.count(7)
        words_total += n_words
        # a 0-length span inserts a mask between two kept tokens that were adjacent in the original
        pos = [t for t in out]
        for a, b, c in zip(pos, pos[1:], pos[2:], strict=False):
            zero += a != 7 and b == 7 and c != 7 and c == a + 1
    assert abs(masked_words / masks - 3.0) < 0.35  # mean span length ~ Poisson(3) (the last span is cut)
    assert 0.01 < zero / masks < 0.1  # P(0) = e^-3 = 0.05 of the spans are insertions


def test_bart_denoising_labels_are_the_original_and_sentences_are_permuted(corpus):
    _, col, exs = setup("bart-base", corpus)
    assert col.layout == "sentences"
    b = batch(col, exs)
    bos, eos, mask, pad = (col.tok.id(r) for r in ("bos", "eos", "mask", "pad"))
    permuted = multi = 0
    for i in range(200):
        ex = exs[i]
        lab = [t for t in b["labels"][i].tolist() if t != IGNORE]
        assert lab == [bos] + ex.ids + [eos]
        dec = b["decoder_input_ids"][i, :len(lab)].tolist()
        assert dec == [pad] + lab[:-1]
        inp = [t for t in b["input_ids"][i].tolist() if t != pad]
        assert inp[0] == bos and inp[-1] == eos and mask in inp
        kept = [t for t in inp[1:-1] if t != mask]
        it = iter(ex.ids)
        in_order = all(t in it for t in kept)  # a subsequence of the original, unless sentences moved
        if len(ex.sentences) >= 3:
            multi += 1
            permuted += not in_order
    assert multi > 50 and permuted / multi > 0.6
    _, plain, exs2 = setup("bart-base", corpus, "objectives.0.permute_sentences=false")
    b2 = batch(plain, exs2, 50)
    for i in range(50):
        it = iter(exs2[i].ids)
        assert all(t in it for t in b2["input_ids"][i].tolist() if t not in (bos, eos, mask, pad))


# ---------------------------------------------------------------- GLM

def test_glm_blank_infilling_rebuilds_the_text_at_the_rate(corpus):
    spec, col, exs = setup("glm", corpus)
    assert col.layout == "glm"
    b = batch(col, exs)
    mask, sop, eop = col.tok.id("mask"), col.tok.id("sop"), col.tok.id("eop")
    blanked = 0
    for i in range(200):
        orig = exs[i].ids
        n = int(b["attention_mask"][i].sum())
        ids, lab = b["input_ids"][i, :n].tolist(), b["labels"][i, :n].tolist()
        pos, block = b["position_ids"][i, 0, :n].tolist(), b["position_ids"][i, 1, :n].tolist()
        a = int(b["prefix_lengths"][i])
        assert n <= 64 and all(x == IGNORE for x in lab[:a]) and block[:a] == [0] * a
        spans, cur = {}, None
        for k in range(a, n):
            if ids[k] == sop:
                cur = pos[k]
                spans[cur] = []
                assert block[k] == 1
            else:
                spans[cur].append(ids[k])
            assert lab[k] == (ids[k + 1] if k + 1 < n and ids[k + 1] != sop else eop)  # labels come shifted
        rebuilt = []
        for k in range(a):
            rebuilt += spans[k] if ids[k] == mask else [ids[k]]
        assert rebuilt == orig
        assert ids[:a].count(mask) == len(spans)
        blanked += sum(len(s) for s in spans.values())
        assert sum(len(s) for s in spans.values()) == max(1, round(0.15 * len(orig)))
    assert abs(blanked / sum(len(exs[i].ids) for i in range(200)) - 0.15) < 0.01


# ---------------------------------------------------------------- XLNet

def test_xlnet_permutation_masks_are_a_factorisation_order(corpus):
    _, col, exs = setup("xlnet-base", corpus)
    b = batch(col, exs, 100)
    for i in range(100):
        ids, perm, tm = b["input_ids"][i], b["perm_mask"][i], b["target_mapping"][i]
        ordinary = ~torch.isin(ids, col.special)
        P = max(1, round(int(ordinary.sum()) / 6))
        rows = tm.sum(1) > 0
        assert int(rows.sum()) == P
        targets = tm[rows].argmax(1)
        assert ordinary[targets].all() and torch.equal(targets, targets.sort().values)
        assert torch.equal(b["labels"][i, :P], ids[targets]) and (b["labels"][i, P:] == IGNORE).all()
        is_t = torch.zeros(len(ids), dtype=torch.bool)
        is_t[targets] = True
        assert (perm[:, ~is_t] == 0).all()  # context tokens are visible to everyone
        assert (perm[~is_t][:, is_t] == 1).all()  # ... and see no target
        sees = 1 - perm[is_t][:, is_t]  # among targets: i sees j iff j comes earlier in the order
        assert (sees.diagonal() == 0).all() and torch.equal(sees + sees.T, 1 - torch.eye(P))
        assert sorted(sees.sum(1).tolist()) == list(range(P))  # a strict total order


@torch.no_grad()
def test_xlnet_loss_on_a_collated_batch_equals_hugging_face(tmp_path, corpus):
    tf = pytest.importorskip("transformers")
    from parity_util import randomize, save_and_import

    _, col, exs = setup("xlnet-base", corpus, seq_len=24)
    cfg = tf.XLNetConfig(vocab_size=col.tok.vocab_size, d_model=32, n_layer=2, n_head=4, d_inner=64,
                         ff_activation="gelu", mem_len=None)
    torch.manual_seed(0)
    hf = tf.XLNetLMHeadModel(cfg).eval()
    randomize(hf)
    model = save_and_import(hf, tmp_path).eval()
    b = batch(col, exs, 4)
    ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"], perm_mask=b["perm_mask"],
             target_mapping=b["target_mapping"], labels=b["labels"], use_mems=False).loss
    torch.testing.assert_close(model(**b).loss, ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- ERNIE

def test_heuristic_entities_and_phrases():
    text = "The Python Software Foundation keeps os.path and __init__ here. In the end Guido van Rossum wrote it."
    assert [text[a:b] for a, b in heuristic_spans(text, "entity")] == [
        "Python Software Foundation", "os.path", "__init__", "Guido", "Rossum"]
    assert [text[a:b] for a, b in heuristic_spans(text, "phrase")] == [
        "Python Software Foundation keeps os.path", "__init__ here", "end Guido van Rossum wrote"]


def test_ernie_masks_each_entity_as_one_unit(corpus):
    _, col, exs = setup("ernie-base", corpus, "objectives.0.rate=0.3")
    assert col.unit == "entity"
    b = batch(col, exs)
    sel = b["labels"] != IGNORE
    units = 0
    for i in range(200):
        st = exs[i].starts
        unit = torch.cumsum(torch.tensor(st), 0)
        row = sel[i, :len(st)]
        special = torch.isin(torch.tensor(exs[i].ids), col.special)
        for u in torch.unique(unit):
            members = (unit == u) & ~special
            assert row[members].all() or not row[members].any(), "a unit was masked only in part"
            units += int(members.sum() > 2)
    assert units > 200  # multi-token entities were among the units


def test_ernie_reads_spans_from_jsonl(tmp_path):
    text = "we call read_file and the Data Loader here\nthen more words follow"
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"text": text, "spans": [[3, 16], [43, 52]]}) + "\n" + json.dumps({"text": "x y"}) + "\n")
    c = load_corpus(f)
    assert c.spans == [[[(3, 16)], [(0, 9)]], [[]]]
    spec = pg.load_spec("ernie-base", [SIZES, "objectives.0.unit=phrase"])
    tok = train_tokenizer(c.texts * 50, spec)
    col = collator_for(spec, tok)
    ids, starts = col._sentence(c, 0, 0)
    enc = tok.hf.encode(c.docs[0][0], add_special_tokens=False)
    inside = [k for k, (x, y) in enumerate(enc.offsets) if x >= 3 and y <= 16]
    assert len(inside) > 1 and starts[inside[0]] and not any(starts[k] for k in inside[1:])
    with pytest.raises(InputError, match=r"span \[5, 99\] is empty or outside the text"):
        f.write_text(json.dumps({"text": text, "spans": [[5, 99]]}) + "\n")
        load_corpus(f)


# ---------------------------------------------------------------- CLM on an encoder-decoder, classification

def test_clm_on_an_encoder_decoder_continues_what_the_encoder_read(corpus):
    _, col, exs = setup("transformer-base", corpus)
    assert col.layout == "continuation"
    b = batch(col, exs, 8)
    for i in range(8):
        assert b["input_ids"][i].tolist() + b["labels"][i].tolist() == exs[i].ids
        assert b["decoder_input_ids"][i].tolist() == [col.tok.id("pad")] + b["labels"][i, :-1].tolist()


def test_sequence_classification_from_labelled_jsonl(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"text": f"text number {i} " + "ab" * (i % 3), "label": ["no", "yes"][i % 2]})
                         + "\n" for i in range(40)))
    c = load_corpus(f)
    spec = pg.load_spec("bert-base", [SIZES, "objectives=[{kind: classification}]",
                                      "heads.0={kind: sequence_classification, labels: 2}"])
    tok = train_tokenizer(c.texts * 10, spec)
    col = collator_for(spec, tok)
    exs = col.examples(c, 16)
    assert col.label_ids == {"no": 0, "yes": 1}
    b = col(exs[:4], [0, 1, 2, 3])
    assert b["labels"].tolist() == [0, 1, 0, 1] and b["input_ids"][:, 0].eq(tok.id("cls")).all()
    f.write_text(json.dumps({"text": "a", "label": 1}) + "\n" + json.dumps({"text": "b"}) + "\n")
    with pytest.raises(InputError, match="some lines have a `label` and some do not"):
        load_corpus(f)
    f.write_text(json.dumps({"text": "a", "label": 7}) + "\n")
    with pytest.raises(InputError, match=r"label 7 is outside the head's 2 classes"):
        col.label_ids = None
        col.examples(load_corpus(f), 16)


def test_digits_for_vit():
    pytest.importorskip("sklearn")
    spec = pg.load_spec("vit-base", ["layers=1,hidden=32,heads=2", "embeddings.patches.image_size=16",
                                     "embeddings.patches.patch_size=4", "heads.0.labels=10"])
    col, train, held = image_data(spec, "digits", 0.1, 0)
    assert len(train) + len(held) == 1797 and len(held) == 180 and not set(train) & set(held)
    b = col(train[:5], [0, 1, 2, 3, 4])
    assert b["pixel_values"].shape == (5, 3, 16, 16) and b["labels"].shape == (5,)
    assert -1.0 <= b["pixel_values"].min() and b["pixel_values"].max() <= 1.0
    with pytest.raises(InputError, match="the digits have 10 classes, vit-base's head 2"):
        image_data(pg.load_spec(spec, ["heads.0.labels=2"]), "digits", 0.1, 0)
    with pytest.raises(InputError, match="pass --data digits, not 'pydoc'"):
        image_data(spec, "pydoc", 0.1, 0)


# ---------------------------------------------------------------- data sources

def test_a_folder_is_a_corpus(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.txt").write_text("first doc line\n\nsecond doc\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "third doc"}) + "\n")
    (tmp_path / ".hidden.txt").write_text("never read\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\0")
    c = load_corpus(tmp_path)
    assert c.docs == [["first doc line"], ["second doc"], ["third doc"]]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no .txt, .md or .jsonl files"):
        load_corpus(empty)


def test_unigram_tokenizer(corpus):
    spec = pg.load_spec("t5-small", [SIZES, "objectives.0.sentinels=10"])
    tok = train_tokenizer(corpus.texts[:30], spec, algorithm="unigram")
    assert tok.vocab_size <= 1024 and tok.id("pad") == 0 and len(tok.sentinels) == 10
    text = "The for statement is used to iterate over the elements of a sequence"
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(InputError, match="not one of: bpe, unigram, wordpiece"):
        train_tokenizer(corpus.texts[:3], spec, algorithm="sentencepiece")
