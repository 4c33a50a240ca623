"""GLM (Du et al. 2022): the prefix (blank-infilling) mask, 2D positions, the blank-infilling
data helper, KV-cache decoding after the prefix, and torch.export with prefix_lengths."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from torch.export import Dim, export

from plmgraph.compile import build
from plmgraph.compile.glm import prefix_visible
from plmgraph.errors import InputError
from plmgraph.objectives import blank_infilling, sample_spans
from plmgraph.spec import load_spec

MASK, SOP, EOP = 3, 4, 5


@pytest.fixture(scope="module")
def glm():
    return build(tiny("glm"), seed=0).eval()


def ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(6, 128, shape, generator=torch.Generator().manual_seed(seed))


def with_mask(model, mask: str):  # noqa: ANN001, ANN201
    """The same weights, compiled with another attention mask (a spec override; tiny() writes the
    decoder's block out, so the override names it). Blank infilling needs the prefix mask, so the
    other masks' specs declare no objective."""
    spec = load_spec(model.spec, [f"decoder.block.attention.mask={mask}", "objectives=[]"])
    assert spec.stacks["decoder"].block.attention.mask == mask
    other = build(spec, seed=1).eval()
    other.load_state_dict(model.state_dict())
    return other


# ------------------------------------------------------------------ the prefix mask


def test_prefix_mask_matches_reference_build_mask_matrix():
    # THUDM/GLM build_mask_matrix: tril(ones), then every column < sep set to 1
    T, sep = 7, torch.tensor([0, 3, 7])
    want = torch.tril(torch.ones(T, T)).expand(3, T, T).clone()
    for b, s in enumerate(sep.tolist()):
        want[b, :, :s] = 1
    got = prefix_visible(torch.arange(T), torch.arange(T), sep)
    assert torch.equal(got[:, 0], want.bool())


def test_part_b_token_changes_nothing_before_it(glm):
    x, sep = ids(2, 10), torch.tensor([4, 6])
    base = glm(x, prefix_lengths=sep).last_hidden_state
    for j in (6, 8):  # Part B of both sequences
        y = x.clone()
        y[:, j] = (y[:, j] + 1 - 6) % 122 + 6
        out = glm(y, prefix_lengths=sep).last_hidden_state
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=0)  # Part A and earlier Part B
        assert not torch.allclose(out[:, j], base[:, j])  # the token itself


def test_part_a_token_is_seen_by_all_of_part_a(glm):
    x, sep = ids(2, 10), torch.tensor([4, 6])
    base = glm(x, prefix_lengths=sep).last_hidden_state
    y = x.clone()
    y[0, 3], y[1, 5] = y[0, 3] % 120 + 7, y[1, 5] % 120 + 7  # last Part A token of each sequence
    out = glm(y, prefix_lengths=sep).last_hidden_state
    for b in range(2):
        for i in range(10):  # every output, including the Part A ones before the change
            assert not torch.allclose(out[b, i], base[b, i]), (b, i)


def test_prefix_t_is_bidirectional_and_prefix_0_is_causal(glm):
    x, T = ids(2, 9), 9
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, 7:] = 0  # combined with padding
    bidir, causal = with_mask(glm, "bidirectional"), with_mask(glm, "causal")
    full = glm(x, attention_mask=mask, prefix_lengths=torch.full((2,), T)).logits
    torch.testing.assert_close(full, bidir(x, attention_mask=mask).logits)
    none = glm(x, attention_mask=mask, prefix_lengths=torch.zeros(2, dtype=torch.long)).logits
    torch.testing.assert_close(none, causal(x, attention_mask=mask).logits)
    # and one sequence of each in the same batch: the rows are independent
    mixed = glm(x, attention_mask=mask, prefix_lengths=torch.tensor([T, 0])).logits
    torch.testing.assert_close(mixed[0], full[0])
    torch.testing.assert_close(mixed[1], none[1])


def test_padding_keys_are_hidden(glm):
    x, sep = ids(2, 8), torch.tensor([3, 3])
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0
    out = glm(x, attention_mask=mask, prefix_lengths=sep).logits
    alone = glm(x[1:, :6], prefix_lengths=sep[1:]).logits
    torch.testing.assert_close(out[1, :6], alone[0])


# ---------------------------------------------------------------------- 2D positions


def test_2d_positions_are_the_sum_of_the_two_tables(glm):
    x = ids(2, 6)
    pos = torch.tensor([[0, 1, 2, 3, 3, 3], [0, 1, 2, 3, 1, 1]])
    block = torch.tensor([[0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 1, 2]])
    p = dict(glm.named_parameters())
    assert p["decoder.embed.position.weight"].shape == p["decoder.embed.position.block_weight"].shape == (64, 64)
    want = p["embed.token.weight"][x] + p["decoder.embed.position.weight"][pos] + \
        p["decoder.embed.position.block_weight"][block]
    seen = {}
    hook = glm.decoder.embed.register_forward_hook(lambda m, a, out: seen.update(x=out))
    try:
        glm(x, position_ids=torch.stack((pos, block), dim=1), prefix_lengths=torch.tensor([4, 4]))
    finally:
        hook.remove()
    torch.testing.assert_close(seen["x"], want)


def test_default_positions_are_plain_text(glm):
    x, sep = ids(2, 6), torch.tensor([2, 5])
    plain = torch.stack((torch.arange(6), torch.zeros(6, dtype=torch.long)))[None].expand(2, 2, 6)
    torch.testing.assert_close(glm(x, prefix_lengths=sep).logits,
                               glm(x, position_ids=plain, prefix_lengths=sep).logits)
    moved = plain.clone()
    moved[:, 1, 3:] = 1  # a block position changes the output
    assert not torch.allclose(glm(x, position_ids=moved, prefix_lengths=sep).logits,
                              glm(x, prefix_lengths=sep).logits)


@pytest.mark.parametrize(("kw", "match"), [
    ({}, "pass prefix_lengths"),
    ({"prefix_lengths": torch.tensor([1, 2, 3])}, r"prefix_lengths must have shape \[batch\] = \(2,\)"),
    ({"prefix_lengths": torch.tensor([1.0, 2.0])}, "integer tensor"),
    ({"prefix_lengths": torch.tensor([1, 6])}, r"contains 6, outside \[0, 5\]"),
    ({"prefix_lengths": torch.tensor([1, 1]), "position_ids": torch.zeros(2, 5, dtype=torch.long)},
     r"\[batch, 2, seq\] = \(2, 2, 5\)"),
    ({"prefix_lengths": torch.tensor([1, 1]), "position_ids": torch.full((2, 2, 5), 64)},
     r"contains 64, outside \[0, 64\)"),
])
def test_bad_glm_inputs_raise_clear_errors(glm, kw, match):
    with pytest.raises(InputError, match=match):
        glm(ids(2, 5), **kw)


def test_prefix_lengths_on_other_models_is_an_error():
    with pytest.raises(InputError, match="attention mask is not 'prefix'"):
        build(tiny("gpt2"), seed=0)(ids(1, 4), prefix_lengths=torch.tensor([2]))


# ------------------------------------------------------------------ the data helper


def test_blank_infilling_reproduces_the_paper_example():
    x = [11, 12, 13, 14, 15, 16]  # x1 .. x6; blanks [x3] and [x5, x6], Part B order as in Figure 2
    b = blank_infilling([x], [[(4, 6), (2, 3)]], mask_id=MASK, sop_id=SOP, eop_id=EOP)
    M, S, E, x1, x2, x3, x4, x5, x6, _ = MASK, SOP, EOP, *x, None
    assert b.input_ids.tolist() == [[x1, x2, M, x4, M, S, x5, x6, S, x3]]
    assert b.labels.tolist() == [[-100] * 5 + [x5, x6, E, x3, E]]
    # Figure 2's Position 1 and Position 2 (1-based there, 0-based here)
    assert (b.position_ids[0, 0] + 1).tolist() == [1, 2, 3, 4, 5, 5, 5, 5, 3, 3]
    assert b.position_ids[0, 1].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]
    assert b.prefix_lengths.tolist() == [5]
    assert b.attention_mask.tolist() == [[1] * 10]


def test_blank_infilling_pads_shuffles_and_runs(glm):
    rows = [list(range(20, 32)), list(range(40, 47))]
    spans = [[(1, 3), (5, 6), (8, 11)], [(2, 4)]]
    b = blank_infilling(rows, spans, mask_id=MASK, sop_id=SOP, eop_id=EOP, generator=torch.Generator().manual_seed(1))
    assert b.input_ids.shape == (2, 9 + 9)  # 12 - 6 + 3 masks, + 6 span tokens + 3 starts
    assert b.prefix_lengths.tolist() == [9, 6]
    n = int(b.attention_mask[1].sum())
    assert n == 6 + 3 and (b.labels[1, n:] == -100).all() and (b.input_ids[1, n:] == 0).all()
    # every span is in Part B once, behind a [START], at its [MASK]'s position
    starts = (b.input_ids[0] == SOP).nonzero().flatten().tolist()
    got = sorted(tuple(b.input_ids[0, s + 1:e].tolist()) for s, e in zip(starts, [*starts[1:], 18], strict=True))
    assert got == sorted(tuple(rows[0][s:e]) for s, e in spans[0])
    for s in starts:
        assert b.input_ids[0, b.position_ids[0, 0, s]] == MASK
    # the padded row is the row alone
    out = glm(b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
              prefix_lengths=b.prefix_lengths).logits
    one = blank_infilling(rows[1:], spans[1:], mask_id=MASK, sop_id=SOP, eop_id=EOP)
    alone = glm(one.input_ids, position_ids=one.position_ids, prefix_lengths=one.prefix_lengths).logits
    torch.testing.assert_close(out[1, :n], alone[0])
    loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), b.labels.flatten(), ignore_index=-100)
    assert torch.isfinite(loss)


def test_blank_infilling_refuses_bad_spans():
    with pytest.raises(InputError, match=r"span \(2, 5\) must be non-empty"):
        blank_infilling([[1, 2, 3, 4]], [[(2, 5)]], mask_id=MASK, sop_id=SOP, eop_id=EOP)
    with pytest.raises(InputError, match="not overlap"):
        blank_infilling([[1, 2, 3, 4]], [[(0, 2), (1, 3)]], mask_id=MASK, sop_id=SOP, eop_id=EOP)


def test_sample_spans_covers_the_rate_without_touching():
    g = torch.Generator().manual_seed(0)
    for length in (2, 7, 40, 200):
        spans = sample_spans(length, rate=0.15, poisson_lambda=3.0, generator=g)
        assert sum(e - s for s, e in spans) == max(1, round(0.15 * length))
        assert all(0 <= s < e <= length for s, e in spans)
        assert all(e < s2 for (_, e), (s2, _) in zip(spans, spans[1:], strict=False))  # a kept token between


# ------------------------------------------------------------------------- KV cache


def test_cached_decoding_after_the_prefix_equals_the_full_forward(glm):
    x, sep, T = ids(2, 11), torch.tensor([4, 6]), 11
    pos = torch.stack((torch.arange(T), torch.zeros(T, dtype=torch.long)))[None].repeat(2, 1, 1)
    pos[:, 0, 7:], pos[:, 1, 7:] = 3, torch.arange(1, 5)  # a span decoded at Part A position 3
    full = glm(x, position_ids=pos, prefix_lengths=sep).logits
    first = 7  # the first call holds the whole prefix (and more)
    out = glm(x[:, :first], position_ids=pos[..., :first], prefix_lengths=sep, use_cache=True)
    torch.testing.assert_close(out.logits, full[:, :first])
    # two tokens at once without prefix_lengths (causal between them), then one at a time
    two = glm(x[:, first:first + 2], position_ids=pos[..., first:first + 2], past_key_values=out.past_key_values,
              use_cache=True)
    torch.testing.assert_close(two.logits, full[:, first:first + 2])
    past = two.past_key_values
    for t in range(first + 2, T):
        kw = {"prefix_lengths": sep} if t % 2 else {}  # optional once past the prefix
        step = glm(x[:, t:t + 1], position_ids=pos[..., t:t + 1], past_key_values=past, use_cache=True, **kw)
        torch.testing.assert_close(step.logits[:, 0], full[:, t])
        past = step.past_key_values


def test_cached_call_must_not_extend_the_prefix(glm):
    past = glm(ids(1, 3), prefix_lengths=torch.tensor([3]), use_cache=True).past_key_values
    with pytest.raises(InputError, match="reaches past the cache"):
        glm(ids(1, 2), past_key_values=past, prefix_lengths=torch.tensor([4]))


# ------------------------------------------------------------------------ torch.export


def test_export_with_dynamic_batch_and_seq(glm):
    B, T = Dim("batch", min=1, max=16), Dim("seq", min=2, max=32)
    kw = {"input_ids": ids(2, 6), "attention_mask": torch.ones(2, 6, dtype=torch.long),
          "position_ids": torch.stack((torch.arange(6), torch.zeros(6, dtype=torch.long)))[None].repeat(2, 1, 1),
          "prefix_lengths": torch.tensor([2, 4])}
    shapes = {"input_ids": {0: B, 1: T}, "attention_mask": {0: B, 1: T}, "position_ids": {0: B, 2: T},
              "prefix_lengths": {0: B}}
    ep = export(glm, (), kw, dynamic_shapes=shapes)
    b = blank_infilling([list(range(20, 32)), list(range(40, 47)), [7, 8, 9]], [[(1, 3), (8, 11)], [(2, 4)], [(1, 2)]],
                        mask_id=MASK, sop_id=SOP, eop_id=EOP)
    other = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "position_ids": b.position_ids,
             "prefix_lengths": b.prefix_lengths}
    torch.testing.assert_close(ep.module()(**other).logits, glm(**other).logits)
