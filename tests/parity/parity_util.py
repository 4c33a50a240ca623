"""Shared helpers of the parity tests (see conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import plmgraph as pg

RTOL, ATOL = 1e-4, 1e-5
B, T = 2, 7


def close(actual: torch.Tensor, expected: torch.Tensor, what: str, mask: torch.Tensor | None = None) -> None:
    """assert_close in fp32; with `mask` [B, T], only where mask == 1 (HF's pad positions are garbage)."""
    if mask is not None:
        keep = mask.bool()
        actual, expected = actual[keep], expected[keep]
    torch.testing.assert_close(actual.float(), expected.float(), rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.15) -> None:
    """Every parameter random: matrices N(0, std), 1-d weights (norm scales) 1 + N(0, 0.2), biases N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() == 1 and name.endswith("weight"):
            p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
        elif name.endswith("bias") or p.dim() == 1:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(std * torch.randn(p.shape, generator=g))


def save_and_import(hf: torch.nn.Module, tmp_path: Path) -> Any:
    """save_pretrained + the real importer; both models in eval mode."""
    hf.eval()
    hf.save_pretrained(tmp_path)
    model = pg.from_hf(tmp_path)
    assert not model.training
    return model


def ids(vocab: int, b: int = B, t: int = T, low: int = 3, seed: int = 1) -> torch.Tensor:
    """Token ids in [low, vocab): the low ids are pad/bos/eos in the reference configs."""
    return torch.randint(low, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


def right_padded(b: int = B, t: int = T, pad: int = 2) -> torch.Tensor:
    """[b, t] mask; the last row ends in `pad` padding positions."""
    m = torch.ones(b, t, dtype=torch.long)
    m[-1, t - pad:] = 0
    return m


def new_state_dict_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names whose tensors differ (or exist on one side only)."""
    diff = sorted(set(a) ^ set(b))
    diff += [k for k in set(a) & set(b) if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    return diff


@torch.no_grad()
def check_encoder(hf: Any, model: Any, vocab: int, heads: dict[str, str], segments: int = 0,
                  **extra: torch.Tensor) -> None:
    """Every head (plmgraph name -> HF output field) and the last hidden state, with padding."""
    x, mask = ids(vocab), right_padded()
    kw: dict[str, Any] = dict(extra)
    if segments:
        kw["token_type_ids"] = torch.randint(0, segments, (B, T), generator=torch.Generator().manual_seed(3))
    ref = hf(input_ids=x, attention_mask=mask, **kw)
    base = hf.base_model(input_ids=x, attention_mask=mask, **kw)
    out = model(x, attention_mask=mask, **kw)
    close(out.last_hidden_state, base.last_hidden_state, "last_hidden_state", mask)
    for name, field in heads.items():
        got, want = out.head_outputs[name], getattr(ref, field)
        close(got, want, f"head {name} vs HF {field}", mask if got.dim() == 3 else None)
    assert torch.equal(out.logits, out.head_outputs[next(iter(heads))])


@torch.no_grad()
def check_decoder(hf: Any, model: Any, vocab: int, head: str = "lm", hf_cache: bool = True,
                  left_pad: bool = False) -> None:
    """Logits and last hidden state with right padding (`left_pad`: left), then one more token through
    the KV cache."""
    x, mask = ids(vocab), right_padded()
    if left_pad:
        mask = mask.flip(1)
    ref = hf(input_ids=x, attention_mask=mask, use_cache=hf_cache, output_hidden_states=True)
    out = model(x, attention_mask=mask, use_cache=True)
    close(out.head_outputs[head], ref.logits, "logits", mask)
    close(out.last_hidden_state, ref.hidden_states[-1], "last_hidden_state", mask)
    nxt = ids(vocab, t=1, seed=2)
    mask2 = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], 1)
    if hf_cache:
        ref2 = hf(input_ids=nxt, attention_mask=mask2, past_key_values=ref.past_key_values, use_cache=True).logits
    else:  # HF has no cache for this model: the reference is its full forward over all 8 tokens
        ref2 = hf(input_ids=torch.cat([x, nxt], 1), attention_mask=mask2).logits[:, -1:]
    out2 = model(nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True)
    close(out2.logits, ref2, "logits of the cached second step")
    assert out2.past_key_values[0][0].shape[2] == T + 1


@torch.no_grad()
def check_seq2seq(hf: Any, model: Any, vocab: int, head: str = "lm") -> None:
    """Encoder with padding, decoder logits and hidden state, then one decoder step through the cache."""
    x, mask = ids(vocab), right_padded()
    dec = ids(vocab, t=5, seed=4)
    ref = hf(input_ids=x, attention_mask=mask, decoder_input_ids=dec, use_cache=True, output_hidden_states=True)
    out = model(x, attention_mask=mask, decoder_input_ids=dec, use_cache=True)
    enc_keep = mask.bool()
    close(out.encoder_last_hidden_state[enc_keep], ref.encoder_last_hidden_state[enc_keep], "encoder output")
    close(out.head_outputs[head], ref.logits, "logits")
    close(out.last_hidden_state, ref.decoder_hidden_states[-1], "decoder last_hidden_state")
    nxt = ids(vocab, t=1, seed=5)
    ref2 = hf(encoder_outputs=(ref.encoder_last_hidden_state,), attention_mask=mask, decoder_input_ids=nxt,
              past_key_values=ref.past_key_values, use_cache=True).logits
    out2 = model(attention_mask=mask, decoder_input_ids=nxt, encoder_outputs=out.encoder_last_hidden_state,
                 past_key_values=out.past_key_values, use_cache=True)
    close(out2.logits, ref2, "logits of the cached second decoder step")


@torch.no_grad()
def check_bare(hf: Any, model: Any, vocab: int, decoder: bool = False, segments: int = 0) -> None:
    """A bare ``*Model``: no head, last_hidden_state with padding; decoders then one cached step."""
    x, mask = ids(vocab), right_padded()
    kw: dict[str, Any] = {}
    if segments:
        kw["token_type_ids"] = torch.randint(0, segments, (B, T), generator=torch.Generator().manual_seed(3))
    assert model.spec.heads == [] and "heads" not in {k.split(".")[0] for k in model.state_dict()}
    ref = hf(input_ids=x, attention_mask=mask, use_cache=decoder, **kw) if decoder else \
        hf(input_ids=x, attention_mask=mask, **kw)
    out = model(x, attention_mask=mask, use_cache=decoder, **kw)
    assert out.logits is None
    close(out.last_hidden_state, ref.last_hidden_state, "last_hidden_state", mask)
    if decoder:
        nxt = ids(vocab, t=1, seed=2)
        mask2 = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], 1)
        ref2 = hf(input_ids=nxt, attention_mask=mask2, past_key_values=ref.past_key_values, use_cache=True)
        out2 = model(nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True)
        close(out2.last_hidden_state, ref2.last_hidden_state, "last_hidden_state of the cached second step")


@torch.no_grad()
def check_token_classifier(hf: Any, model: Any, vocab: int) -> None:
    """``*ForTokenClassification``: per-token logits with padding."""
    x, mask = ids(vocab), right_padded()
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "token logits", mask)


@torch.no_grad()
def check_last_token_classifier(hf: Any, model: Any, vocab: int, pad: int = 0) -> None:
    """Decoder ``*ForSequenceClassification``: the last real token's logits (HF finds it by pad_token_id)."""
    x, mask = ids(vocab), right_padded()
    x = x.masked_fill(mask == 0, pad)
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "sequence logits")


def roundtrip(hf: Any, model: Any, tmp_path: Path, dead: tuple[str, ...] = ()) -> None:
    """to_hf writes the same architecture and weights back: HF loads it to the same state dict
    (`dead`: tensors HF builds but plmgraph does not import, e.g. a bare BertModel's pooler)."""
    import json

    pg.to_hf(model, tmp_path / "back")
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["model_type"] == hf.config.model_type and cfg["architectures"] == [type(hf).__name__]
    again = type(hf).from_pretrained(tmp_path / "back").eval()
    diff = [k for k in new_state_dict_equal(hf.state_dict(), again.state_dict()) if not k.startswith(dead)]
    assert diff == []
    assert pg.from_hf(tmp_path / "back").spec.model_dump(exclude={"name"}) == model.spec.model_dump(exclude={"name"})
