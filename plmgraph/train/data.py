"""Corpora for training runs: documents of sentences, a held-out split, token streams.

A corpus is a list of documents, each a list of sentences (`Corpus`):

* ``pydoc`` — the text of Python's own documentation (``pydoc_data.topics``, about 460 kB,
  offline on every Python): one document per topic, one sentence per non-empty line;
* a ``.jsonl`` file — one JSON object per line with a ``text`` field: one document each,
  one sentence per non-empty line of the text; optional ``label`` (an int or a string: the
  class of the text, for ``objectives: [{kind: classification}]``) and ``spans`` (a list of
  ``[start, end]`` character offsets into ``text``, half-open: the phrases or entities ERNIE's
  ``unit: phrase`` / ``unit: entity`` masking masks together); or, for token classification,
  ``tokens`` (a list of words) and ``labels`` (one label per word, ints or strings), as in
  Hugging Face's token-classification examples: one sentence per line;
* ``pydoc-tags`` — a token-classification task built from ``pydoc``: every non-empty line a
  sentence of whitespace-separated words, each tagged by `word_tag` (KEYWORD, NUMBER, PUNCT,
  CAPITALISED, OTHER);
* a folder — every ``.txt``, ``.md`` and ``.jsonl`` file under it (recursively, in sorted
  path order), each read as above;
* any other file — plain UTF-8 text in BERT's pre-training format: one sentence per line,
  documents separated by blank lines.

`Corpus.split` holds out whole documents (a seeded choice, at least one), so held-out text
is never seen in training.  Empty, binary (NUL bytes) and non-UTF-8 files are refused.

Corpora larger than memory: `iter_texts` reads a file or folder one document at a time, and
`TokenFile.write` writes the token ids once to a flat binary file (uint16 when the vocabulary
fits, else uint32; a ``.json`` header beside it) that `TokenFile` maps with ``numpy.memmap``;
`TokenBlocks` reads training blocks from it on demand, so neither the text nor the tokens are
ever all in memory (``TrainConfig.memmap``; the held-out split is then a seeded per-document
draw, `held_out_doc`).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

PYDOC = "pydoc"
PYDOC_TAGS = "pydoc-tags"
TAGS = ("CAPITALISED", "KEYWORD", "NUMBER", "OTHER", "PUNCT")


@dataclass
class Corpus:
    """Documents, each a list of sentences (non-empty strings)."""

    docs: list[list[str]]
    name: str = "corpus"
    labels: list[int | str] | None = None
    """One class per document (JSONL ``label``), or None."""
    spans: list[list[list[tuple[int, int]]]] | None = None
    """Per document, per sentence, ``(start, end)`` character spans (JSONL ``spans``), or None."""
    words: list[list[list[str]]] | None = None
    """Token classification: per document, per sentence, its words (the sentence is them joined by
    single spaces), or None."""
    word_labels: list[list[list[int | str]]] | None = None
    """Token classification: per document, per sentence, one label per word, or None."""

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
                      [self.spans[i] for i in keep] if self.spans is not None else None,
                      [self.words[i] for i in keep] if self.words is not None else None,
                      [self.word_labels[i] for i in keep] if self.word_labels is not None else None)


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


def word_tag(word: str) -> str:
    """The tag of one whitespace-separated word in ``pydoc-tags``: KEYWORD (a Python keyword, e.g.
    ``for``, ``None``), NUMBER (digits, optionally signed, with ``.`` ``,`` ``_`` ``e`` ``x`` inside,
    e.g. ``3.14``, ``0x1F``, ``1,000``), PUNCT (no letter or digit, e.g. ``::=``, ``--``), CAPITALISED
    (starts with an upper-case letter), else OTHER."""
    import keyword

    if keyword.iskeyword(word):
        return "KEYWORD"
    core = word.strip(".,;:()[]\"'")
    if core and core.lstrip("+-")[:1].isdigit() and all(c.isdigit() or c in "+-.,_eExXabcdefABCDEF" for c in core):
        return "NUMBER"
    if not any(c.isalnum() for c in word):
        return "PUNCT"
    return "CAPITALISED" if word[0].isupper() else "OTHER"


def pydoc_tags() -> Corpus:
    """``pydoc-tags``: the lines of ``pydoc`` as sentences of words, tagged by `word_tag` (one
    document per topic)."""
    from pydoc_data.topics import topics

    docs, words, tags = [], [], []
    for k in sorted(topics):
        lines = [line.split() for line in _sentences(topics[k])]
        if lines:
            docs.append([" ".join(w) for w in lines])
            words.append(lines)
            tags.append([[word_tag(w) for w in line] for line in lines])
    return Corpus(docs, PYDOC_TAGS, words=words, word_labels=tags)


def load_corpus(source: str | os.PathLike) -> Corpus:
    """Read a corpus: ``"pydoc"``, a ``.jsonl`` file, a folder or a plain text file (see the module docstring).

    Raises:
        InputError: a missing, empty, binary or non-UTF-8 file, JSONL without ``text``, bad ``label`` or
            ``spans``, a folder without text files.
    """
    if str(source) == PYDOC:
        from pydoc_data.topics import topics

        return Corpus([s for s in (_sentences(topics[k]) for k in sorted(topics)) if s], PYDOC)
    if str(source) == PYDOC_TAGS:
        return pydoc_tags()
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
        tagged = [c.word_labels is not None for c in parts]
        if any(tagged) and not all(tagged):
            raise InputError(f"{p}: some files have per-word `tokens` and `labels` and some do not")
        spans = any(c.spans is not None for c in parts)
        return Corpus([d for c in parts for d in c.docs], p.name,
                      [x for c in parts for x in c.labels] if all(labelled) else None,
                      [x for c in parts for x in (c.spans or [[[] for _ in d] for d in c.docs])] if spans else None,
                      [x for c in parts for x in c.words] if all(tagged) else None,  # type: ignore[union-attr]
                      [x for c in parts for x in c.word_labels] if all(tagged) else None)  # type: ignore[union-attr]
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
    words: list[list[list[str]]] = []
    word_labels: list[list[list[int | str]]] = []
    any_label = any_spans = False
    if p.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not JSON ({e.msg})") from None
            if isinstance(row, dict) and "tokens" in row and "text" not in row:  # token classification
                if docs and not words:
                    raise InputError(f"{p}:{n}: some lines have `text` and some `tokens`")
                w, tags = _parse_tagged(row, f"{p}:{n}")
                docs.append([" ".join(w)])
                words.append([w])
                word_labels.append([tags])
                continue
            if words:
                raise InputError(f"{p}:{n}: some lines have `text` and some `tokens`")
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f"{p}:{n}: each JSONL line must be an object with a string `text` field (or, "
                                 "for token classification, `tokens` and `labels`)")
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
    if words:
        return Corpus(docs, p.name, words=words, word_labels=word_labels)
    return Corpus(docs, p.name, labels if any_label else None, spans if any_spans else None)


def _parse_tagged(row: dict[str, Any], where: str) -> tuple[list[str], list[int | str]]:
    """A token-classification line: `tokens` (non-empty words without whitespace) and one label each."""
    w, tags = row.get("tokens"), row.get("labels")
    if not isinstance(w, list) or not w or not all(isinstance(x, str) and x and not any(c.isspace() for c in x)
                                                    for x in w):
        raise InputError(f"{where}: `tokens` must be a non-empty list of words (non-empty strings without "
                         "whitespace)")
    if not isinstance(tags, list) or len(tags) != len(w):
        raise InputError(f"{where}: `labels` must be a list with one label per word ({len(w)} words, got "
                         f"{len(tags) if isinstance(tags, list) else repr(tags)})")
    if any(isinstance(t, bool) or not isinstance(t, (int, str)) for t in tags):
        raise InputError(f"{where}: each label must be an integer or a string")
    return w, tags


def held_out_doc(index: int, held_out: float, seed: int) -> bool:
    """Whether document `index` is held out in a streamed corpus (a seeded draw per document)."""
    return held_out > 0 and random.Random(seed * 1_000_003 + index).random() < held_out


def iter_texts(source: str | os.PathLike) -> Iterator[str]:
    """The documents of a corpus one at a time (each as its sentences joined by newlines), reading
    files line by line: ``pydoc``, a text or ``.jsonl`` file, or a folder of them (`load_corpus`)."""
    if str(source) in (PYDOC, PYDOC_TAGS):
        yield from load_corpus(source).texts
        return
    p = Path(source)
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".txt", ".md", ".jsonl")
                   and not any(part.startswith(".") for part in f.relative_to(p).parts)) if p.is_dir() else [p]
    if not files or not files[0].is_file():
        raise InputError(f"{p}: corpus file not found (pass a text or .jsonl file, a folder, or --data pydoc)")
    for f in files:
        with open(f, "rb") as fh:
            if b"\0" in fh.read(1 << 20):
                raise InputError(f"{f}: a binary file (it holds NUL bytes); the corpus must be UTF-8 text")
        with open(f, encoding="utf-8", errors="strict", newline=None) as fh:
            lines: list[str] = []
            try:
                for n, line in enumerate(fh, 1):
                    if f.suffix == ".jsonl":
                        if not line.strip():
                            continue
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise InputError(f"{f}:{n}: not JSON ({e.msg})") from None
                        if isinstance(row, dict) and isinstance(row.get("tokens"), list) and "text" not in row:
                            yield " ".join(map(str, row["tokens"]))  # token classification (refused by --memmap)
                            continue
                        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                            raise InputError(f"{f}:{n}: each JSONL line must be an object with a string `text`")
                        if s := _sentences(row["text"]):
                            yield "\n".join(s)
                    elif line.strip():
                        lines.append(line.rstrip())
                    elif lines:
                        yield "\n".join(lines)
                        lines = []
            except UnicodeDecodeError:
                raise InputError(f"{f}: not UTF-8 text; convert it, e.g. iconv -t utf-8") from None
            if lines:
                yield "\n".join(lines)


class TokenFile:
    """Token ids in a flat binary file, memory-mapped (``numpy.memmap``): ``len``, slicing."""

    def __init__(self, path: str | os.PathLike) -> None:
        import numpy as np

        self.path = Path(path)
        head = Path(str(self.path) + ".json")
        if not self.path.is_file() or not head.is_file():
            raise InputError(f"{self.path}: token file (or its .json header) not found")
        meta = json.loads(head.read_text(encoding="utf-8"))
        self.vocab = int(meta["vocab"])
        self.tokens = int(meta["tokens"])
        self.ids = np.memmap(self.path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(self.tokens,)) \
            if self.tokens else np.zeros(0, dtype=np.dtype(meta["dtype"]))  # mmap cannot map an empty file

    def __len__(self) -> int:
        return self.tokens

    def __getitem__(self, item: slice) -> list[int]:
        return self.ids[item].astype("int64").tolist()

    @classmethod
    def write(cls, path: str | os.PathLike, docs: Iterable[list[int]], vocab: int) -> TokenFile:
        """Write the documents' ids (each already ending in its separator) once, atomically."""
        import numpy as np

        path = Path(path)
        dtype = np.uint16 if vocab <= 1 << 16 else np.uint32
        tmp = path.with_name(f".{path.name}.tmp")
        n = 0
        buf: list[int] = []
        with open(tmp, "wb") as f:
            for ids in docs:
                buf += ids
                if len(buf) >= 1 << 20:
                    f.write(np.asarray(buf, dtype=dtype).tobytes())
                    n += len(buf)
                    buf = []
            f.write(np.asarray(buf, dtype=dtype).tobytes())
            n += len(buf)
        os.replace(tmp, path)
        head = Path(str(path) + ".json")
        head_tmp = head.with_name(f".{head.name}.tmp")
        head_tmp.write_text(json.dumps({"dtype": np.dtype(dtype).name, "tokens": n, "vocab": vocab}) + "\n",
                            encoding="utf-8")
        os.replace(head_tmp, head)
        return cls(path)


class SentenceIndex:
    """Sentence and document boundaries beside a `TokenFile` whose documents were written sentence by
    sentence with no separator (the sentence-pair layouts under ``--memmap``): ``PATH.sentences`` (int64,
    the end offset of each sentence in the token file), ``PATH.docs`` (int64, the first sentence of each
    document, then the number of sentences) and ``PATH.index.json`` (their counts), all memory-mapped."""

    def __init__(self, path: str | os.PathLike) -> None:
        import numpy as np

        self.path = Path(path)
        head = Path(str(self.path) + ".index.json")
        if not head.is_file():
            raise InputError(f"{self.path}: sentence index ({head.name}) not found")
        meta = json.loads(head.read_text(encoding="utf-8"))
        self.n_sentences, self.n_docs = int(meta["sentences"]), int(meta["docs"])

        def open_(suffix: str, n: int) -> Any:
            f = Path(str(self.path) + suffix)
            return np.memmap(f, dtype=np.int64, mode="r", shape=(n,)) if n else np.zeros(0, dtype=np.int64)

        self.ends = open_(".sentences", self.n_sentences)
        self.docs = open_(".docs", self.n_docs + 1)

    def sentences(self, d: int) -> int:
        """The number of sentences of document `d`."""
        return int(self.docs[d + 1] - self.docs[d])

    def span(self, d: int, k: int) -> tuple[int, int]:
        """Token offsets [start, end) of sentence `k` of document `d`."""
        g = int(self.docs[d]) + k
        return (int(self.ends[g - 1]) if g else 0), int(self.ends[g])

    @classmethod
    def write(cls, path: str | os.PathLike, docs: Iterable[list[list[int]]], vocab: int) -> tuple[TokenFile,
                                                                                                  SentenceIndex]:
        """Write documents given as lists of sentences' ids: the tokens (a `TokenFile`, no separators) and
        their boundaries, each file atomically."""
        import numpy as np

        path = Path(path)
        tmp = {s: path.with_name(f".{path.name}{s}.tmp") for s in (".sentences", ".docs")}
        counts = {"sentences": 0, "docs": 0}
        files = {s: open(f, "wb") for s, f in tmp.items()}
        try:
            def flat() -> Iterator[list[int]]:
                at = 0
                for doc in docs:
                    files[".docs"].write(np.int64(counts["sentences"]).tobytes())
                    counts["docs"] += 1
                    ends = []
                    for sent in doc:
                        at += len(sent)
                        ends.append(at)
                    files[".sentences"].write(np.asarray(ends, dtype=np.int64).tobytes())
                    counts["sentences"] += len(ends)
                    yield [t for sent in doc for t in sent]

            tokens = TokenFile.write(path, flat(), vocab)
            files[".docs"].write(np.int64(counts["sentences"]).tobytes())
        finally:
            for f in files.values():
                f.close()
        for suffix, f in tmp.items():
            os.replace(f, Path(str(path) + suffix))
        head = Path(str(path) + ".index.json")
        head_tmp = head.with_name(f".{head.name}.tmp")
        head_tmp.write_text(json.dumps(counts) + "\n", encoding="utf-8")
        os.replace(head_tmp, head)
        return tokens, cls(path)


class TokenBlocks(Sequence):
    """Consecutive `block`-token examples of a `TokenFile`, read on demand; `wrap` turns a block's ids
    into an example (the collator's layout)."""

    def __init__(self, tokens: TokenFile, block: int, wrap: Callable[[list[int]], Any]) -> None:
        self.tokens, self.block, self.wrap = tokens, block, wrap

    def __len__(self) -> int:
        return len(self.tokens) // self.block

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self.wrap(self.tokens[i * self.block:(i + 1) * self.block])


__all__ = ["PYDOC", "PYDOC_TAGS", "TAGS", "Corpus", "SentenceIndex", "TokenBlocks", "TokenFile", "held_out_doc",
           "iter_texts", "load_corpus", "pydoc_tags", "word_tag"]
