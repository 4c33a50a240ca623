"""Corpora for training runs: documents of sentences, a held-out split, token streams.

A corpus is a list of documents, each a list of sentences (`Corpus`):

* ``pydoc`` — the text of Python's own documentation (``pydoc_data.topics``, about 460 kB,
  offline on every Python): one document per topic, one sentence per non-empty line;
* a ``.jsonl`` file — one JSON object per line with a ``text`` field: one document each,
  one sentence per non-empty line of the text; optional ``label`` (an int or a string: the
  class of the text, for ``objectives: [{kind: classification}]``) and ``spans`` (a list of
  ``[start, end]`` character offsets into ``text``, half-open: the phrases or entities ERNIE's
  ``unit: phrase`` / ``unit: entity`` masking masks together);
* a folder — every ``.txt``, ``.md`` and ``.jsonl`` file under it (recursively, in sorted
  path order), each read as above;
* any other file — plain UTF-8 text in BERT's pre-training format: one sentence per line,
  documents separated by blank lines.

`Corpus.split` holds out whole documents (a seeded choice, at least one), so held-out text
is never seen in training.  Empty, binary (NUL bytes) and non-UTF-8 files are refused.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

PYDOC = "pydoc"


@dataclass
class Corpus:
    """Documents, each a list of sentences (non-empty strings)."""

    docs: list[list[str]]
    name: str = "corpus"
    labels: list[int | str] | None = None
    """One class per document (JSONL ``label``), or None."""
    spans: list[list[list[tuple[int, int]]]] | None = None
    """Per document, per sentence, ``(start, end)`` character spans (JSONL ``spans``), or None."""

    @property
    def texts(self) -> list[str]:
        """Each document as one text (its sentences joined by newlines)."""
        return ["\n".join(d) for d in self.docs]

    def chars(self) -> int:
        return sum(len(s) + 1 for d in self.docs for s in d)

    def split(self, held_out: float = 0.05, seed: int = 0) -> tuple[Corpus, Corpus]:
        """(train, held-out): a seeded `held_out` fraction of the documents (at least one) held out."""
        if not 0.0 <= held_out < 1.0:
            raise InputError(f"held-out fraction must be in [0, 1), got {held_out}")
        if held_out == 0.0 or len(self.docs) < 2:
            return self, self.subset([], ":held-out")
        order = list(range(len(self.docs)))
        random.Random(seed).shuffle(order)
        n = max(1, round(held_out * len(self.docs)))
        out = set(order[:n])
        return self.subset([i for i in range(len(self.docs)) if i not in out], ":train"), \
            self.subset(sorted(out), ":held-out")

    def subset(self, keep: list[int], suffix: str = "") -> Corpus:
        """The documents `keep` (labels and spans kept aligned)."""
        return Corpus([self.docs[i] for i in keep], self.name + suffix,
                      [self.labels[i] for i in keep] if self.labels is not None else None,
                      [self.spans[i] for i in keep] if self.spans is not None else None)


def _sentences(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _sentence_spans(text: str, spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Character spans of `text` mapped onto its sentences (`_sentences`): per sentence, the spans
    inside it, as offsets into the sentence; a span that crosses a line end is cut there."""
    out: list[list[tuple[int, int]]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        start, body = pos, line.rstrip()
        pos += len(line)
        if not line.strip():
            continue
        end = start + len(body)
        out.append([(max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start])
    return out


def _parse_spans(value: object, text: str, where: str) -> list[tuple[int, int]]:
    if not isinstance(value, list) or not all(
            isinstance(x, list) and len(x) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in x)
            for x in value):
        raise InputError(f"{where}: `spans` must be a list of [start, end] character offsets into `text`")
    for a, b in value:
        if not 0 <= a < b <= len(text):
            raise InputError(f"{where}: span [{a}, {b}] is empty or outside the text (0..{len(text)})")
    return [(a, b) for a, b in value]


def load_corpus(source: str | os.PathLike) -> Corpus:
    """Read a corpus: ``"pydoc"``, a ``.jsonl`` file, a folder or a plain text file (see the module docstring).

    Raises:
        InputError: a missing, empty, binary or non-UTF-8 file, JSONL without ``text``, bad ``label`` or
            ``spans``, a folder without text files.
    """
    if str(source) == PYDOC:
        from pydoc_data.topics import topics

        return Corpus([s for s in (_sentences(topics[k]) for k in sorted(topics)) if s], PYDOC)
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".txt", ".md", ".jsonl")
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not files:
            raise InputError(f"{p}: the folder holds no .txt, .md or .jsonl files")
        parts = [_load_file(f) for f in files]
        labelled = [c.labels is not None for c in parts]
        if any(labelled) and not all(labelled):
            raise InputError(f"{p}: some files have `label`s and some do not; a corpus is labelled throughout or "
                             "not at all")
        spans = any(c.spans is not None for c in parts)
        return Corpus([d for c in parts for d in c.docs], p.name,
                      [x for c in parts for x in c.labels] if all(labelled) else None,
                      [x for c in parts for x in (c.spans or [[[] for _ in d] for d in c.docs])] if spans else None)
    if not p.is_file():
        raise InputError(f"{p}: corpus file not found (pass a text or .jsonl file, a folder, or --data pydoc)")
    return _load_file(p)


def _load_file(p: Path) -> Corpus:
    raw = p.read_bytes()
    if b"\0" in raw[:1 << 20]:
        raise InputError(f"{p}: a binary file (it holds NUL bytes); the corpus must be UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                         "convert it, e.g. iconv -t utf-8") from None
    docs: list[list[str]] = []
    labels: list[int | str] = []
    spans: list[list[list[tuple[int, int]]]] = []
    any_label = any_spans = False
    if p.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f"{p}:{n}: each JSONL line must be an object with a string `text` field")
            label = row.get("label")
            if label is not None and (isinstance(label, bool) or not isinstance(label, (int, str))):
                raise InputError(f"{p}:{n}: `label` must be an integer or a string, got {label!r}")
            if any_label and label is None or (labels and not any_label and label is not None):
                raise InputError(f"{p}:{n}: some lines have a `label` and some do not")
            any_label = any_label or label is not None
            if s := _sentences(row["text"]):
                docs.append(s)
                labels.append(label)
                if "spans" in row:
                    any_spans = True
                    spans.append(_sentence_spans(row["text"], _parse_spans(row["spans"], row["text"], f"{p}:{n}")))
                else:
                    spans.append([[] for _ in s])
    else:
        for block in text.replace("\r\n", "\n").split("\n\n"):
            if s := _sentences(block):
                docs.append(s)
    if not docs:
        raise InputError(f"{p}: the corpus is empty (no non-blank text)")
    return Corpus(docs, p.name, labels if any_label else None, spans if any_spans else None)


__all__ = ["PYDOC", "Corpus", "load_corpus"]
