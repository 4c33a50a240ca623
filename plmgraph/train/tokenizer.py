"""Tokenizers for training runs: Hugging Face `tokenizers`, trained on the corpus or loaded.

`train_tokenizer` trains WordPiece (lower-cased, BERT pre-tokenizer) for encoder specs and
byte-level BPE (GPT-2's pre-tokenizer, every byte in the alphabet, so no text is unknown)
for the others, with the special tokens the spec's objectives need (`specials_for`):

* causal LM: ``<|endoftext|>`` (document separator, end of text and padding, as GPT-2);
* MLM / NSP / SOP: ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (BERT);
* span corruption: ``<pad> </s> <unk>`` and the sentinels ``<extra_id_0> ...`` (T5; ``<pad>``
  is id 0, the decoder start token);
* other encoder-decoders (BART's denoising, CLM continuation): ``<pad> </s> <unk> <s> <mask>``
  (BART; ``<pad>`` is id 0, the decoder start token);
* GLM blank infilling: ``<|endoftext|> [MASK] <|startofpiece|> <|endofpiece|>`` (GLM's names
  for the blank, the span start and the span end).

``algorithm`` picks the model: ``wordpiece``, ``bpe`` (byte-level) or ``unigram`` (SentencePiece's
Unigram LM, Kudo 2018, with a Metaspace pre-tokenizer, as T5 and ALBERT; no byte fallback, so
characters not seen in training map to the unknown token).

`Tokenizer` wraps a ``tokenizers.Tokenizer`` and finds the roles (pad, eos, cls, sep, mask,
unk, sentinels) by their token strings, so a loaded ``tokenizer.json`` (GPT-2's, BERT's)
works too.  `check_vocab` refuses a tokenizer with more ids than the spec's embedding rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

FILE = "tokenizer.json"

#: Token strings that may play each role, in order of preference.
ROLES: dict[str, tuple[str, ...]] = {
    "pad": ("[PAD]", "<pad>", "<|endoftext|>"),
    "eos": ("</s>", "<|endoftext|>", "[SEP]"),
    "bos": ("<s>", "<|endoftext|>", "[CLS]"),
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "mask": ("[MASK]", "<mask>"),
    "sop": ("<|startofpiece|>",),
    "eop": ("<|endofpiece|>",),
}


def specials_for(spec: Any) -> list[str]:
    """The special tokens a tokenizer for `spec`'s objectives needs, pad first."""
    kinds = {o.kind for o in spec.objectives}
    if "span_corruption" in kinds:
        n = next(o.sentinels for o in spec.objectives if o.kind == "span_corruption")
        return ["<pad>", "</s>", "<unk>"] + [f"<extra_id_{i}>" for i in range(n)]
    if kinds & {"mlm", "nsp", "sop"} or spec.family == "encoder":
        return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    if spec.family == "encoder-decoder":
        return ["<pad>", "</s>", "<unk>", "<s>", "<mask>"]
    if "blank_infilling" in kinds:
        return ["<|endoftext|>", "[MASK]", "<|startofpiece|>", "<|endofpiece|>"]
    return ["<|endoftext|>"]


class Tokenizer:
    """A ``tokenizers.Tokenizer`` with its special-token roles."""

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        vocab = hf.get_vocab(with_added_tokens=True)
        self.roles: dict[str, int] = {}
        for role, names in ROLES.items():
            for n in names:
                if n in vocab:
                    self.roles[role] = vocab[n]
                    break
        self.sentinels: list[int] = []
        while f"<extra_id_{len(self.sentinels)}>" in vocab:
            self.sentinels.append(vocab[f"<extra_id_{len(self.sentinels)}>"])
        self.special_ids = {t.id if hasattr(t, "id") else i for i, t in _added(hf)}

    @property
    def vocab_size(self) -> int:
        """Number of ids (the largest id + 1)."""
        return self.hf.get_vocab_size(with_added_tokens=True)

    def id(self, role: str) -> int:
        """The id of a role ("pad", "eos", "mask", ...); a clear error when the tokenizer has none."""
        if role not in self.roles:
            raise InputError(f"the tokenizer has no {role} token (one of {', '.join(ROLES[role])}); "
                             "train one on the corpus (omit --tokenizer) or add the token")
        return self.roles[role]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_words(self, text: str) -> tuple[list[int], list[bool]]:
        """Token ids and, per token, whether it starts a word (the pre-tokenizer's words)."""
        enc = self.hf.encode(text, add_special_tokens=False)
        words = enc.word_ids
        starts = [i == 0 or w is None or w != words[i - 1] for i, w in enumerate(words)]
        return enc.ids, starts

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, path: str | os.PathLike) -> None:
        self.hf.save(str(path))


def _added(hf: Any) -> Iterable[tuple[int, Any]]:
    return hf.get_added_tokens_decoder().items()


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a ``tokenizer.json`` (a file, or a folder holding one)."""
    from tokenizers import Tokenizer as HF

    p = Path(path)
    if p.is_dir():
        p = p / FILE
    if not p.is_file():
        raise InputError(f"{p}: tokenizer file not found")
    try:
        return Tokenizer(HF.from_file(str(p)))
    except Exception as e:  # tokenizers raises its own Exception type for malformed files
        raise InputError(f"{p}: not a Hugging Face tokenizer.json ({e})") from None


def train_tokenizer(texts: Iterable[str], spec: Any, vocab_size: int | None = None,
                    algorithm: str | None = None) -> Tokenizer:
    """Train a tokenizer for `spec` on `texts` (see the module docstring for the choices).

    Args:
        vocab_size: target size; default the spec's ``sizes.vocab``.
        algorithm: ``"wordpiece"``, ``"bpe"`` (byte-level) or ``"unigram"``; default WordPiece for encoders,
            byte-level BPE otherwise.
    """
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    size = vocab_size or spec.sizes.vocab
    specials = specials_for(spec)
    algorithm = algorithm or ("wordpiece" if spec.family == "encoder" else "bpe")
    if algorithm == "wordpiece":
        hf = HF(models.WordPiece(unk_token="[UNK]" if "[UNK]" in specials else specials[0]))
        hf.normalizer = normalizers.BertNormalizer(lowercase=True)
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=size, special_tokens=specials, show_progress=False)
        floor = len(specials) + 100
    elif algorithm == "bpe":
        hf = HF(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=specials, initial_alphabet=alphabet,
                                      min_frequency=2, show_progress=False)
        floor = len(specials) + len(alphabet)
    elif algorithm == "unigram":
        unk = next((t for t in ("<unk>", "[UNK]") if t in specials), None)
        if unk is None:  # a Unigram model needs an unknown token for characters it never saw
            specials = [*specials, "<unk>"]
            unk = "<unk>"
        hf = HF(models.Unigram())
        hf.normalizer = normalizers.NFKC()
        hf.pre_tokenizer = pre_tokenizers.Metaspace()
        hf.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=size, special_tokens=specials, unk_token=unk,
                                          show_progress=False)
        floor = len(specials) + 100
    else:
        raise InputError(f"tokenizer algorithm {algorithm!r} is not one of: bpe, unigram, wordpiece")
    if size < floor:
        raise InputError(f"a {algorithm} tokenizer with {len(specials)} special tokens needs a vocabulary of at "
                         f"least {floor}; the spec's is {size} (pass -O vocab={max(floor, 1024)})")
    hf.train_from_iterator(texts, trainer)
    if algorithm == "wordpiece":  # the trainer numbers tied pieces in hash order: renumber, specials first
        vocab = hf.get_vocab(with_added_tokens=False)
        order = [t for t in specials if t in vocab] + sorted(t for t in vocab if t not in specials)
        hf.model = models.WordPiece(vocab={t: i for i, t in enumerate(order)}, unk_token=hf.model.unk_token)
    return Tokenizer(hf)


def check_vocab(tok: Tokenizer, spec: Any) -> None:
    """Refuse a tokenizer whose ids do not all fit the spec's embedding table."""
    if spec.sizes.vocab is None:
        raise InputError(f"{spec.name} has no token vocabulary (sizes.vocab); it cannot be trained on text")
    if tok.vocab_size > spec.sizes.vocab:
        raise InputError(f"the tokenizer has {tok.vocab_size:,} tokens but {spec.name}'s vocabulary has "
                         f"{spec.sizes.vocab:,} rows; pass -O vocab={tok.vocab_size} or a smaller tokenizer")


__all__ = ["FILE", "ROLES", "Tokenizer", "check_vocab", "load_tokenizer", "specials_for", "train_tokenizer"]
