"""Token classification: JSONL ``{"tokens": [...], "labels": [...]}`` (or ``--data pydoc-tags``, the
words of Python's documentation tagged KEYWORD / NUMBER / PUNCT / CAPITALISED / OTHER), each word's
label on its first piece and -100 elsewhere (checked against Hugging Face's own alignment,
``is_split_into_words`` + ``word_ids()`` as in its ``run_ner`` example); the loss falls on pydoc-tags
and eval reports token accuracy above the majority-class baseline."""

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.train_cmds  # noqa: F401  (registers train, eval)
from plmgraph.cli import app
from plmgraph.errors import InputError
from plmgraph.train.data import load_corpus, word_tag
from plmgraph.train.loss import IGNORE
from plmgraph.train.objectives import collator_for
from plmgraph.train.tokenizer import train_tokenizer
from plmgraph.train.trainer import TrainConfig, Trainer

SIZES = "layers=2,hidden=64,heads=2,vocab=1024,max_positions=64"
TAGGER = ["objectives=[{kind: classification}]", "heads.0={kind: token_classification, labels: 5}"]


@pytest.fixture(scope="module")
def tags():
    return load_corpus("pydoc-tags")


def test_word_tags():
    assert [word_tag(w) for w in ["for", "None", "3.14", "0x1F", "1,000.", "::=", "--", "Python", "print()",
                                  "x"]] == ["KEYWORD", "KEYWORD", "NUMBER", "NUMBER", "NUMBER", "PUNCT", "PUNCT",
                                            "CAPITALISED", "OTHER", "OTHER"]


@pytest.mark.parametrize("name", ["bert-base", "gpt2"])
def test_labels_sit_on_each_words_first_piece_as_hugging_face_aligns_them(tags, name):
    from transformers import PreTrainedTokenizerFast

    spec = pg.load_spec(name, [SIZES, *TAGGER])
    corpus = tags.subset(list(range(10)))
    tok = train_tokenizer(corpus.texts, spec)
    col = collator_for(spec, tok)
    exs = col.examples(corpus, 64)
    assert col.layout == "tokens" and col.label_ids == {t: i for i, t in enumerate(sorted(
        {t for d in corpus.word_labels for s in d for t in s}))}
    sentences = [(w, t) for d in range(10) for w, t in zip(corpus.words[d], corpus.word_labels[d], strict=True)]
    assert len(exs) == len(sentences) > 500
    hf = PreTrainedTokenizerFast(tokenizer_object=tok.hf)
    encoder = name == "bert-base"
    checked = 0
    for ex, (words, labels) in zip(exs, sentences, strict=True):
        b = col([ex], [0])
        ids, lab = b["input_ids"][0].tolist(), b["labels"][0].tolist()
        if encoder:
            assert ids[0] == tok.id("cls") and ids[-1] == tok.id("sep") and lab[0] == lab[-1] == IGNORE
            ids, lab = ids[1:-1], lab[1:-1]
        if len(ids) >= 62:  # cut to the sequence: compared below only when whole
            continue
        if encoder:  # WordPiece: the words as given tokenize as the joined sentence does
            enc = hf(words, is_split_into_words=True, add_special_tokens=False)
            assert enc["input_ids"] == ids
            word_ids = enc.word_ids()
            want = [IGNORE if w is None or (i and word_ids[i - 1] == w) else col.label_ids[labels[w]]
                    for i, w in enumerate(word_ids)]
            assert lab == want
        else:  # byte-level BPE: each word but the first carries its leading space, so compare by text
            firsts = [i for i, x in enumerate(lab) if x != IGNORE]
            assert len(firsts) == len(words) and [lab[i] for i in firsts] == [col.label_ids[t] for t in labels]
            pieces = [tok.decode(ids[a:b]).strip() for a, b in zip(firsts, firsts[1:] + [len(ids)], strict=True)]
            assert pieces == words
        checked += 1
    assert checked > 400


def test_token_classification_loss_falls_and_eval_reports_token_accuracy(tmp_path, tags):
    spec = pg.load_spec("bert-base", [SIZES, *TAGGER])
    cfg = TrainConfig(steps=30, batch_size=16, seq_len=32, lr=3e-3, warmup=3, checkpoint_every=1000,
                      eval_batches=None)
    t = Trainer.create(spec, tmp_path / "run", "pydoc-tags", cfg)
    result = t.run_steps()
    seen = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            if '"eval"' not in x]
    assert sum(seen[-5:]) / 5 < sum(seen[:3]) / 3 - 0.5, seen
    ev = result.eval
    assert set(ev) == {"loss", "accuracy", "tokens"}
    held = Counter(x for ex in t.held for x in ex.token_labels if x != IGNORE)
    assert ev["tokens"] == sum(held.values())
    assert ev["accuracy"] > max(held.values()) / ev["tokens"] + 0.05, (ev, held)  # beats the majority class
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    cli = json.loads(r.stdout[r.stdout.index("{"):])
    assert cli["accuracy"] == pytest.approx(ev["accuracy"]) and cli["tokens"] == ev["tokens"]


def test_token_classification_data_errors(tmp_path, tags):
    f = tmp_path / "t.jsonl"
    bad = [({"tokens": ["a", "b"], "labels": ["X"]}, "one label per word"),
           ({"tokens": ["a b"], "labels": ["X"]}, "non-empty strings without whitespace"),
           ({"tokens": [], "labels": []}, "non-empty list of words"),
           ({"tokens": ["a"], "labels": [1.5]}, "an integer or a string")]
    for row, message in bad:
        f.write_text(json.dumps(row) + "\n")
        with pytest.raises(InputError, match=message):
            load_corpus(f)
    f.write_text(json.dumps({"tokens": ["a"], "labels": ["X"]}) + "\n" + json.dumps({"text": "b"}) + "\n")
    with pytest.raises(InputError, match="some lines have `text` and some `tokens`"):
        load_corpus(f)
    spec = pg.load_spec("bert-base", [SIZES, *TAGGER])
    tok = train_tokenizer(tags.subset([0, 1]).texts, spec)
    with pytest.raises(InputError, match="trains on a label per word"):
        collator_for(spec, tok).examples(load_corpus("pydoc").subset([0]), 32)
    f.write_text("".join(json.dumps({"tokens": ["w"] * 3, "labels": [0, 5, 1]}) + "\n" for _ in range(3)))
    with pytest.raises(InputError, match=r"label 5 is outside the head's 5 classes"):
        collator_for(spec, tok).examples(load_corpus(f), 32)
    f.write_text("".join(json.dumps({"tokens": ["some", "Words"], "labels": ["O", "B"]}) + "\n" for _ in range(9)))
    exs = collator_for(spec, tok).examples(load_corpus(f), 32)
    assert len(exs) == 9 and [x for x in exs[0].token_labels if x != IGNORE] == [1, 0]  # B=0, O=1
