"""GLM's autoregressive blank infilling (Du et al. 2022, §2.1-2.2) as model inputs.

`blank_infilling` turns token ids and the spans to blank into what a GLM model
(``position: glm_2d``, ``attention.mask: prefix``) reads.  For the paper's example,
x1..x6 with spans [x3] and [x5, x6], Part B order ([x5, x6], [x3])::

    input_ids       x1 x2 [M] x4 [M] | [S] x5  x6  | [S] x3
    labels          -  -  -   -  -   | x5  x6  [E] | x3  [E]
    position_ids[0] 0  1  2   3  4   | 4   4   4   | 2   2      (Figure 2 counts from 1)
    position_ids[1] 0  0  0   0  0   | 1   2   3   | 1   2
    prefix_lengths  5

Choices, following the reference code (THUDM/GLM ``blocklm_utils.ConstructBlockStrategy.
make_block_data``):

* Part A is the text with each span (in text order) replaced by one ``mask_id``; its
  position ids are ``0 .. len(A) - 1``, so a [MASK]'s position is its index in Part A.
* Part B is the spans in the order given (the paper samples a random order: pass
  ``generator`` to shuffle), each ``[sop_id] + span``, its targets ``span + [eop_id]``, so
  ``labels`` are already shifted: the logits at index t predict ``labels[t]``
  (``cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)``, no shift).
* Every token of a span (its [START] included) has the text position of the span's [MASK]
  and block positions ``1 .. len(span) + 1``; Part A has block position 0.
* ``labels`` are ``ignore_index`` over Part A (the reference's ``loss_mask`` is 0 there) and
  over padding.  Sequences are right-padded with ``pad_id`` to the longest one; padding has
  ``attention_mask`` 0, positions 0 and sits after the prefix, so it changes no real token.
* ``prefix_lengths`` (the reference's ``sep``) is ``len(A)``.

`sample_spans` draws spans as GLM pre-training does: Poisson(``poisson_lambda``) lengths
(at least 1, the last one cut) until ``round(rate * length)`` tokens are covered, placed at
random with at least one kept token between two spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError

Span = tuple[int, int]


@dataclass
class BlankInfillingBatch:
    """GLM inputs for a batch; pass the first four to the model, `labels` to the loss."""

    input_ids: Tensor
    """[B, T] Part A (text with [MASK]s) then Part B ([START] + span, per span), right-padded."""
    attention_mask: Tensor
    """[B, T] 1 = token, 0 = padding."""
    position_ids: Tensor
    """[B, 2, T] row 0: position in Part A; row 1: position inside the span (0 over Part A)."""
    prefix_lengths: Tensor
    """[B] length of Part A, the bidirectional prefix."""
    labels: Tensor
    """[B, T] next-token targets over Part B (span + [END]); ``ignore_index`` elsewhere."""


def blank_infilling(tokens: Sequence[Sequence[int]] | Tensor, spans: Sequence[Sequence[Span]], *, mask_id: int,
                    sop_id: int, eop_id: int, pad_id: int = 0, ignore_index: int = -100,
                    generator: torch.Generator | None = None) -> BlankInfillingBatch:
    """Build GLM blank-infilling inputs (layout and conventions in the module docstring).

    Args:
        tokens: B sequences of token ids (lists, or the rows of a [B, L] tensor).
        spans: per sequence, the ``(start, end)`` half-open spans to blank, in Part B order;
            non-empty, inside the sequence, not overlapping.
        mask_id: the [MASK] token that replaces each span in Part A.
        sop_id: the [START] (``sop``) token in front of each span in Part B.
        eop_id: the [END] (``eop``) token each span's targets end with.
        pad_id: token id of right padding.
        ignore_index: label of positions without loss.
        generator: when given, shuffle each sequence's Part B order with it (the paper's
            random span order).

    Returns:
        A `BlankInfillingBatch` of long tensors.

    Raises:
        InputError: when `spans` does not have one list per sequence, or a span is empty,
            out of range or overlaps another.
    """
    rows = [list(map(int, t)) for t in (tokens.tolist() if isinstance(tokens, Tensor) else tokens)]
    if len(spans) != len(rows):
        raise InputError(f"spans must have one list per sequence: {len(rows)} sequences, {len(spans)} span lists")
    built = [_one(row, list(s), b, mask_id, sop_id, eop_id, ignore_index, generator)
             for b, (row, s) in enumerate(zip(rows, spans, strict=True))]
    T = max(len(ids) for ids, *_ in built)
    B = len(built)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), ignore_index, dtype=torch.long)
    attention_mask = torch.zeros(B, T, dtype=torch.long)
    position_ids = torch.zeros(B, 2, T, dtype=torch.long)
    prefix_lengths = torch.zeros(B, dtype=torch.long)
    for b, (ids, lab, pos, block, sep) in enumerate(built):
        n = len(ids)
        input_ids[b, :n] = torch.tensor(ids)
        labels[b, :n] = torch.tensor(lab)
        attention_mask[b, :n] = 1
        position_ids[b, 0, :n] = torch.tensor(pos)
        position_ids[b, 1, :n] = torch.tensor(block)
        prefix_lengths[b] = sep
    return BlankInfillingBatch(input_ids, attention_mask, position_ids, prefix_lengths, labels)


def _one(tokens: list[int], spans: list[Span], b: int, mask_id: int, sop_id: int, eop_id: int, ignore: int,
         generator: torch.Generator | None) -> tuple[list[int], list[int], list[int], list[int], int]:
    """One sequence: (input ids, labels, text positions, block positions, len(Part A))."""
    last = 0
    for start, end in sorted(spans):
        if not 0 <= start < end <= len(tokens) or start < last:
            raise InputError(f"sequence {b}: span ({start}, {end}) must be non-empty, inside [0, {len(tokens)}] "
                             "and not overlap another span")
        last = end
    if generator is not None:
        spans = [spans[i] for i in torch.randperm(len(spans), generator=generator).tolist()]
    part_a: list[int] = []
    mask_at: dict[Span, int] = {}  # span -> index of its [MASK] in Part A
    last = 0
    for span in sorted(spans):
        part_a += tokens[last:span[0]]
        mask_at[span] = len(part_a)
        part_a.append(mask_id)
        last = span[1]
    part_a += tokens[last:]
    sep = len(part_a)
    ids, labels = list(part_a), [ignore] * sep
    pos, block = list(range(sep)), [0] * sep
    for span in spans:
        text = tokens[span[0]:span[1]]
        ids += [sop_id] + text
        labels += text + [eop_id]
        pos += [mask_at[span]] * (len(text) + 1)
        block += list(range(1, len(text) + 2))
    return ids, labels, pos, block, sep


def sample_spans(length: int, rate: float = 0.15, poisson_lambda: float = 3.0,
                 generator: torch.Generator | None = None) -> list[Span]:
    """Random spans over a `length`-token text, sorted by start: Poisson(`poisson_lambda`) lengths
    (at least 1, the last one cut) until ``round(rate * length)`` tokens are blanked, placed with at
    least one kept token between spans (THUDM/GLM ``sample_spans``).  The defaults are the
    spec's ``objectives: blank_infilling`` defaults.

    Raises:
        InputError: when `length` is below 2 (nothing could stay visible).
    """
    if length < 2:
        raise InputError(f"sample_spans needs a text of at least 2 tokens, got {length}")
    target = max(1, round(rate * length))
    lengths: list[int] = []
    while sum(lengths) < target:
        n = int(torch.poisson(torch.tensor([poisson_lambda]), generator=generator).item())
        lengths.append(max(1, min(n, target - sum(lengths))))
    # len(lengths) spans, each followed by a kept token except possibly the last: the free
    # tokens are spread over len(lengths) + 1 gaps
    free = length - sum(lengths) - (len(lengths) - 1)
    if free < 0:  # too many short spans for the text: merge into one
        lengths, free = [sum(lengths)], length - sum(lengths)
    places = sorted(torch.randint(0, free + 1, (len(lengths),), generator=generator).tolist())
    spans, offset = [], 0
    for place, n in zip(places, lengths, strict=True):
        spans.append((offset + place, offset + place + n))
        offset += n + 1
    return spans


__all__ = ["BlankInfillingBatch", "blank_infilling", "sample_spans"]
