"""Corpora for training runs: documents of sentences, a held-out split, token streams.

A corpus is a list of documents, each a list of sentences (`Corpus`):

* ``pydoc`` — the text of Python's own documentation (``pydoc_data.topics``, about 460 kB,
  offline on every Python): one document per topic, one sentence per non-empty line;
* a ``.jsonl`` file — one JSON object per line with a ``text`` field: one document each,
  one sentence per non-empty line of the text;
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
            return self, Corpus([], self.name + ":held-out")
        order = list(range(len(self.docs)))
        random.Random(seed).shuffle(order)
        n = max(1, round(held_out * len(self.docs)))
        out = set(order[:n])
        return (Corpus([d for i, d in enumerate(self.docs) if i not in out], self.name + ":train"),
                Corpus([d for i, d in enumerate(self.docs) if i in out], self.name + ":held-out"))


def _sentences(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def load_corpus(source: str | os.PathLike) -> Corpus:
    """Read a corpus: ``"pydoc"``, a ``.jsonl`` file or a plain text file (see the module docstring).

    Raises:
        InputError: a missing, empty, binary or non-UTF-8 file, or JSONL without ``text``.
    """
    if str(source) == PYDOC:
        from pydoc_data.topics import topics

        return Corpus([s for s in (_sentences(topics[k]) for k in sorted(topics)) if s], PYDOC)
    p = Path(source)
    if not p.is_file():
        raise InputError(f"{p}: corpus file not found (pass a text or .jsonl file, or --data pydoc)")
    raw = p.read_bytes()
    if b"\0" in raw[:1 << 20]:
        raise InputError(f"{p}: a binary file (it holds NUL bytes); the corpus must be UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                         "convert it, e.g. iconv -t utf-8") from None
    docs: list[list[str]] = []
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
            if s := _sentences(row["text"]):
                docs.append(s)
    else:
        for block in text.replace("\r\n", "\n").split("\n\n"):
            if s := _sentences(block):
                docs.append(s)
    if not docs:
        raise InputError(f"{p}: the corpus is empty (no non-blank text)")
    return Corpus(docs, p.name)


__all__ = ["PYDOC", "Corpus", "load_corpus"]
