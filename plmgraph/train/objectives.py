"""Objectives as collators: examples from a corpus, then each objective's inputs and labels.

`collator_for(spec, tokenizer)` asks each of the spec's ``objectives`` kinds for its ``train``
facet (plmgraph/kinds/objective/<kind>.py), checks that the spec can train it, and returns a
`Collator`.  The objectives fix the *layout* of the examples (`Collator.examples`):

======================  ==========================================================================
layout                  examples
======================  ==========================================================================
``causal`` (clm)        the documents' tokens, each followed by eos (GPT-2's ``<|endoftext|>``, the
                        document boundary), concatenated and cut into ``seq_len`` blocks
``bidirectional`` (mlm) the same stream with [SEP] at each document end, cut into ``seq_len - 2``
                        blocks, each ``[CLS] block [SEP]`` (RoBERTa's FULL-SENTENCES)
``pairs`` (+nsp / sop)  ``[CLS] A [SEP] B [SEP]`` from consecutive sentences of one document
                        (BERT's ``create_instances_from_document``): NSP replaces B by sentences of
                        another document half the time (label 1 = random, as HF), SOP swaps A and B
                        half the time (label 1 = swapped); token types 0 over A, 1 over B
``spans`` (T5)          ``seq_len - 1`` tokens of the stream; the collator corrupts them
``continuation``        clm on an encoder-decoder (the Transformer): ``seq_len`` tokens of the stream,
                        the encoder reads the first half, the decoder predicts the second half
``glm`` (blank          ``L`` tokens of the stream, the largest ``L`` with ``L + 2 round(rate L) <=
infilling)              seq_len`` (Part A + Part B with one [MASK], [START] and [END] per span fit)
``sentences`` (BART)    consecutive sentences of one document, up to ``seq_len - 2`` tokens (a longer
                        sentence is cut), with the sentence boundaries
``permutation`` (XLNet) ``seq_len`` tokens of the stream
``classify``            one example per labelled document (JSONL ``label``): ``[CLS] text [SEP]`` for
                        encoders, ``text eos`` for decoders, cut to ``seq_len``
``tokens`` (token       one example per sentence of words (JSONL ``tokens`` + ``labels``, or
classification)         ``pydoc-tags``): ``[CLS] pieces [SEP]`` for encoders, the pieces alone for
                        decoders, cut to ``seq_len``; each word's label on its first piece, -100 on
                        its other pieces and the special tokens (HF's ``run_ner`` alignment)
``images`` (ViT)        images, not text: `ImageCollator` (scikit-learn's digits)
======================  ==========================================================================

Transformer-XL (``attention: segment_memory``) trains CLM segment-recurrently: the examples are
consecutive segments of the stream and ``Collator.recurrent`` is true, so the trainer lays the
stream out as ``batch_size`` parallel streams, feeds segment ``s`` of each at step ``s`` and
carries each layer's memory from step to step (detached: no gradient crosses a segment).

Randomness is a pure function of (seed, epoch, example index): static masking (``dynamic:
false``) draws each example's mask once (epoch 0 for every epoch), dynamic masking (RoBERTa)
and span corruption draw again each epoch.  So a resumed run sees exactly the batches an
uninterrupted one would, with no generator state to save.

MLM (Devlin et al. 2019; HF ``DataCollatorForLanguageModeling``): each non-special token
(each word, for ``unit: whole_word``: the pre-tokenizer's words, so a word's pieces go
together) is selected with probability ``rate``; a selected token becomes [MASK] with
probability ``mask``, a random non-special token with probability ``random``, else stays;
labels are the original ids at selected tokens, -100 elsewhere.

Span corruption (Raffel et al. 2020): the noise mask is T5's ``random_spans_noise_mask``
(round(length * rate) noise tokens in round(noise / mean_span) spans, span and gap lengths a
random segmentation, the text starting with a gap); the input keeps the other tokens with one
sentinel per span (``<extra_id_0>`` first) and eos; the labels are each sentinel followed by
its span, then eos; ``decoder_input_ids`` are the labels shifted right behind pad (id 0).

ERNIE's knowledge masking (Sun et al. 2019; MLM with ``unit: phrase`` or ``unit: entity``) masks
a phrase or an entity as one unit (all its tokens or none), other words as whole words.  Units
come from the JSONL ``spans`` (character offsets) when the corpus has them, otherwise from a
heuristic (`heuristic_spans`): *entity*: a run of capitalised words (a single one only when it
does not start its sentence) or a dotted/underscored identifier (``os.path``, ``__init__``);
*phrase*: RAKE's candidate phrases (Rose et al. 2010): runs of two or more words between
punctuation and stop words.

BART's denoising (Lewis et al. 2020; fairseq ``DenoisingDataset``), in fairseq's order: the
sentences of an example are shuffled (``permute_sentences``); token deletion (``deletion``):
``ceil(deletion * n)`` tokens chosen uniformly without replacement are removed; text infilling
(``rate``, 0 = off): span lengths are drawn from Poisson(``poisson_lambda``) until ``ceil(rate *
words)`` words are covered (the last one cut), spans are placed over whole words without
overlap, and each span becomes one ``<mask>`` (a 0-length span inserts one); document rotation
(``rotate``): with that probability the corrupted text is rotated to begin at a token chosen
uniformly (the paper's definition; fairseq draws one of n + 1 offsets, two of them no change);
the input is ``<s> corrupted </s>``, the labels the original ``<s> text </s>``,
``decoder_input_ids`` the labels shifted right behind pad.

GLM's blank infilling (`plmgraph.objectives.blank_infilling`): spans from `sample_spans` with the
spec's rate and Poisson λ, Part B in a random order; ``position_ids`` [2, T] (row 0 only for a
model without 2D positions) and ``prefix_lengths``; labels come shifted.

XLNet's permutation LM with partial prediction (Yang et al. 2019 §2.3, HF
``DataCollatorForPermutationLanguageModeling``): a random factorisation order of the non-special
tokens; the last ``round(n * predict_fraction)`` of it (K = 1 / predict_fraction) are the
targets, the others context.  ``perm_mask[i, j] = 1`` (i may not see j) when j is a target not
before i in the order (context tokens see every context token, HF's rank -1);
``target_mapping`` [P, T] is one-hot on the targets (in text order) and ``labels`` [P] their ids.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..kinds.base import KINDS
from .data import Corpus
from .loss import IGNORE
from .tokenizer import Tokenizer


@dataclass
class Example:
    ids: list[int]
    starts: list[bool] | None = None
    types: list[int] | None = None
    sentence_label: int | None = None
    sentences: list[tuple[int, int]] | None = None
    """(start, end) token offsets of each sentence in `ids` (the ``sentences`` layout)."""
    token_labels: list[int] | None = None
    """Per token, its class or -100 (the ``tokens`` layout)."""


class TrainObjective:
    """What an objective kind's ``train`` facet returns."""

    kind: str
    layout: str

    def check(self, spec: Any) -> None:
        """Raise `InputError` when `spec` cannot be trained on this objective."""

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        """Set this objective's inputs and labels in `fields` (one example's tensors)."""


def _a(family: str) -> str:
    return ("an " if family[0] in "ae" else "a ") + family


def _check(kind: str, obj: Any, spec: Any) -> None:
    why = KINDS[f"objective/{kind}"].contradiction(obj, spec)  # type: ignore[attr-defined]
    if why:
        raise InputError(why)


class CLMObjective(TrainObjective):
    kind, layout = "clm", "causal"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("clm", self.obj, spec)
        if spec.family == "encoder-decoder":
            self.layout = "continuation"

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        if self.layout == "continuation":  # the encoder reads the first half, the decoder predicts the rest
            ids = fields["input_ids"]
            half = len(ids) // 2
            fields["input_ids"], fields["labels"] = ids[:half], ids[half:]
            fields["decoder_input_ids"] = torch.cat([torch.tensor([c.tok.id("pad")]), ids[half:-1]])
            return
        fields["labels"] = fields["input_ids"].clone()  # the model shifts


class MLMObjective(TrainObjective):
    kind, layout = "mlm", "bidirectional"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("mlm", self.obj, spec)

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        o = self.obj
        ids = fields["input_ids"]
        special = torch.isin(ids, c.special)
        n = ids.numel()
        if o.unit != "token" and ex.starts is not None:  # whole words, or ERNIE's phrases / entities
            word = torch.cumsum(torch.tensor(ex.starts, dtype=torch.long), 0) - 1
            sel = torch.rand(int(word[-1]) + 1, generator=gen)[word] < o.rate
        else:
            sel = torch.rand(n, generator=gen) < o.rate
        sel &= ~special
        r = torch.rand(n, generator=gen)
        to_mask = sel & (r < o.mask)
        to_random = sel & (r >= o.mask) & (r < o.mask + o.random)
        fields["labels"] = torch.where(sel, ids, torch.full_like(ids, IGNORE))
        ids = ids.clone()
        ids[to_mask] = c.tok.id("mask")
        pick = torch.randint(0, len(c.ordinary), (n,), generator=gen)
        ids[to_random] = c.ordinary[pick][to_random]
        fields["input_ids"] = ids


class SentencePairObjective(TrainObjective):
    layout = "pairs"

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.kind = obj.kind

    def check(self, spec: Any) -> None:
        if not any(h.kind == self.kind for h in spec.heads):  # the validator says so first; kept for Python specs
            raise InputError(f"objective {self.kind!r} needs a head of kind {self.kind!r}")
        _check(self.kind, self.obj, spec)

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        name = "next_sentence_label" if self.kind == "nsp" else "sentence_order_label"
        fields[name] = torch.tensor(ex.sentence_label)


def random_spans_noise_mask(length: int, noise_density: float, mean_noise_span_length: float,
                            gen: torch.Generator) -> Tensor:
    """T5's ``random_spans_noise_mask`` (google-research/text-to-text-transfer-transformer,
    ``preprocessors.py``; HF ``run_t5_mlm_flax.py``): a [length] bool mask, True = noise."""
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    num_nonnoise = length - num_noise

    def segmentation(items: int, segments: int) -> Tensor:
        first = torch.zeros(items, dtype=torch.long)
        first[1 + torch.randperm(items - 1, generator=gen)[:segments - 1]] = 1  # segment starts, 0 always one
        return torch.bincount(torch.cumsum(first, 0))

    noise_lengths = segmentation(num_noise, num_spans)
    nonnoise_lengths = segmentation(num_nonnoise, num_spans)
    interleaved = torch.stack([nonnoise_lengths, noise_lengths], 1).reshape(-1)
    starts = torch.cumsum(interleaved, 0)[:-1]
    indicator = torch.zeros(length, dtype=torch.long)
    indicator[starts] = 1
    return torch.cumsum(indicator, 0) % 2 == 1


class SpanCorruptionObjective(TrainObjective):
    kind, layout = "span_corruption", "spans"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("span_corruption", self.obj, spec)

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        o = self.obj
        ids = fields["input_ids"]
        noise = random_spans_noise_mask(len(ids), o.rate, o.mean_span, gen)
        sentinels = c.tok.sentinels
        eos, pad = c.tok.id("eos"), c.tok.id("pad")
        inputs, labels = [], []
        span = -1
        for i, (t, is_noise) in enumerate(zip(ids.tolist(), noise.tolist(), strict=True)):
            if is_noise:
                if i == 0 or not noise[i - 1]:
                    span += 1
                    if span >= len(sentinels):
                        raise InputError(f"span corruption needs more than the tokenizer's {len(sentinels)} "
                                         "sentinels for one sequence; shorten --seq-len or add sentinels")
                    inputs.append(sentinels[span])
                    labels.append(sentinels[span])
                labels.append(t)
            else:
                inputs.append(t)
        inputs.append(eos)
        labels.append(eos)
        fields["input_ids"] = torch.tensor(inputs)
        fields["labels"] = torch.tensor(labels)
        fields["decoder_input_ids"] = torch.tensor([pad] + labels[:-1])


class DenoisingObjective(TrainObjective):
    kind, layout = "denoising", "sentences"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("denoising", self.obj, spec)

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        o = self.obj
        sentences = ex.sentences or [(0, len(ex.ids))]
        order = torch.randperm(len(sentences), generator=gen).tolist() if o.permute_sentences else \
            list(range(len(sentences)))
        ids: list[int] = []
        starts: list[bool] = []
        for k in order:
            a, b = sentences[k]
            ids += ex.ids[a:b]
            starts += [True] + (ex.starts or [True] * len(ex.ids))[a + 1:b]
        if o.deletion > 0:
            ids, starts = token_deletion(ids, starts, o.deletion, gen)
        corrupted = text_infilling(ids, starts, o.rate, o.poisson_lambda, c.tok.id("mask"), gen) if o.rate > 0 \
            else list(ids)
        if o.rotate > 0:
            corrupted = document_rotation(corrupted, o.rotate, gen)
        bos, eos, pad = c.tok.id("bos"), c.tok.id("eos"), c.tok.id("pad")
        limit = (c.seq_len or len(corrupted) + 2) - 2
        labels = [bos] + ex.ids + [eos]
        fields["input_ids"] = torch.tensor([bos] + corrupted[:limit] + [eos])
        fields["labels"] = torch.tensor(labels)
        fields["decoder_input_ids"] = torch.tensor([pad] + labels[:-1])


def token_deletion(ids: list[int], starts: list[bool], rate: float,
                   gen: torch.Generator) -> tuple[list[int], list[bool]]:
    """BART's token deletion: ``ceil(rate * n)`` of the `n` tokens, chosen uniformly without replacement,
    deleted (the others keep their order); `starts` follows (a kept piece whose word lost its first piece
    starts the word)."""
    n = len(ids)
    k = min(n, math.ceil(rate * n))
    gone = set(torch.randperm(n, generator=gen)[:k].tolist())
    word = torch.cumsum(torch.tensor(starts, dtype=torch.long), 0).tolist() if n else []
    out, st, prev = [], [], None
    for i in range(n):
        if i in gone:
            continue
        out.append(ids[i])
        st.append(word[i] != prev)
        prev = word[i]
    return out, st


def document_rotation(ids: list[int], rate: float, gen: torch.Generator) -> list[int]:
    """BART's document rotation: with probability `rate`, a token is chosen uniformly at random and the
    sequence rotated to begin with it (the chosen token may be the first: no change)."""
    if len(ids) < 2 or float(torch.rand((), generator=gen)) >= rate:
        return ids
    k = int(torch.randint(0, len(ids), (), generator=gen))
    return ids[k:] + ids[:k]


def poisson_span_lengths(target: int, lam: float, gen: torch.Generator) -> list[int]:
    """Poisson(`lam`) span lengths until they cover `target` units, the last one cut (0 = an insertion)."""
    lengths: list[int] = []
    total = 0
    while total < target:
        draw = torch.poisson(torch.full((max(4, int((target - total) / max(lam, 0.5)) + 4),), float(lam)),
                             generator=gen).long().tolist()
        for n in draw:
            n = min(n, target - total)
            lengths.append(n)
            total += n
            if total >= target:
                break
    return lengths


def text_infilling(ids: list[int], starts: list[bool], rate: float, lam: float, mask_id: int,
                   gen: torch.Generator) -> list[int]:
    """BART's text infilling over whole words: ``ceil(rate * words)`` words in Poisson(`lam`) spans,
    placed without overlap in a random order of gaps; each span -> one `mask_id` (see the module docstring)."""
    word = [0] * len(ids)
    w = -1
    for i, st in enumerate(starts):
        w += bool(st) or i == 0
        word[i] = w
    n_words = w + 1
    if n_words == 0:
        return list(ids)
    target = min(n_words, math.ceil(rate * n_words))
    lengths = poisson_span_lengths(target, lam, gen) if target else []
    lengths = [lengths[i] for i in torch.randperm(len(lengths), generator=gen).tolist()]
    free = n_words - target
    places = sorted(torch.randint(0, free + 1, (len(lengths),), generator=gen).tolist())
    masked = [False] * n_words
    head = [0] * (n_words + 1)  # masks emitted before word w (span starts and insertions)
    offset = 0
    for place, n in zip(places, lengths, strict=True):
        at = offset + place
        head[at] += 1
        for k in range(at, at + n):
            masked[k] = True
        offset += n
    out: list[int] = []
    prev = -1
    for i, t in enumerate(ids):
        if word[i] != prev:
            out += [mask_id] * head[word[i]]
            prev = word[i]
        if not masked[word[i]]:
            out.append(t)
    return out + [mask_id] * head[n_words]


class BlankInfillingObjective(TrainObjective):
    kind, layout = "blank_infilling", "glm"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("blank_infilling", self.obj, spec)
        self.two_d = spec.position.kind == "glm_2d"

    def block(self, seq_len: int) -> int:
        """The longest text whose Part A + Part B fit `seq_len` tokens."""
        n = seq_len
        while n > 2 and n + 2 * max(1, round(self.obj.rate * n)) > seq_len:
            n -= 1
        return n

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        from ..objectives.blank_infilling import blank_infilling, sample_spans

        o = self.obj
        spans = sample_spans(len(ex.ids), o.rate, o.poisson_lambda, generator=gen)
        b = blank_infilling([ex.ids], [spans], mask_id=c.tok.id("mask"), sop_id=c.tok.id("sop"),
                            eop_id=c.tok.id("eop"), pad_id=c.tok.id("pad"), generator=gen)
        fields["input_ids"], fields["labels"] = b.input_ids[0], b.labels[0]
        fields["position_ids"] = b.position_ids[0] if self.two_d else b.position_ids[0, 0]
        fields["prefix_lengths"] = b.prefix_lengths[0]


class PermutationObjective(TrainObjective):
    kind, layout = "permutation", "permutation"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("permutation", self.obj, spec)

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        ids = fields["input_ids"]
        T = len(ids)
        ordinary = (~torch.isin(ids, c.special)).nonzero()[:, 0]
        n = len(ordinary)
        P = min(n, max(1, round(n * self.obj.predict_fraction)))
        order = ordinary[torch.randperm(n, generator=gen)]  # a factorisation order of the ordinary tokens
        targets = order[n - P:]  # its last P tokens
        rank = torch.full((T,), -1, dtype=torch.long)
        rank[targets] = torch.arange(P)
        is_target = rank >= 0
        fields["perm_mask"] = ((rank[:, None] <= rank[None, :]) & is_target[None, :]).float()
        where = targets.sort().values
        mapping = torch.zeros(P, T)
        mapping[torch.arange(P), where] = 1.0
        fields["target_mapping"] = mapping
        fields["labels"] = ids[where]


class ClassificationObjective(TrainObjective):
    kind, layout = "classification", "classify"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        _check("classification", self.obj, spec)
        if spec.heads[0].kind == "token_classification":
            if spec.family == "encoder-decoder":
                raise InputError("token classification trains an encoder or a decoder; "
                                 f"{spec.name} is an encoder-decoder")
            self.layout = "tokens"
        if spec.heads[0].kind == "image_classification":
            self.layout = "images"

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        if ex.token_labels is not None:
            fields["labels"] = torch.tensor(ex.token_labels, dtype=torch.long)
            return
        fields["labels"] = torch.tensor(ex.sentence_label)


def plan(spec: Any) -> list[TrainObjective]:
    """The spec's objectives as trainable objectives; a clear error for any it cannot train."""
    if not spec.objectives:
        raise InputError(f"{spec.name} declares no objectives; add one to the spec, e.g. "
                         "objectives: [{kind: clm}] for a decoder or [{kind: mlm}] for an encoder")
    out = []
    for obj in spec.objectives:
        k = KINDS[f"objective/{obj.kind}"]
        facet = getattr(k, "train", None)
        if facet is None:
            raise k.missing("train")
        t = facet(obj, spec)
        t.check(spec)
        out.append(t)
    layouts = {t.layout for t in out}
    if "pairs" in layouts and layouts - {"pairs", "bidirectional"}:
        raise InputError(f"objectives {', '.join(t.kind for t in out)} cannot be trained together")
    if len(layouts - {"pairs"}) > 1:
        raise InputError(f"objectives {', '.join(t.kind for t in out)} need different inputs; train one at a time")
    return out


class Collator:
    """Examples from a corpus, and batches from examples, for a spec's objectives."""

    def __init__(self, spec: Any, tok: Tokenizer, seed: int = 0) -> None:
        self.spec, self.tok, self.seed = spec, tok, seed
        self.objectives = plan(spec)
        layouts = {t.layout for t in self.objectives}
        self.layout = "pairs" if "pairs" in layouts else layouts.pop()
        if self.layout == "images":
            raise InputError(f"{spec.name} reads images: train it with --data digits (scikit-learn's digits)")
        if self.layout in ("bidirectional", "pairs") or (self.layout == "tokens" and spec.family == "encoder"):
            for role in ("cls", "sep", "mask" if any(t.kind == "mlm" for t in self.objectives) else "cls"):
                tok.id(role)
        need = {"spans": ["eos"], "glm": ["mask", "sop", "eop"], "sentences": ["bos", "eos", "mask"],
                "continuation": ["eos"], "causal": ["eos"], "permutation": ["eos"]}.get(self.layout, [])
        for role in need:
            tok.id(role)
        if self.layout == "spans" and not tok.sentinels:
            raise InputError("span corruption needs sentinel tokens <extra_id_0>, ...; the tokenizer has none")
        self.pad_id = tok.id("pad")
        self.special = torch.tensor(sorted(tok.special_ids | {self.pad_id}), dtype=torch.long)
        self.ordinary = torch.tensor([i for i in range(tok.vocab_size) if i not in tok.special_ids])
        self.dynamic = any(getattr(t.obj, "dynamic", True) for t in self.objectives
                           if t.kind not in ("clm", "nsp", "sop", "classification"))
        self.segments = spec.embeddings.segments
        self.recurrent = self.layout == "causal" and any(s.block.attention.kind == "segment_memory"
                                                         for s in spec.stacks.values())
        """Transformer-XL: consecutive segments, memory carried by the trainer (module docstring)."""
        mlm = next((t.obj for t in self.objectives if t.kind == "mlm"), None)
        self.unit = mlm.unit if mlm is not None else "token"
        self.seq_len: int | None = None
        self.label_ids: dict[int | str, int] | None = None

    # ---------------------------------------------------------------- examples

    def encode(self, text: str, spans: list[tuple[int, int]] | None = None) -> tuple[list[int], list[bool]]:
        """Token ids of `text` and, per token, whether it starts a masking unit: a word, or for ERNIE's
        ``unit: phrase / entity`` a phrase or entity (`spans`, or `heuristic_spans`) or a word outside one."""
        if self.unit not in ("phrase", "entity"):
            return self.tok.encode_words(text)
        enc = self.tok.hf.encode(text, add_special_tokens=False)
        words = enc.word_ids
        starts = [i == 0 or w is None or w != words[i - 1] for i, w in enumerate(words)]
        for a, b in (spans if spans else heuristic_spans(text, self.unit)):
            inside = [i for i, (x, y) in enumerate(enc.offsets) if y > x and x >= a and y <= b]
            for i in inside[1:]:
                starts[i] = False
            if inside:
                starts[inside[0]] = True
        return enc.ids, starts

    def _doc(self, corpus: Corpus, d: int) -> tuple[list[int], list[bool]]:
        doc = corpus.docs[d]
        if self.unit not in ("phrase", "entity"):
            return self.tok.encode_words("\n".join(doc))
        spans: list[tuple[int, int]] = []
        at = 0
        for k, sentence in enumerate(doc):
            given = corpus.spans[d][k] if corpus.spans is not None else None
            spans += [(at + x, at + y) for x, y in (given if given else heuristic_spans(sentence, self.unit))]
            at += len(sentence) + 1
        return self.encode("\n".join(doc), spans or [(0, 0)])

    def _sentence(self, corpus: Corpus, d: int, k: int) -> tuple[list[int], list[bool]]:
        given = corpus.spans[d][k] if corpus.spans is not None else None
        return self.encode(corpus.docs[d][k], given or None)

    def stream(self, corpus: Corpus) -> tuple[list[int], list[bool]]:
        """The token stream of `corpus` (each document followed by eos, or [SEP] for the bidirectional layout)
        and, per token, whether it starts a masking unit: what the stream layouts cut into blocks."""
        stream: list[int] = []
        starts: list[bool] = []
        end = self.tok.id("sep") if self.layout == "bidirectional" else self.tok.id("eos")
        for d in range(len(corpus.docs)):
            ids, st = self._doc(corpus, d)
            stream += ids + [end]
            starts += st + [True]
        return stream, starts

    def examples(self, corpus: Corpus, seq_len: int) -> list[Example]:
        """Tokenize `corpus` and lay it out (see the module docstring); seeded by `seed`."""
        if seq_len < 8:
            raise InputError(f"--seq-len must be at least 8, got {seq_len}")
        self.seq_len = seq_len
        if self.layout == "pairs":
            exs = self._pairs(corpus, seq_len)
        elif self.layout == "sentences":
            exs = self._sentences(corpus, seq_len)
        elif self.layout == "classify":
            exs = self._classify(corpus, seq_len)
        elif self.layout == "tokens":
            exs = self._tag(corpus, seq_len)
        else:
            stream, starts = self.stream(corpus)
            glm = next((t for t in self.objectives if t.kind == "blank_infilling"), None)
            block = {"causal": seq_len, "bidirectional": seq_len - 2, "spans": seq_len - 1, "continuation": seq_len,
                     "permutation": seq_len}.get(self.layout) or glm.block(seq_len)  # type: ignore[union-attr]
            n = len(stream) // block
            if n == 0:
                raise InputError(f"the corpus has {len(stream):,} tokens, shorter than one sequence of {block} "
                                 "(pass a smaller --seq-len or more text)")
            exs = []
            for i in range(n):
                ids, st = stream[i * block:(i + 1) * block], starts[i * block:(i + 1) * block]
                if self.layout == "bidirectional":
                    ids = [self.tok.id("cls")] + ids + [self.tok.id("sep")]
                    st = [True] + st + [True]
                exs.append(Example(ids, st))
        if not exs:
            raise InputError("the corpus yields no training examples (documents too short for sentence pairs)")
        return exs

    def stream_examples(self, texts: Any, seq_len: int, path: Any, allow_empty: bool = False) -> Any:
        """Like `examples`, for corpora larger than memory: tokenize `texts` (an iterable of documents,
        `data.iter_texts`) once into the token file `path` and return its blocks (`data.TokenBlocks`)."""
        from .data import SentenceIndex, TokenFile

        if self.layout not in ("causal", "bidirectional", "spans", "continuation", "permutation", "glm",
                               "pairs") or self.unit != "token":
            what = f"unit {self.unit!r}" if self.unit != "token" else f"the {self.layout!r} layout"
            raise InputError(f"a memory-mapped corpus holds token ids (and, for sentence pairs, sentence and "
                             f"document boundaries) only, and {what} of {', '.join(t.kind for t in self.objectives)} "
                             "needs word boundaries, labels or sentences of its own; train it without --memmap")
        if self.layout == "pairs":  # the sentences' ids, no separator, and their boundaries beside them
            SentenceIndex.write(path, ([self.tok.encode(x) for x in t.split("\n")] for t in texts),
                                self.tok.vocab_size)
            return self.open_stream(path, seq_len, allow_empty)
        end = self.tok.id("sep") if self.layout == "bidirectional" else self.tok.id("eos")
        TokenFile.write(path, (self.tok.encode(t) + [end] for t in texts), self.tok.vocab_size)
        return self.open_stream(path, seq_len, allow_empty)

    def open_stream(self, path: Any, seq_len: int, allow_empty: bool = False) -> Any:
        """The blocks of a token file `stream_examples` wrote."""
        from .data import TokenBlocks, TokenFile

        if seq_len < 8:
            raise InputError(f"--seq-len must be at least 8, got {seq_len}")
        self.seq_len = seq_len
        if self.layout == "pairs":
            return self._open_pairs(path, seq_len, allow_empty)
        glm = next((t for t in self.objectives if t.kind == "blank_infilling"), None)
        block = {"causal": seq_len, "bidirectional": seq_len - 2, "spans": seq_len - 1, "continuation": seq_len,
                 "permutation": seq_len}.get(self.layout) or glm.block(seq_len)  # type: ignore[union-attr]
        if self.layout == "bidirectional":
            cls, sep = self.tok.id("cls"), self.tok.id("sep")

            def wrap(ids: list[int]) -> Example:
                return Example([cls] + ids + [sep])
        else:
            def wrap(ids: list[int]) -> Example:
                return Example(ids)
        blocks = TokenBlocks(TokenFile(path), block, wrap)
        if len(blocks) == 0 and not allow_empty:
            raise InputError(f"the corpus has {len(blocks.tokens):,} tokens, shorter than one sequence of {block} "
                             "(pass a smaller --seq-len or more text)")
        return blocks

    def _open_pairs(self, path: Any, seq_len: int, allow_empty: bool) -> Any:
        """The sentence pairs of a memory-mapped corpus: planned from its sentence index (lengths only), each
        read from the token file on demand (`PairBlocks`)."""
        from .data import SentenceIndex, TokenFile

        tokens, index = TokenFile(path), SentenceIndex(path)

        def length(d: int, k: int) -> int:
            a, b = index.span(d, k)
            return b - a

        plans = self.pair_plans(index.n_docs, index.sentences, length, seq_len)
        if not plans and not allow_empty:
            raise InputError("the corpus yields no training examples (documents too short for sentence pairs)")
        return PairBlocks(self, tokens, index, plans, seq_len)

    def _sentences(self, corpus: Corpus, seq_len: int) -> list[Example]:
        budget = seq_len - 2
        out: list[Example] = []
        for d, doc in enumerate(corpus.docs):
            ids: list[int] = []
            starts: list[bool] = []
            bounds: list[tuple[int, int]] = []
            for k in range(len(doc)):
                s_ids, s_st = self._sentence(corpus, d, k)
                while s_ids:
                    room = budget - len(ids)
                    if room <= 0 or (len(s_ids) > room and ids):
                        out.append(Example(ids, starts, sentences=bounds))
                        ids, starts, bounds = [], [], []
                        continue
                    piece = s_ids[:room]
                    bounds.append((len(ids), len(ids) + len(piece)))
                    ids += piece
                    starts += [True] + s_st[1:len(piece)]
                    s_ids, s_st = s_ids[len(piece):], s_st[len(piece):]
            if ids:
                out.append(Example(ids, starts, sentences=bounds))
        return out

    def restore_labels(self, meta: dict[str, Any]) -> None:
        """Take the class ids a run recorded (``train.json`` ``label_ids``), so resume and eval on other data
        map each label to the class it trained."""
        if meta.get("label_ids"):
            self.label_ids = {k: v for k, v in meta["label_ids"]}

    def _label_map(self, found: Any) -> None:
        """`label_ids` from the labels `found` in the corpus (once): integers as they are, strings in sorted
        order; a label past the head's classes is an error."""
        labels = self.spec.heads[0].labels
        if self.label_ids is None:
            values = sorted(set(found), key=lambda v: (isinstance(v, str), v))
            if all(isinstance(v, int) for v in values):
                self.label_ids = {v: v for v in values}
                bad = [v for v in values if not 0 <= v < labels]
                if bad:
                    raise InputError(f"label {bad[0]} is outside the head's {labels} classes (0..{labels - 1}); "
                                     f"pass -O heads.0.labels=N or relabel")
            elif all(isinstance(v, str) for v in values):
                self.label_ids = {v: i for i, v in enumerate(values)}
                if len(values) > labels:
                    raise InputError(f"the corpus has {len(values)} labels ({', '.join(map(str, values[:5]))}...), "
                                     f"the head {labels} classes; pass -O heads.0.labels={len(values)}")
            else:
                raise InputError("labels must be all integers or all strings")

    def _tag(self, corpus: Corpus, seq_len: int) -> list[Example]:
        """Token classification: one example per sentence of words (module docstring)."""
        if corpus.word_labels is None or corpus.words is None:
            raise InputError(f"a token_classification head trains on a label per word: a .jsonl corpus with "
                             f"`tokens` (a list of words) and `labels` (one per word) on each line, or --data "
                             f"pydoc-tags; {corpus.name} has none")
        self._label_map(t for d in corpus.word_labels for sent in d for t in sent)
        assert self.label_ids is not None
        encoder = self.spec.family == "encoder"
        room = seq_len - 2 if encoder else seq_len
        out = []
        for d, doc in enumerate(corpus.words):
            for k, words in enumerate(doc):
                tags = corpus.word_labels[d][k]
                for t in tags:
                    if t not in self.label_ids:
                        raise InputError(f"label {t!r} was not among the training labels")
                text = " ".join(words)
                ends = []  # each word's end offset in `text`
                at = 0
                for w in words:
                    at += len(w)
                    ends.append(at)
                    at += 1
                enc = self.tok.hf.encode(text, add_special_tokens=False)
                ids, labels, prev = [], [], -1
                for tid, (x, y) in zip(enc.ids, enc.offsets, strict=True):
                    if y <= x:  # a piece of no text (an added token): belongs to no word
                        ids.append(tid)
                        labels.append(IGNORE)
                        continue
                    w = _bisect(ends, y - 1)  # the word holding the piece's last character
                    ids.append(tid)
                    labels.append(self.label_ids[tags[w]] if w != prev else IGNORE)
                    prev = w
                ids, labels = ids[:room], labels[:room]
                if encoder:
                    ids = [self.tok.id("cls")] + ids + [self.tok.id("sep")]
                    labels = [IGNORE] + labels + [IGNORE]
                if any(lab != IGNORE for lab in labels):
                    out.append(Example(ids, token_labels=labels))
        return out

    def _classify(self, corpus: Corpus, seq_len: int) -> list[Example]:
        if corpus.labels is None:
            raise InputError(f"objective 'classification' needs labelled text: a .jsonl corpus with a `label` per "
                             f"line; {corpus.name} has none")
        self._label_map(corpus.labels)
        assert self.label_ids is not None
        encoder = self.spec.family == "encoder"
        out = []
        for d, label in enumerate(corpus.labels):
            if label not in self.label_ids:
                raise InputError(f"label {label!r} was not among the training labels")
            ids, starts = self.tok.encode_words("\n".join(corpus.docs[d]))
            if encoder:
                ids = [self.tok.id("cls")] + ids[:seq_len - 2] + [self.tok.id("sep")]
            else:
                ids = ids[:seq_len - 1] + [self.tok.id("eos")]
            out.append(Example(ids, None, sentence_label=self.label_ids[label]))
        return out

    def _pairs(self, corpus: Corpus, seq_len: int) -> list[Example]:
        docs = [[self._sentence(corpus, d, k) for k in range(len(doc))] for d, doc in enumerate(corpus.docs)]
        plans = self.pair_plans(len(docs), lambda d: len(docs[d]), lambda d, k: len(docs[d][k][0]), seq_len)
        return [self.pair_example(p, lambda d, k: (list(docs[d][k][0]), list(docs[d][k][1])),
                                  lambda d: len(docs[d]), seq_len) for p in plans]

    def pair_plans(self, n_docs: int, n_sentences: Any, length: Any, seq_len: int) -> list[tuple[int, ...]]:
        """The sentence pairs of a corpus from its sentence lengths alone (BERT's
        ``create_instances_from_document``, seeded by `seed`): per pair ``(doc, first sentence, sentences,
        cut, a_end, label, other doc, other start)`` (cut / other -1 when unused).  `n_sentences(d)` and
        `length(d, k)` give the corpus's shape, so a memory-mapped corpus is planned without its tokens."""
        rng = random.Random(self.seed)
        nsp = any(t.kind == "nsp" for t in self.objectives)
        budget = seq_len - 3
        out: list[tuple[int, ...]] = []
        for di in range(n_docs):
            n_di = n_sentences(di)
            i = 0
            while i < n_di:
                first, count, size = i, 0, 0
                lens: list[int] = []
                while i < n_di and (size < budget or not count):
                    lens.append(length(di, i))
                    size += lens[-1]
                    count += 1
                    i += 1
                cut = -1
                if count == 1:  # one sentence: split its tokens
                    if lens[0] < 2:
                        continue
                    cut = rng.randint(1, lens[0] - 1)
                    lens = [cut, lens[0] - cut]
                a_end = rng.randint(1, len(lens) - 1)
                la, lb = sum(lens[:a_end]), sum(lens[a_end:])
                label, other, start = 0, -1, -1
                if nsp and n_docs > 1 and rng.random() < 0.5:
                    other = rng.randrange(n_docs - 1)  # as rng.choice of the other documents
                    other += other >= di
                    n_other = n_sentences(other)
                    start = rng.randrange(n_other)
                    lb = sum(length(other, k) for k in range(start, min(n_other, start + len(lens) - a_end)))
                    label = 1
                elif not nsp and rng.random() < 0.5:
                    la, lb, label = lb, la, 1
                while la + lb > budget:  # truncate the longer side from its end
                    if la >= lb:
                        la -= 1
                    else:
                        lb -= 1
                if la and lb:
                    out.append((di, first, count, cut, a_end, label, other, start))
        return out

    def pair_example(self, plan: Any, get: Any, n_sentences: Any, seq_len: int) -> Example:
        """The `Example` of one `pair_plans` plan; `get(d, k)` gives sentence k of document d as fresh
        (ids, starts) lists, `n_sentences(d)` the sentences of document d."""
        di, first, count, cut, a_end, label, other, start = (int(x) for x in plan)
        chunk = [get(di, k) for k in range(first, first + count)]
        if cut >= 0:
            ids, st = chunk[0]
            chunk = [(ids[:cut], st[:cut]), (ids[cut:], [True] + st[cut + 1:])]
        a, b = _join(chunk[:a_end]), _join(chunk[a_end:])
        if other >= 0:
            b = _join([get(other, k) for k in range(start, min(n_sentences(other), start + len(chunk) - a_end))])
        elif label:
            a, b = b, a
        budget = seq_len - 3
        while len(a[0]) + len(b[0]) > budget:  # truncate the longer side from its end
            longer = a if len(a[0]) >= len(b[0]) else b
            longer[0].pop()
            longer[1].pop()
        cls, sep = self.tok.id("cls"), self.tok.id("sep")
        ids = [cls] + a[0] + [sep] + b[0] + [sep]
        starts = [True] + a[1] + [True] + b[1] + [True]
        types = [0] * (len(a[0]) + 2) + [1] * (len(b[0]) + 1)
        return Example(ids, starts, types, label)

    # ---------------------------------------------------------------- batches

    def generator(self, index: int, epoch: int) -> torch.Generator:
        """The generator of example `index` in `epoch` (static masking: the same every epoch)."""
        return torch.Generator().manual_seed(hash((self.seed, epoch if self.dynamic else 0, index)) & (2**62 - 1))

    def __call__(self, examples: list[Example], indices: list[int], epoch: int = 0) -> dict[str, Tensor]:
        """One batch: model keyword arguments, labels included, right-padded."""
        rows = []
        for ex, idx in zip(examples, indices, strict=True):
            gen = self.generator(idx, epoch)
            fields: dict[str, Any] = {"input_ids": torch.tensor(ex.ids, dtype=torch.long)}
            if ex.types is not None and self.segments:
                fields["token_type_ids"] = torch.tensor(ex.types, dtype=torch.long)
            for t in self.objectives:
                t.apply(fields, ex, gen, self)
            rows.append(fields)
        pad = self.pad_id
        batch: dict[str, Tensor] = {}
        for key in rows[0]:
            vals = [r[key] for r in rows]
            if vals[0].dim() == 0:
                batch[key] = torch.stack(vals)
                continue
            fill = IGNORE if key == "labels" else (pad if key.endswith("input_ids") else 0)
            batch[key] = _pad(vals, fill)
            if key == "input_ids":
                batch["attention_mask"] = _pad([torch.ones(v.shape[-1], dtype=torch.long) for v in vals], 0)
            if key == "decoder_input_ids":
                batch["decoder_attention_mask"] = _pad([torch.ones_like(v) for v in vals], 0)
        return batch


_WORD = re.compile(r"\w+(?:[._]\w+)*")
STOP_WORDS = frozenset(
    "a an and are as at be been but by can could do does for from has have if in into is it its may might more "
    "must no not of on or other such than that the their then there these they this those to was were when "
    "where which while who will with would you your".split())


def heuristic_spans(text: str, unit: str) -> list[tuple[int, int]]:
    """ERNIE's phrases or entities in `text` when the corpus gives none (character spans, module docstring).

    ``entity``: maximal runs of capitalised words (at a sentence start, without a first word that is a stop
    word or alone) and identifiers with a dot or underscore inside; ``phrase``: runs of two or more words
    with no punctuation or stop word between them (RAKE's candidate phrases)."""
    words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    if unit == "entity":
        run: list[int] = []

        def flush() -> None:
            first = words[run[0]][0] if run else 0
            if run and (first == 0 or text[:first].rstrip()[-1:] in ".!?:"):  # starts a sentence
                if len(run) == 1 or words[run[0]][2].lower() in STOP_WORDS:
                    run.pop(0)
            if run:
                spans.append((words[run[0]][0], words[run[-1]][1]))
            run.clear()

        for i, (a, b, w) in enumerate(words):
            joined = run and text[words[run[-1]][1]:a].strip() == ""
            if w[0].isupper() and (not run or joined):
                run.append(i)
                continue
            flush()
            if w[0].isupper():
                run.append(i)
            elif ("." in w or "_" in w) and len(w) > 2:
                spans.append((a, b))
        flush()
        return sorted(spans)
    run = []
    for i, (a, _, w) in enumerate(words):
        gap = text[words[i - 1][1]:a] if i else ""
        if w.lower() in STOP_WORDS or (run and gap.strip() != ""):
            if len(run) > 1:
                spans.append((words[run[0]][0], words[run[-1]][1]))
            run = [] if w.lower() in STOP_WORDS else [i]
            continue
        run.append(i)
    if len(run) > 1:
        spans.append((words[run[0]][0], words[run[-1]][1]))
    return spans


class PairBlocks:
    """Sentence-pair examples of a memory-mapped corpus, read on demand: `Collator.pair_plans` made from the
    sentence index, each turned into an `Example` with the tokens of its sentences (`Collator.pair_example`).
    Word starts are not stored (every token starts one): memory-mapped corpora train ``unit: token``."""

    def __init__(self, collator: Collator, tokens: Any, index: Any, plans: list[tuple[int, ...]],
                 seq_len: int) -> None:
        import numpy as np

        self.collator, self.tokens, self.index, self.seq_len = collator, tokens, index, seq_len
        self.plans = np.asarray(plans, dtype=np.int64).reshape(-1, 8)  # 64 bytes a pair, not Python tuples

    def __len__(self) -> int:
        return len(self.plans)

    def _get(self, d: int, k: int) -> tuple[list[int], list[bool]]:
        a, b = self.index.span(d, k)
        return self.tokens[a:b], [True] * (b - a)

    def __getitem__(self, i: int) -> Example:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self.collator.pair_example(self.plans[i], self._get, self.index.sentences, self.seq_len)


class ImageCollator:
    """Image classification batches: ``pixel_values`` [B, C, S, S] and ``labels`` [B] (ViT).

    The images are scikit-learn's bundled digits (1,797 8x8 grey images of the digits 0-9, offline),
    scaled from 0..16 to [-1, 1], resized (bilinear) to the spec's ``image_size`` and repeated over
    its ``channels``.  An example is an image index."""

    layout = "images"
    recurrent = False
    dynamic = False
    pad_id = 0

    def __init__(self, spec: Any, images: Tensor, labels: Tensor) -> None:
        self.spec, self.images, self.labels = spec, images, labels
        self.objectives = plan(spec)

    def __call__(self, examples: list[int], indices: list[int], epoch: int = 0) -> dict[str, Tensor]:
        idx = torch.tensor(list(examples), dtype=torch.long)
        return {"pixel_values": self.images[idx], "labels": self.labels[idx]}


def image_data(spec: Any, data: str, held_out: float, seed: int) -> tuple[ImageCollator, list[int], list[int]]:
    """(collator, training image indices, held-out indices) of image data `data` (only ``digits``)."""
    if data != "digits":
        raise InputError(f"{spec.name} reads images; the image data set plmgraph knows is `digits` "
                         f"(scikit-learn's, offline): pass --data digits, not {data!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("--data digits needs scikit-learn (pip install scikit-learn)") from None
    p = spec.embeddings.patches
    classes = spec.heads[0].labels
    if classes < 10:
        raise InputError(f"the digits have 10 classes, {spec.name}'s head {classes}; pass -O heads.0.labels=10")
    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    if p.image_size != 8:
        images = torch.nn.functional.interpolate(images, size=(p.image_size, p.image_size), mode="bilinear",
                                                 align_corners=False)
    images = images.expand(-1, p.channels, -1, -1).contiguous()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = max(1, round(held_out * len(y))) if held_out > 0 else 0
    return ImageCollator(spec, images, torch.tensor(y, dtype=torch.long)), sorted(order[n_held:]), \
        sorted(order[:n_held])


def _join(sentences: list[tuple[list[int], list[bool]]]) -> tuple[list[int], list[bool]]:
    ids: list[int] = []
    starts: list[bool] = []
    for i, s in sentences:
        ids += i
        starts += s
    return ids, starts


def _bisect(ends: list[int], pos: int) -> int:
    """The index of the first word whose end offset is past character `pos`."""
    import bisect

    return min(bisect.bisect_right(ends, pos), len(ends) - 1)


def _pad(vals: list[Tensor], fill: int) -> Tensor:
    """Stack tensors of one rank, each dimension right-padded with `fill` to the longest."""
    shape = [max(v.shape[d] for v in vals) for d in range(vals[0].dim())]
    out = torch.full((len(vals), *shape), fill, dtype=vals[0].dtype)
    for i, v in enumerate(vals):
        out[(i, *(slice(0, n) for n in v.shape))] = v
    return out


def collator_for(spec: Any, tokenizer: Tokenizer, seed: int = 0) -> Collator:
    """The `Collator` of `spec`'s objectives (see the module docstring)."""
    return Collator(spec, tokenizer, seed)


__all__ = ["BlankInfillingObjective", "CLMObjective", "ClassificationObjective", "Collator", "DenoisingObjective",
           "Example", "ImageCollator", "MLMObjective", "PairBlocks", "PermutationObjective", "SentencePairObjective",
           "SpanCorruptionObjective", "TrainObjective", "collator_for", "heuristic_spans", "image_data", "plan",
           "document_rotation", "random_spans_noise_mask", "text_infilling", "token_deletion"]
