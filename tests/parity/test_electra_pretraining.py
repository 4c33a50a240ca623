"""ELECTRA's discriminator with its pre-training head, HF ``ElectraForPreTraining`` (the
``replaced_token_detection`` head, plmgraph/kinds/head/discriminator.py): a tiny random HF model in fp32, its
[B, T] replaced-token logits with padding, its loss (binary cross-entropy over the kept tokens), the HF round
trip, and the head through show / diff / draw; the head's activation follows ``hidden_act``."""

import pytest
import torch
import transformers as tf
from parity_util import check_encoder, close, ids, randomize, right_padded, roundtrip, save_and_import

import plmgraph as pg

V = 113


def _pair(tmp_path, **kw):
    torch.manual_seed(0)
    cfg = tf.ElectraConfig(vocab_size=V, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=48, max_position_embeddings=64, layer_norm_eps=1e-6, **kw)
    hf = tf.ElectraForPreTraining(cfg)
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_discriminator_logits_loss_and_roundtrip(tmp_path, act):
    hf, model = _pair(tmp_path, hidden_act=act)
    (head,) = model.spec.heads
    assert head.kind == "replaced_token_detection" and head.activation == act and head.bias
    assert model.spec.source == "Hugging Face ElectraForPreTraining"
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hf.parameters())
    check_encoder(hf, model, V, {"replaced_token_detection": "logits"}, segments=2)
    x, mask = ids(V), right_padded()
    with torch.no_grad():
        out = model(x, attention_mask=mask)
        ref = hf(input_ids=x, attention_mask=mask)
    assert out.logits.shape == ref.logits.shape == (2, 7)
    close(out.logits, ref.logits, "replaced-token logits", mask)
    # the loss: HF averages the BCE over the tokens attention_mask keeps; plmgraph over the labelled ones
    labels = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = hf(input_ids=x, attention_mask=mask, labels=labels).loss
        got = model(x, attention_mask=mask, labels=labels.masked_fill(mask == 0, -100)).loss
    close(got, want, "loss")
    roundtrip(hf, model, tmp_path)


def test_words_diagram_and_bad_labels(tmp_path):
    from plmgraph.errors import InputError

    _, model = _pair(tmp_path)
    spec = model.spec
    assert "replaced-token detection head" in " ".join(pg.diff("bert-base", spec).lines())
    assert "Replaced-token detection" in pg.draw(spec, tmp_path / "d.dot").read_text()
    x = ids(V)
    with pytest.raises(InputError, match=r"one 0/1 label per token, shape \(2, 7\); got \(2,\)"):
        model(x, labels=torch.zeros(2, dtype=torch.long))


def test_the_head_in_a_spec():
    """Written by hand on a zoo encoder: the head's parameters are the graph's and a forward gives [B, T]."""
    from plmgraph.spec import validate
    from plmgraph.spec.extends import Merged

    spec = validate(Merged({"plmgraph": 1, "name": "rtd", "family": "encoder", "position": {"kind": "learned"},
                            "sizes": {"vocab": 50, "hidden": 32, "layers": 1, "heads": 2, "max_positions": 16},
                            "heads": [{"kind": "replaced_token_detection", "activation": "gelu_tanh"}]}, file="x"))
    g = pg.resolve(spec)
    assert g.node("heads.replaced_token_detection")["params"] == {
        "dense.weight": (32, 32), "dense.bias": (32,), "proj.weight": (1, 32), "proj.bias": (1,)}
    model = pg.build(spec, seed=0).eval()
    assert model(torch.randint(0, 50, (3, 5))).logits.shape == (3, 5)
