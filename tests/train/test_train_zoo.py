"""Every zoo family trains a few steps on its own objectives (the spec's `objectives`), shrunk tiny.

A family is one architecture up to size: gpt2, gpt2-xl, gpt3 and opt-1.3b train alike, so do
the llama-style decoders (llama*, mistral, qwen2.5, phi3, chatglm2, glm4).  `FAMILIES` holds one
spec per family and a test checks that it covers every zoo spec.

The collator is the one `plmgraph train` uses (`collator_for`), the data a slice of Python's
own documentation (ViT: scikit-learn's digits), the loss ``model(**batch).loss``; each step's
loss is finite and AdamW moves every trainable parameter that got a gradient.
"""

import math

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.spec import zoo_names
from plmgraph.train.data import load_corpus
from plmgraph.train.objectives import collator_for, image_data
from plmgraph.train.tokenizer import specials_for, train_tokenizer

_toks: dict = {}


@pytest.fixture(scope="module")
def corpus():
    c = load_corpus("pydoc")
    return c.subset(list(range(0, len(c.docs), 8)))  # 10 topics, about 60 kB


def shrunk(name):
    spec = tiny(name, vocab=512)
    over = []
    if spec.embeddings.patches is not None:
        over.append("heads.0.labels=10")
    if any(o.kind == "span_corruption" for o in spec.objectives):
        over.append("objectives.0.sentinels=20")
    return pg.load_spec(spec, over) if over else spec


def batches(spec, corpus, n):
    """`n` batches of 2 examples, as the trainer collates them."""
    if spec.embeddings.patches is not None:
        col, train, _ = image_data(spec, "digits", 0.0, 0)
        return [col(train[2 * i:2 * i + 2], list(range(2 * i, 2 * i + 2))) for i in range(n)], False
    key = (spec.family, tuple(specials_for(spec)), spec.family == "encoder")
    if key not in _toks:
        _toks[key] = train_tokenizer(corpus.texts, spec)
    col = collator_for(spec, _toks[key], seed=0)
    exs = col.examples(corpus, 32)
    if col.recurrent:  # consecutive segments of two streams
        per = len(exs) // 2
        return [col([exs[s], exs[per + s]], [s, per + s]) for s in range(n)], True
    return [col(exs[2 * i:2 * i + 2], [2 * i, 2 * i + 1]) for i in range(n)], False


FAMILIES = ["albert-base", "bart-base", "bert-base", "deberta-v3-base", "distilbert", "ernie-base", "gemma2-9b", "glm",
            "glm-130b", "gpt", "gpt2", "llama2-7b", "mixtral-8x7b", "pythia-1.4b", "roberta-base", "t5-small",
            "transformer-base", "transformer-xl", "vit-base", "xlnet-base"]


def family(spec):
    stacks = tuple(sorted((st.block.attention.kind, st.block.attention.mask, st.block.mlp.kind, st.block.norm.kind,
                           st.block.placement) for st in spec.stacks.values()))
    return (spec.family, tuple(o.model_dump_json() for o in spec.objectives), stacks, spec.position.kind,
            tuple(h.kind for h in spec.heads), spec.sharing.kind)


def test_the_families_cover_the_zoo():
    covered = {family(pg.load_spec(n)) for n in FAMILIES}
    assert [n for n in zoo_names() if family(pg.load_spec(n)) not in covered] == []


@pytest.mark.parametrize("name", FAMILIES)
def test_zoo_family_trains_on_its_own_objectives(name, corpus):
    spec = shrunk(name)
    torch.manual_seed(0)
    model = pg.build(spec, seed=0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data, recurrent = batches(spec, corpus, 3)
    mems = None
    for batch in data:
        if recurrent:  # Transformer-XL: the memory of the previous segment, detached
            if mems is not None:
                m = batch["attention_mask"]
                batch["attention_mask"] = torch.cat([m.new_ones(m.shape[0], mems[0].shape[1]), m], 1)
            out = model(**batch, past_key_values=mems, use_cache=True)
            mems = out.past_key_values
            assert not any(m.requires_grad for m in mems)
        else:
            out = model(**batch)
        assert out.loss is not None and math.isfinite(out.loss.item()), (name, out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) > len(before) // 2, (name, sorted(set(before) - set(moved)))
    if recurrent:
        assert mems[0].shape[1] == 3 * 32  # each step appended its segment to the memory
