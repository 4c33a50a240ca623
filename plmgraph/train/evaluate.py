"""Evaluation: mean token loss, perplexity = exp(mean token cross-entropy), MLM, sentence and
classification accuracy.

The loss is averaged over *tokens* (every label != -100 of every batch counts once), not over
batches, so perplexity is exactly ``exp`` of the mean per-token cross-entropy; for causal
models the labels are shifted as in training.  Masks for MLM are those of epoch 0 (fixed), so
two evaluations of one model agree.  A classifier (a ``sequence_classification`` or
``image_classification`` primary head) reports the mean cross-entropy per example and its
``accuracy`` (no perplexity); a token classifier the mean cross-entropy per labelled token and
the token ``accuracy`` (labelled tokens: each word's first piece).

`perplexity` scores one long text with a causal model by a sliding window (Hugging Face's
"perplexity of fixed-length models" recipe): the tokens after the first are scored in chunks of
``stride``, each by one forward pass over at most ``window`` tokens ending with the chunk, so
every token is predicted exactly once, with at least ``window - stride`` tokens of context (all
there are, near the start).  ``stride == window`` is the plain (non-overlapping) perplexity:
the text is cut into blocks of ``window`` tokens from the start, as training and `evaluate` cut
it, and each block scores all its tokens but its first (which has no context in the block).

`evaluate` on a segment-recurrent model (Transformer-XL: ``Collator.recurrent``) reads the
held-out segments in order, one stream, carrying each layer's memory from segment to segment as
Transformer-XL's reference evaluation does (``loss``, ``perplexity``), and also reports the
number without memory (``loss_no_memory``, ``perplexity_no_memory``: each segment alone).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .loss import IGNORE, shifts, token_ce


@torch.no_grad()
def evaluate(model: Any, collator: Any, examples: list[Any], batch_size: int = 16,
             max_batches: int | None = None) -> dict[str, float]:
    """Loss, perplexity and accuracies of `model` on `examples` (see the module docstring)."""
    if getattr(collator, "recurrent", False):
        return _with_memory(model, collator, examples, batch_size, max_batches)
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ce_sum, tokens, correct = 0.0, 0, 0
    sent_right, sent_total = 0, 0
    primary = model.spec.heads[0].name
    classify = model.spec.heads[0].kind in ("sequence_classification", "image_classification")
    tagger = model.spec.heads[0].kind == "token_classification"
    try:
        for n, start in enumerate(range(0, len(examples), batch_size)):
            if max_batches is not None and n >= max_batches:
                break
            idx = list(range(start, min(start + batch_size, len(examples))))
            batch = {k: v.to(dev) for k, v in collator([examples[i] for i in idx], idx, 0).items()}
            labels = batch.pop("labels")
            sent = {k: batch.pop(k) for k in ("next_sentence_label", "sentence_order_label") if k in batch}
            out = model(**batch)
            logits = out.head_outputs[primary]
            if classify:
                ce_sum += float(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
                tokens += labels.numel()
                correct += int((logits.argmax(-1) == labels).sum())
                continue
            shift = not tagger and shifts(model, batch.get("target_mapping"))
            ce_sum += float(token_ce(logits, labels, shift=shift, reduction="sum"))
            lab = labels[:, 1:] if shift else labels
            pred = (logits[:, :-1] if shift else logits).argmax(-1)
            keep = lab != IGNORE
            tokens += int(keep.sum())
            correct += int((pred[keep] == lab[keep]).sum())
            for key, y in sent.items():
                head = next(h.name for h in model.spec.heads if h.kind == ("nsp" if key.startswith("next") else "sop"))
                sent_right += int((out.head_outputs[head].argmax(-1) == y).sum())
                sent_total += y.numel()
    finally:
        model.train(was)
    if tokens == 0:
        return {"loss": float("nan"), "perplexity": float("nan"), "tokens": 0}
    loss = ce_sum / tokens
    if classify:
        return {"loss": loss, "accuracy": correct / tokens, "examples": tokens}
    if tagger:  # token classification: accuracy over the labelled tokens (each word's first piece)
        return {"loss": loss, "accuracy": correct / tokens, "tokens": tokens}
    result = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": tokens,
              "accuracy": correct / tokens}
    if model.spec.family == "encoder":
        result["mlm_accuracy"] = result.pop("accuracy")
    if sent_total:
        result["sentence_accuracy"] = sent_right / sent_total
    return result


@torch.no_grad()
def _with_memory(model: Any, collator: Any, examples: list[Any], batch_size: int,
                 max_batches: int | None) -> dict[str, float]:
    """Transformer-XL: the held-out segments (consecutive in the stream) read in order as one stream, each
    layer's memory carried from segment to segment; with the no-memory numbers beside them."""
    collator.recurrent = False  # the plain pass: each segment alone, batched
    try:
        alone = evaluate(model, collator, examples, batch_size, max_batches)
    finally:
        collator.recurrent = True
    n = len(examples) if max_batches is None else min(len(examples), max_batches * batch_size)
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ce_sum, tokens, correct, mems = 0.0, 0, 0, None
    try:
        for i in range(n):
            batch = {k: v.to(dev) for k, v in collator([examples[i]], [i], 0).items()}
            labels = batch.pop("labels")
            if mems is not None:  # the mask covers [memory; segment], as in training
                m = batch["attention_mask"]
                batch["attention_mask"] = torch.cat([m.new_ones(m.shape[0], mems[0].shape[1]), m], 1)
            out = model(**batch, past_key_values=mems, use_cache=True)
            mems = out.past_key_values
            ce_sum += float(token_ce(out.logits, labels, shift=True, reduction="sum"))
            lab, pred = labels[:, 1:], out.logits[:, :-1].argmax(-1)
            keep = lab != IGNORE
            tokens += int(keep.sum())
            correct += int((pred[keep] == lab[keep]).sum())
    finally:
        model.train(was)
    if tokens == 0:
        return alone
    loss = ce_sum / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": tokens, "accuracy": correct / tokens,
            "loss_no_memory": alone["loss"], "perplexity_no_memory": alone["perplexity"]}


@torch.no_grad()
def perplexity(model: Any, ids: Any, window: int | None = None, stride: int | None = None) -> dict[str, float]:
    """Sliding-window perplexity of a causal model on one token sequence `ids` (a list or a 1-D tensor).

    Args:
        window: tokens per forward pass (default: the model's max_positions, else 512).
        stride: tokens scored per forward pass (default: window // 2); 1 <= stride <= window;
            ``stride == window``: non-overlapping blocks (the plain perplexity, module docstring).

    Returns:
        ``loss`` (mean token cross-entropy), ``perplexity`` = exp(loss), ``tokens`` (scored: len - 1, or
        for ``stride == window`` len minus the number of blocks).
    """
    from ..errors import InputError

    if model.spec.family != "decoder" or not shifts(model):
        raise InputError(f"sliding-window perplexity needs a causal decoder; {model.spec.name} is "
                         f"{'an' if model.spec.family[0] == 'e' else 'a'} {model.spec.family}")
    if not model.spec.heads or model.spec.heads[0].kind != "lm":
        raise InputError(f"sliding-window perplexity needs an lm head first; {model.spec.name}'s first head is "
                         f"{model.spec.heads[0].kind if model.spec.heads else 'missing'}")
    x = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    L = x.numel()
    if L < 2:
        raise InputError("perplexity needs at least 2 tokens")
    window = window or model.spec.sizes.max_positions or 512
    stride = stride or max(1, window // 2)
    limit = model.spec.sizes.max_positions
    if limit and window > limit and model.spec.position.kind in ("learned", "glm_2d"):
        raise InputError(f"a window of {window} tokens is longer than {model.spec.name}'s {limit} positions; "
                         f"pass a window (--seq-len) of at most {limit}")
    if not 1 <= stride <= window:
        raise InputError(f"need 1 <= stride <= window (a window scores its last `stride` tokens), got window "
                         f"{window}, stride {stride}")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    plain = stride == window  # blocks [0, W), [W, 2W), ...: each scores all its tokens but the first
    total, scored, a = 0.0, 0, 0 if plain else 1  # token 0 has no context: targets are 1 .. L - 1
    try:
        while a < L:
            e = min(a + stride, L)
            s = a if plain else max(0, e - window)
            chunk = x[s:e][None].to(dev)
            labels = chunk.clone()
            labels[:, :a - s] = IGNORE  # context only
            scored += e - max(a, s + 1)
            if e - s >= 2:
                total += float(token_ce(model(chunk).logits, labels, shift=True, reduction="sum"))
            a = e
    finally:
        model.train(was)
    loss = total / scored
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": scored}


__all__ = ["evaluate", "perplexity"]
