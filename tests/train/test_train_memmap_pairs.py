"""Sentence pairs (NSP, SOP) from a memory-mapped corpus: the token file is written sentence by
sentence with its sentence and document boundaries beside it (`SentenceIndex`), the pairs are
planned from the sentence lengths alone and read on demand; they equal the in-memory pairs of the
same corpus, and a memmap BERT run (MLM + NSP) resumes exactly."""

import json
from pydoc_data.topics import topics

import pytest

import plmgraph as pg
from plmgraph.train.data import SentenceIndex, TokenFile, iter_texts, load_corpus
from plmgraph.train.objectives import PairBlocks, collator_for
from plmgraph.train.tokenizer import train_tokenizer
from plmgraph.train.trainer import TrainConfig, Trainer

SIZES = "layers=1,hidden=32,heads=2,vocab=512,max_positions=64"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    f = tmp_path_factory.mktemp("pairs") / "corpus"
    f.mkdir()
    for k in sorted(topics)[:10]:
        (f / f"{k}.txt").write_text(topics[k].strip().replace("\n\n", "\n") + "\n", encoding="utf-8")
    return f


def test_sentence_index_round_trips(tmp_path):
    docs = [[[5, 6], [7]], [[8, 9, 10]], [[], [11]]]
    tokens, index = SentenceIndex.write(tmp_path / "t.bin", docs, 100)
    assert tokens[:] == [5, 6, 7, 8, 9, 10, 11] and (index.n_docs, index.n_sentences) == (3, 5)
    assert [index.sentences(d) for d in range(3)] == [2, 1, 2]
    assert [tokens[slice(*index.span(d, k))] for d in range(3) for k in range(index.sentences(d))] == \
        [[5, 6], [7], [8, 9, 10], [], [11]]
    again = SentenceIndex(tmp_path / "t.bin")
    assert again.span(2, 1) == (6, 7)
    empty_tokens, empty = SentenceIndex.write(tmp_path / "e.bin", [], 100)
    assert len(empty_tokens) == 0 and empty.n_docs == 0


@pytest.mark.parametrize("name, seq_len", [("bert-base", 32), ("bert-base", 64), ("albert-base", 48)])
def test_memmap_pairs_equal_the_in_memory_pairs(tmp_path, folder, name, seq_len):
    spec = pg.load_spec(name, [SIZES])
    corpus = load_corpus(folder)
    tok = train_tokenizer(corpus.texts, spec)
    memory = collator_for(spec, tok, seed=1).examples(corpus, seq_len)
    streamed = collator_for(spec, tok, seed=1).stream_examples(iter_texts(folder), seq_len, tmp_path / "t.bin")
    assert isinstance(streamed, PairBlocks) and len(streamed) == len(memory) > 100
    labels = set()
    for a, b in zip(memory, streamed, strict=True):
        assert (a.ids, a.types, a.sentence_label) == (b.ids, b.types, b.sentence_label)
        labels.add(a.sentence_label)
    assert labels == {0, 1}
    # the tokens stay on disk: the pairs hold 8 integers each, and the token file holds every sentence once
    assert streamed.plans.shape == (len(memory), 8)
    assert len(TokenFile(tmp_path / "t.bin")) == sum(len(tok.encode(s)) for d in corpus.docs for s in d)


def test_memmap_bert_run_trains_mlm_and_nsp_and_resumes_exactly(tmp_path, folder):
    spec = pg.load_spec("bert-base", [SIZES])
    cfg = TrainConfig(steps=4, batch_size=2, seq_len=32, warmup=1, checkpoint_every=2, eval_batches=1, memmap=True,
                      held_out=0.2)
    full = Trainer.create(spec, tmp_path / "full", str(folder), cfg)
    assert isinstance(full.examples, PairBlocks) and len(full.held) > 0
    b = full.collator([full.examples[0], full.examples[1]], [0, 1])
    assert "next_sentence_label" in b and "token_type_ids" in b
    full.run_steps()

    def stop_at_2(m):
        if m["step"] == 2:
            raise KeyboardInterrupt

    # one tokenizer for both runs (WordPiece breaks ties at the vocabulary cut in hash order)
    part = Trainer.create(spec, tmp_path / "part", str(folder), cfg, tokenizer=tmp_path / "full" / "tokenizer.json")
    part.run_steps(on_step=stop_at_2)
    again = Trainer.resume(tmp_path / "part")
    assert isinstance(again.examples, PairBlocks)
    again.run_steps()

    def losses(run):
        return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    ev = [r["eval"] for r in map(json.loads, (tmp_path / "full" / "metrics.jsonl").read_text().splitlines())
          if "eval" in r][-1]
    assert "sentence_accuracy" in ev and "mlm_accuracy" in ev
