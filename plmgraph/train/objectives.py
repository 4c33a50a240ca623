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
======================  ==========================================================================

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
"""

from __future__ import annotations

import random
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


def _causal(spec: Any) -> bool:
    return all(s.block.attention.mask in ("causal", "sliding_window") for s in spec.stacks.values())


class CLMObjective(TrainObjective):
    kind, layout = "clm", "causal"

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def check(self, spec: Any) -> None:
        if spec.family != "decoder" or not _causal(spec):
            mask = ", ".join(sorted({s.block.attention.mask for s in spec.stacks.values()}))
            raise InputError(f"objective 'clm' predicts each next token: it needs a decoder with causal attention; "
                             f"{spec.name} is {_a(spec.family)} with {mask} attention")

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        fields["labels"] = fields["input_ids"].clone()  # the model shifts


class MLMObjective(TrainObjective):
    kind, layout = "mlm", "bidirectional"

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        if obj.unit in ("phrase", "entity"):
            from ..kinds.base import NotCompiledYet

            raise NotCompiledYet(f"block kind 'objective/mlm': unit {obj.unit!r} (ERNIE) is not compiled yet; "
                                 "use unit: token or whole_word")

    def check(self, spec: Any) -> None:
        if spec.family != "encoder":
            raise InputError(f"objective 'mlm' predicts masked tokens from both sides: it needs an encoder; "
                             f"{spec.name} is {_a(spec.family)}" + (" with causal attention" if _causal(spec) else ""))

    def apply(self, fields: dict[str, Any], ex: Example, gen: torch.Generator, c: Collator) -> None:
        o = self.obj
        ids = fields["input_ids"]
        special = torch.isin(ids, c.special)
        n = ids.numel()
        if o.unit == "whole_word" and ex.starts is not None:
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
        if spec.family != "encoder":
            raise InputError(f"objective {self.kind!r} classifies sentence pairs: it needs an encoder; "
                             f"{spec.name} is {_a(spec.family)}")

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
        if spec.family != "encoder-decoder":
            raise InputError(f"objective 'span_corruption' decodes the corrupted spans: it needs an encoder-decoder; "
                             f"{spec.name} is {_a(spec.family)}")

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


def plan(spec: Any) -> list[TrainObjective]:
    """The spec's objectives as trainable objectives; a clear error for any it cannot train."""
    if not spec.objectives:
        raise InputError(f"{spec.name} declares no objectives; add one to the spec, e.g. "
                         "objectives: [{kind: clm}] for a decoder or [{kind: mlm}] for an encoder")
    if spec.sizes.vocab is None:
        raise InputError(f"{spec.name} reads image patches, not text; training it on a text corpus is not supported")
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
        if self.layout in ("bidirectional", "pairs"):
            for role in ("cls", "sep", "mask" if any(t.kind == "mlm" for t in self.objectives) else "cls"):
                tok.id(role)
        if self.layout == "spans" and not tok.sentinels:
            raise InputError("span corruption needs sentinel tokens <extra_id_0>, ...; the tokenizer has none")
        self.special = torch.tensor(sorted(tok.special_ids | {tok.id("pad")}), dtype=torch.long)
        self.ordinary = torch.tensor([i for i in range(tok.vocab_size) if i not in tok.special_ids])
        self.dynamic = any(getattr(t.obj, "dynamic", True) for t in self.objectives if t.kind in
                           ("mlm", "span_corruption"))
        self.segments = spec.embeddings.segments

    # ---------------------------------------------------------------- examples

    def examples(self, corpus: Corpus, seq_len: int) -> list[Example]:
        """Tokenize `corpus` and lay it out (see the module docstring); seeded by `seed`."""
        if seq_len < 8:
            raise InputError(f"--seq-len must be at least 8, got {seq_len}")
        if self.layout == "pairs":
            exs = self._pairs(corpus, seq_len)
        else:
            stream: list[int] = []
            starts: list[bool] = []
            end = self.tok.id("eos") if self.layout in ("causal", "spans") else self.tok.id("sep")
            for text in corpus.texts:
                ids, st = self.tok.encode_words(text)
                stream += ids + [end]
                starts += st + [True]
            block = {"causal": seq_len, "bidirectional": seq_len - 2, "spans": seq_len - 1}[self.layout]
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

    def _pairs(self, corpus: Corpus, seq_len: int) -> list[Example]:
        rng = random.Random(self.seed)
        nsp = any(t.kind == "nsp" for t in self.objectives)
        docs = [[self.tok.encode_words(s) for s in d] for d in corpus.docs]
        budget = seq_len - 3
        cls, sep = self.tok.id("cls"), self.tok.id("sep")
        out: list[Example] = []
        for di, doc in enumerate(docs):
            i = 0
            while i < len(doc):
                chunk, size = [], 0
                while i < len(doc) and (size < budget or not chunk):
                    chunk.append(doc[i])
                    size += len(doc[i][0])
                    i += 1
                if len(chunk) == 1:  # one sentence: split its tokens
                    ids, st = chunk[0]
                    if len(ids) < 2:
                        continue
                    cut = rng.randint(1, len(ids) - 1)
                    chunk = [(ids[:cut], st[:cut]), (ids[cut:], [True] + st[cut + 1:])]
                a_end = rng.randint(1, len(chunk) - 1)
                a, b = _join(chunk[:a_end]), _join(chunk[a_end:])
                label = 0
                if nsp and len(docs) > 1 and rng.random() < 0.5:
                    other = rng.choice([j for j in range(len(docs)) if j != di])
                    start = rng.randrange(len(docs[other]))
                    b = _join(docs[other][start:start + len(chunk) - a_end])
                    label = 1
                elif not nsp and rng.random() < 0.5:
                    a, b, label = b, a, 1
                while len(a[0]) + len(b[0]) > budget:  # truncate the longer side from its end
                    longer = a if len(a[0]) >= len(b[0]) else b
                    longer[0].pop()
                    longer[1].pop()
                if not a[0] or not b[0]:
                    continue
                ids = [cls] + a[0] + [sep] + b[0] + [sep]
                starts = [True] + a[1] + [True] + b[1] + [True]
                types = [0] * (len(a[0]) + 2) + [1] * (len(b[0]) + 1)
                out.append(Example(ids, starts, types, label))
        return out

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
        pad = self.tok.id("pad")
        batch: dict[str, Tensor] = {}
        for key in rows[0]:
            vals = [r[key] for r in rows]
            if vals[0].dim() == 0:
                batch[key] = torch.stack(vals)
                continue
            fill = IGNORE if key == "labels" else (pad if key.endswith("input_ids") else 0)
            batch[key] = _pad(vals, fill)
            if key == "input_ids":
                batch["attention_mask"] = _pad([torch.ones_like(v) for v in vals], 0)
            if key == "decoder_input_ids":
                batch["decoder_attention_mask"] = _pad([torch.ones_like(v) for v in vals], 0)
        return batch


def _join(sentences: list[tuple[list[int], list[bool]]]) -> tuple[list[int], list[bool]]:
    ids: list[int] = []
    starts: list[bool] = []
    for i, s in sentences:
        ids += i
        starts += s
    return ids, starts


def _pad(vals: list[Tensor], fill: int) -> Tensor:
    T = max(v.numel() for v in vals)
    out = torch.full((len(vals), T), fill, dtype=torch.long)
    for i, v in enumerate(vals):
        out[i, :v.numel()] = v
    return out


def collator_for(spec: Any, tokenizer: Tokenizer, seed: int = 0) -> Collator:
    """The `Collator` of `spec`'s objectives (see the module docstring)."""
    return Collator(spec, tokenizer, seed)


__all__ = ["CLMObjective", "Collator", "Example", "MLMObjective", "SentencePairObjective", "SpanCorruptionObjective",
           "TrainObjective", "collator_for", "plan", "random_spans_noise_mask"]
