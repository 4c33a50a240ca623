"""The BERT family's encoders run as causal decoders (config ``is_decoder: true``, HF's causal mask):
``BertLMHeadModel``, ``RobertaForCausalLM``, ``XLMRobertaForCausalLM``, ``CamembertForCausalLM``,
``ErnieForCausalLM`` (with its task-type embedding), ``ElectraForCausalLM`` (its own embedding width).
plmgraph imports them as family ``decoder`` (post-norm blocks, learned positions, RoBERTa's padding offset,
segments, embedding norm) with an ``lm`` head made of the MLM head's transform and projection.

fp32 parity against tiny random HF models with right and left padding and segments, one step through the KV
cache equal to HF's full forward over all tokens (and to HF's own cached step), the to_hf round trip
(is_decoder true, the same architecture), and the configs plmgraph refuses by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import B, T, close, ids, randomize, right_padded, roundtrip, save_and_import

from plmgraph.compile.hf import spec_from_hf
from plmgraph.errors import ConversionError

V = 91
BASE = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, type_vocab_size=3, is_decoder=True, pad_token_id=1)
# (class, config class, extra config, padding-aware positions)
CASES = {
    "bert": (tf.BertLMHeadModel, tf.BertConfig, dict(hidden_act="gelu_new"), False),
    "roberta": (tf.RobertaForCausalLM, tf.RobertaConfig, dict(hidden_act="relu"), True),
    "xlm-roberta": (tf.XLMRobertaForCausalLM, tf.XLMRobertaConfig, {}, True),
    "camembert": (tf.CamembertForCausalLM, tf.CamembertConfig, {}, True),
    "ernie": (tf.ErnieForCausalLM, tf.ErnieConfig, dict(use_task_id=True, task_type_vocab_size=4), False),
    "electra": (tf.ElectraForCausalLM, tf.ElectraConfig, dict(embedding_size=24, hidden_act="gelu_new"), False),
}


def _pair(name, tmp_path, **over):
    cls, cfg_cls, extra, _ = CASES[name]
    torch.manual_seed(0)
    hf = cls(cfg_cls(**{**BASE, **extra, **over}))
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


def _inputs(name, mask):
    """ids (pad_token_id where the mask is 0: RoBERTa's positions skip them), segments, ERNIE's task types."""
    x = ids(V)
    x[mask == 0] = BASE["pad_token_id"]
    g = torch.Generator().manual_seed(3)
    kw = {"token_type_ids": torch.randint(0, 3, x.shape, generator=g)}
    if name == "ernie":
        kw["task_type_ids"] = torch.randint(0, 4, x.shape, generator=g)
    return x, kw


@pytest.mark.parametrize("name", list(CASES))
def test_causal_import_spec(name, tmp_path):
    hf, model = _pair(name, tmp_path)
    s = model.spec
    assert s.family == "decoder" and s.block.attention.mask == "causal" and s.block.placement == "post"
    assert s.embeddings.segments == 3 and s.embeddings.norm
    assert [h.kind for h in s.heads] == ["lm"] and s.heads[0].transform is not None and s.heads[0].bias
    assert (s.position.offset, s.position.padding_aware) == ((2, True) if CASES[name][3] else (0, False))


@pytest.mark.parametrize("left", [False, True], ids=["right_pad", "left_pad"])
@pytest.mark.parametrize("name", list(CASES))
@torch.no_grad()
def test_causal_parity_and_cache(name, left, tmp_path):
    hf, model = _pair(name, tmp_path)
    mask = right_padded()
    if left:
        mask = mask.flip(1)
    x, kw = _inputs(name, mask)
    ref = hf(input_ids=x, attention_mask=mask, use_cache=True, output_hidden_states=True, **kw)
    out = model(x, attention_mask=mask, use_cache=True, **kw)
    close(out.logits, ref.logits, "logits", mask)
    close(out.last_hidden_state, ref.hidden_states[-1], "last_hidden_state", mask)
    # the causal mask is real: a later token changes no earlier logit, and changes the last one
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1 - 3) % (V - 3) + 3
    again = model(y, attention_mask=mask, **kw).logits
    keep = mask[:, :-1].bool()  # (a padded position's output is garbage, as in HF)
    torch.testing.assert_close(again[:, :-1][keep], out.logits[:, :-1][keep], rtol=0, atol=0)
    assert not torch.allclose(again[:, -1], out.logits[:, -1])
    # one more token through the cache == HF's full forward over all T + 1 tokens
    nxt = ids(V, t=1, seed=2)
    mask2 = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], 1)
    kw2 = {k: v[:, -1:] for k, v in kw.items()}
    full = hf(input_ids=torch.cat([x, nxt], 1), attention_mask=mask2,
              **{k: torch.cat([v, kw2[k]], 1) for k, v in kw.items()}).logits[:, -1:]
    out2 = model(nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True, **kw2)
    close(out2.logits, full, "logits of the cached step vs HF's full forward")
    assert out2.past_key_values[0][0].shape[2] == T + 1
    if not CASES[name][3] or not left and mask.all():
        # HF's own cached step (RoBERTa's cached positions count the cache, not the padding: unpadded only)
        ref2 = hf(input_ids=nxt, attention_mask=mask2, past_key_values=ref.past_key_values, use_cache=True,
                  **kw2).logits
        close(out2.logits, ref2, "logits of the cached step vs HF's cached step")


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][3]])
@torch.no_grad()
def test_causal_cache_unpadded_roberta_like(name, tmp_path):
    hf, model = _pair(name, tmp_path)
    mask = torch.ones(B, T, dtype=torch.long)
    x, kw = _inputs(name, mask)
    ref = hf(input_ids=x, attention_mask=mask, use_cache=True, **kw)
    out = model(x, attention_mask=mask, use_cache=True, **kw)
    nxt, mask2 = ids(V, t=1, seed=2), torch.ones(B, T + 1, dtype=torch.long)
    kw2 = {k: v[:, -1:] for k, v in kw.items()}
    ref2 = hf(input_ids=nxt, attention_mask=mask2, past_key_values=ref.past_key_values, use_cache=True, **kw2)
    out2 = model(nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True, **kw2)
    close(out2.logits, ref2.logits, "logits of the cached step vs HF's cached step")


@pytest.mark.parametrize("name", list(CASES))
def test_causal_roundtrip(name, tmp_path):
    hf, model = _pair(name, tmp_path)
    roundtrip(hf, model, tmp_path)
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["is_decoder"] is True and cfg.get("add_cross_attention", False) is False


def test_causal_untied_bert(tmp_path):
    hf, model = _pair("bert", tmp_path, tie_word_embeddings=False)
    assert not model.spec.heads[0].tie_embeddings
    x, mask = ids(V), right_padded()
    with torch.no_grad():
        close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "logits", mask)
    # untied, HF keeps a second bias `cls.predictions.bias` forward never reads (decoder.bias is added)
    roundtrip(hf, model, tmp_path, dead=("cls.predictions.bias",))


def _write(tmp_path, name, arch=None, **over):
    cls, cfg_cls, extra, _ = CASES[name]
    cfg = cfg_cls(**{**BASE, **extra, **over}).to_dict()
    cfg["architectures"] = [arch or cls.__name__]
    d = tmp_path / "cfg"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("name", ["bert", "roberta", "electra"])
def test_causal_refusals(name, tmp_path):
    cls = CASES[name][0].__name__
    with pytest.raises(ConversionError, match=rf"{cls} with is_decoder = False .*bidirectionally"):
        spec_from_hf(_write(tmp_path, name, is_decoder=False))
    with pytest.raises(ConversionError, match=r"add_cross_attention = True is not supported"):
        spec_from_hf(_write(tmp_path, name, add_cross_attention=True))
    base = {"bert": "BertModel", "roberta": "RobertaModel", "electra": "ElectraModel"}[name]
    with pytest.raises(ConversionError, match=rf"is_decoder = True is not supported with {base}"):
        spec_from_hf(_write(tmp_path, name, arch=base))


def test_causal_electra_untied_narrow_embeddings_refused(tmp_path):
    # its vocabulary projection reads embedding_size (24), which an untied plmgraph lm head cannot express
    with pytest.raises(ConversionError, match=r"tie_word_embeddings = false and embedding_size != hidden_size"):
        spec_from_hf(_write(tmp_path, "electra", tie_word_embeddings=False))
