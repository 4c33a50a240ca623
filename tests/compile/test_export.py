"""torch.export with dynamic batch, sequence and past length on a tiny encoder, decoder and encoder-decoder."""

from __future__ import annotations

import torch
from helpers import tiny
from torch.export import Dim, export

from plmgraph.compile import build

B, T, U, P = (Dim("batch", min=1, max=64), Dim("seq", min=1, max=32), Dim("tgt", min=1, max=32),
              Dim("past", min=1, max=32))


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(0, 128, shape, generator=torch.Generator().manual_seed(sum(shape)))


def test_export_encoder():
    model = build(tiny("bert-base"), seed=0).eval()
    kw = {"input_ids": ids(2, 5), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    ep = export(model, (), kw, dynamic_shapes={"input_ids": {0: B, 1: T}, "attention_mask": {0: B, 1: T}})
    other = {"input_ids": ids(3, 9), "attention_mask": torch.ones(3, 9, dtype=torch.long)}
    other["attention_mask"][0, 6:] = 0
    torch.testing.assert_close(ep.module()(**other).logits, model(**other).logits)


class Step(torch.nn.Module):
    """One decoding step with a cache: (ids, mask, past) -> (logits, present)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, past_key_values):  # noqa: ANN001, ANN201
        out = self.model(input_ids, attention_mask=attention_mask, past_key_values=past_key_values, use_cache=True)
        return out.logits, out.past_key_values


def test_export_decoder_with_cache():
    model = build(tiny("llama2-7b"), seed=0).eval()
    past = model(ids(2, 3), use_cache=True).past_key_values
    args = (ids(2, 4), torch.ones(2, 7, dtype=torch.long), past)
    shapes = ({0: B, 1: T}, {0: B, 1: Dim.AUTO}, tuple(({0: B, 2: P}, {0: B, 2: P}) for _ in past))
    ep = export(Step(model), args, dynamic_shapes=shapes)
    past2 = model(ids(3, 6), use_cache=True).past_key_values
    new, mask = ids(3, 2), torch.ones(3, 8, dtype=torch.long)
    got_logits, got_past = ep.module()(new, mask, past2)
    want = model(new, attention_mask=mask, past_key_values=past2, use_cache=True)
    torch.testing.assert_close(got_logits, want.logits)
    torch.testing.assert_close(got_past[1][0], want.past_key_values[1][0])


def test_export_encoder_decoder():
    model = build(tiny("t5-small"), seed=0).eval()
    kw = {"input_ids": ids(2, 5), "attention_mask": torch.ones(2, 5, dtype=torch.long),
          "decoder_input_ids": ids(2, 3)}
    shapes = {"input_ids": {0: B, 1: T}, "attention_mask": {0: B, 1: T}, "decoder_input_ids": {0: B, 1: U}}
    ep = export(model, (), kw, dynamic_shapes=shapes)
    other = {"input_ids": ids(1, 8), "attention_mask": torch.ones(1, 8, dtype=torch.long),
             "decoder_input_ids": ids(1, 6)}
    got = ep.module()(**other)
    want = model(**other)
    torch.testing.assert_close(got.logits, want.logits)
    torch.testing.assert_close(got.encoder_last_hidden_state, want.encoder_last_hidden_state)
