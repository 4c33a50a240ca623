"""XLNet parity: two-stream relative attention (content and query streams), segment biases,
padding, permutation masks, target mappings and the segment memory (``mems``), against HF
``XLNetLMHeadModel``; and the checkpoint written back by `to_hf` loads into HF unchanged."""

import pytest
import torch
import transformers as tf
from parity_util import B, T, close, ids, randomize, right_padded, save_and_import

import plmgraph as pg

V = 101


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tf.XLNetConfig(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=64, ff_activation="gelu",
                         layer_norm_eps=1e-6, mem_len=None, clamp_len=-1)
    hf = tf.XLNetLMHeadModel(cfg)
    randomize(hf)  # every parameter, the r/s/w biases, seg_embed and mask_emb included
    model = save_and_import(hf, tmp_path_factory.mktemp("xlnet"))
    return hf, model


def segments() -> torch.Tensor:
    # two segments and XLNet's <cls> segment id 2 (only equality matters to the segment term)
    return torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 2]])


def permutation(seed: int = 7, predict: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A random factorisation order per row: perm_mask[b, i, j] = 1 where j is not before i in the
    order (so not i itself either); the last `predict` tokens of the order are the targets."""
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(T, generator=g) for _ in range(B)])  # order[b, pos] = rank
    perm = (order[:, None, :] >= order[:, :, None]).float()  # [B, T, T]
    targets = order.argsort(dim=1)[:, -predict:]  # positions with the highest ranks
    mapping = torch.nn.functional.one_hot(targets, T).float()  # [B, predict, T]
    return perm, mapping


def test_spec_from_config(pair):
    _, model = pair
    s = model.spec
    assert s.block.attention.kind == "two_stream" and s.position.kind == "xl_relative"
    assert s.block.placement == "post" and s.embeddings.mask_token and s.heads[0].tie_embeddings
    assert model.num_params() == sum(p.numel() for p in pair[0].parameters())


@torch.no_grad()
def test_content_stream_logits_with_segments_and_padding(pair):
    hf, model = pair
    x, mask = ids(V), right_padded()
    ref = hf(input_ids=x, token_type_ids=segments(), attention_mask=mask, use_mems=False)
    out = model(x, token_type_ids=segments(), attention_mask=mask)
    close(out.logits, ref.logits, "content-stream logits")
    close(model(x).logits, hf(input_ids=x, use_mems=False).logits, "logits without segments or mask")


@torch.no_grad()
def test_query_stream_logits_with_perm_mask_and_target_mapping(pair):
    hf, model = pair
    x, mask = ids(V), right_padded()
    perm, mapping = permutation()
    kw = dict(token_type_ids=segments(), attention_mask=mask, perm_mask=perm, target_mapping=mapping)
    ref = hf(input_ids=x, use_mems=False, **kw)
    out = model(x, **kw)
    assert out.logits.shape == (B, 2, V)
    close(out.logits, ref.logits, "query-stream logits")
    close(out.last_hidden_state, hf.transformer(input_ids=x, use_mems=False, **kw).last_hidden_state,
          "query-stream hidden state")
    # perm_mask alone (no target mapping): the content stream under the permutation, as HF
    close(model(x, perm_mask=perm).logits, hf(input_ids=x, perm_mask=perm, use_mems=False).logits,
          "content-stream logits under perm_mask")


@torch.no_grad()
def test_second_segment_through_mems(pair):
    hf, model = pair
    x = ids(V)
    ref = hf(input_ids=x, token_type_ids=segments(), use_mems=True)
    out = model(x, token_type_ids=segments(), use_cache=True)
    assert len(out.past_key_values) == 2
    for mine, theirs in zip(out.past_key_values, ref.mems, strict=True):
        close(mine, theirs.transpose(0, 1), "memory")
    nxt = ids(V, t=3, seed=2)
    tt = torch.ones(B, 3, dtype=torch.long)
    perm, mapping = torch.zeros(B, 3, 3), torch.zeros(B, 1, 3)
    perm[:, :, -1] = 1.0  # nobody sees the last token; predict it from the memory and the rest
    mapping[:, 0, -1] = 1.0
    ref2 = hf(input_ids=nxt, token_type_ids=tt, mems=ref.mems, use_mems=True)
    out2 = model(nxt, token_type_ids=tt, past_key_values=out.past_key_values, use_cache=True)
    close(out2.logits, ref2.logits, "logits of the second segment")
    assert out2.past_key_values[0].shape == (B, T + 3, 32)
    ref3 = hf(input_ids=nxt, mems=ref.mems, perm_mask=perm, target_mapping=mapping, use_mems=True)
    out3 = model(nxt, past_key_values=out.past_key_values, perm_mask=perm, target_mapping=mapping)
    close(out3.logits, ref3.logits, "query-stream logits over the memory")


@torch.no_grad()
def test_to_hf_round_trip(pair, tmp_path):
    hf, model = pair
    pg.to_hf(model, tmp_path)
    back = tf.XLNetLMHeadModel.from_pretrained(tmp_path).eval()
    x = ids(V)
    close(back(input_ids=x, token_type_ids=segments(), use_mems=False).logits,
          hf(input_ids=x, token_type_ids=segments(), use_mems=False).logits, "exported checkpoint in HF")
