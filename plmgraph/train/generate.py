"""Text generation with the KV cache: greedy, temperature, top-k, top-p, repetition penalty, stop
tokens, left-padded batches; encoder-decoder models decode behind their decoder start token.

    ids = generate(model, tokenizer, "The", max_new_tokens=50, top_p=0.9, seed=0)
    print(tokenizer.decode(ids[0]))

Each step's logits go through, in Hugging Face's order: repetition penalty (CTRL: a seen
token's logit is divided by the penalty when positive, multiplied when negative),
temperature, top-k, top-p (the smallest set of tokens whose probability reaches `top_p`, the
most likely always kept).  Sampling is on when ``do_sample`` is true, or (``do_sample=None``)
when a temperature other than 1, a top-k or a top-p below 1 is given; otherwise the argmax
(greedy), token for token what ``transformers``' ``generate(do_sample=False)`` returns.

Batches of prompts are left-padded: the attention mask hides the padding and position ids
count real tokens only (``cumsum(mask) - 1``), so each row generates what it would alone.
A row stops at a stop token (the tokenizer's eos by default, plus `stop`); after that it is
filled with the pad token, and generation ends when every row has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError


def _encode(tokenizer: Any, prompt: Any, pad: int) -> tuple[Tensor, Tensor]:
    if isinstance(prompt, Tensor):
        ids = prompt if prompt.dim() == 2 else prompt[None]
        return ids.long(), torch.ones_like(ids, dtype=torch.long)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise InputError("no prompt given")
    rows = []
    for p in prompts:
        if isinstance(p, str):
            if tokenizer is None:
                raise InputError("a text prompt needs a tokenizer")
            rows.append(tokenizer.encode(p))
        else:
            rows.append([int(t) for t in p])
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, T - len(r):] = torch.tensor(r)
            mask[i, T - len(r):] = 1
    return ids, mask


def process_logits(logits: Tensor, seen: Tensor, *, temperature: float, top_k: int, top_p: float,
                   repetition_penalty: float) -> Tensor:
    """[B, V] next-token scores after the penalty, temperature, top-k and top-p (masked to -inf)."""
    logits = logits.float()
    if repetition_penalty != 1.0:
        picked = torch.gather(logits, 1, seen)
        picked = torch.where(picked < 0, picked * repetition_penalty, picked / repetition_penalty)
        logits = logits.scatter(1, seen, picked)
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # tokens after the nucleus is full
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(model: Any, tokenizer: Any = None, prompt: str | Sequence[str] | Sequence[Sequence[int]] | Tensor = "",
             max_new_tokens: int = 50, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, do_sample: bool | None = None, stop: Sequence[int | str] = (),
             seed: int | None = None, use_cache: bool = True, attention_mask: Tensor | None = None,
             pad_token_id: int | None = None, eos_token_id: int | None = None) -> Tensor:
    """Generate up to `max_new_tokens` after each prompt; returns [B, T + new] ids (prompt included,
    left padding kept; for encoder-decoders: the decoder's ids, start token first).

    Args:
        prompt: a text, texts, token-id lists, or a [B, T] tensor (then `attention_mask` may mark left padding).
        stop: extra stop tokens (ids, or strings the tokenizer maps to one id).
        seed: seeds the sampling generator (sampling is reproducible with it).
        use_cache: reuse keys and values (False recomputes the whole sequence each step; same result).

    Raises:
        InputError: a bad argument, a model without a vocabulary head, or a prompt too long for the model.
    """
    if max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0 or repetition_penalty <= 0:
        raise InputError("temperature must be >= 0, top_p in (0, 1], top_k >= 0 and repetition_penalty > 0")
    spec = model.spec
    if not spec.heads or spec.heads[0].kind != "lm":
        raise InputError(f"{spec.name} has no language-model head to generate with")
    if spec.family == "encoder":
        raise InputError(f"{spec.name} is an encoder; generation needs a decoder or an encoder-decoder")
    last = model.stacks()[-1] if hasattr(model, "stacks") else None
    if use_cache and last is not None and not last.causal and not getattr(last, "prefix", False):
        raise InputError(f"{spec.name}'s attention is bidirectional, so a cached step cannot equal the full forward "
                         "(an XLNet memory is segment recurrence, not a KV cache); generate with use_cache=False")
    roles = getattr(tokenizer, "roles", {}) if tokenizer is not None else {}
    pad = pad_token_id if pad_token_id is not None else roles.get("pad", 0)
    eos = eos_token_id if eos_token_id is not None else roles.get("eos")
    stops = {eos} if eos is not None else set()
    for s in stop:
        if isinstance(s, str):
            ids = tokenizer.encode(s) if tokenizer is not None else []
            if len(ids) != 1:
                raise InputError(f"stop string {s!r} is not one token ({len(ids)} tokens)")
            s = ids[0]
        stops.add(int(s))
    sample = do_sample if do_sample is not None else (temperature > 0 and (temperature != 1.0 or top_k > 0
                                                                          or top_p < 1.0))
    if temperature == 0:
        sample = False
    gen = torch.Generator(device=next(model.parameters()).device)
    if seed is not None:
        gen.manual_seed(seed)
    else:  # its own nondeterministic seed: torch.seed() would reseed the global RNG (and every device)
        gen.seed()
    dev = next(model.parameters()).device
    ids, mask = _encode(tokenizer, prompt, pad)
    if attention_mask is not None:
        mask = attention_mask.long()
    ids, mask = ids.to(dev), mask.to(dev)
    was = model.training
    model.eval()
    try:
        if spec.family == "encoder-decoder":
            return _seq2seq(model, ids, mask, max_new_tokens, pad, stops, sample, gen, use_cache,
                            dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                 repetition_penalty=repetition_penalty))
        return _decode(model, ids, mask, max_new_tokens, pad, stops, sample, gen, use_cache,
                       dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty))
    finally:
        model.train(was)


def _pick(logits: Tensor, seen: Tensor, sample: bool, gen: torch.Generator, kw: dict[str, Any]) -> Tensor:
    scores = process_logits(logits, seen, **{**kw, "temperature": kw["temperature"] if sample else 1.0})
    if sample:
        return torch.multinomial(scores.softmax(-1), 1, generator=gen)[:, 0]
    return scores.argmax(-1)


def _decode(model: Any, ids: Tensor, mask: Tensor, n: int, pad: int, stops: set[int], sample: bool,
            gen: torch.Generator, use_cache: bool, kw: dict[str, Any]) -> Tensor:
    B = ids.shape[0]
    m = model.spec.sizes.max_positions
    if m is not None and ids.shape[1] + n > m:
        n = max(0, m - ids.shape[1])
        if n == 0:
            raise InputError(f"the prompt ({ids.shape[1]} tokens) fills {model.spec.name}'s {m} positions")
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    past = None
    step_ids = ids
    for _ in range(n):
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        if use_cache:
            out = model(step_ids, attention_mask=mask, position_ids=pos[:, -step_ids.shape[1]:],
                        past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = model(ids, attention_mask=mask, position_ids=pos)
        nxt = _pick(out.logits[:, -1], ids, sample, gen, kw)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, (~done).long()[:, None]], 1)
        done |= torch.isin(nxt, torch.tensor(sorted(stops), device=ids.device, dtype=torch.long)) if stops else done
        step_ids = nxt[:, None]
        if done.all():
            break
    return ids


def _seq2seq(model: Any, ids: Tensor, mask: Tensor, n: int, pad: int, stops: set[int], sample: bool,
             gen: torch.Generator, use_cache: bool, kw: dict[str, Any]) -> Tensor:
    B = ids.shape[0]
    enc = model(ids, attention_mask=mask, decoder_input_ids=torch.full((B, 1), pad, device=ids.device))
    memory = enc.encoder_last_hidden_state
    dec = torch.full((B, 1), pad, dtype=torch.long, device=ids.device)  # T5 / BART-style start token
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    past = None
    step = dec
    for _ in range(n):
        if use_cache:
            out = model(attention_mask=mask, decoder_input_ids=step, encoder_outputs=memory, past_key_values=past,
                        use_cache=True)
            past = out.past_key_values
        else:
            out = model(attention_mask=mask, decoder_input_ids=dec, encoder_outputs=memory)
        nxt = _pick(out.logits[:, -1], dec, sample, gen, kw)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        dec = torch.cat([dec, nxt[:, None]], 1)
        if stops:
            done |= torch.isin(nxt, torch.tensor(sorted(stops), device=ids.device, dtype=torch.long))
        step = nxt[:, None]
        if done.all():
            break
    return dec


__all__ = ["generate", "process_logits"]
