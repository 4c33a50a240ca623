"""MPNet parity: learned absolute positions with RoBERTa's padding offset plus a T5-style bidirectional
relative bias computed once and shared by every layer (`position` + `relative_position`); every
architecture HF ships, a tiny random model in fp32 with padding, each round-tripped through to_hf; and the
bucket count HF's MPNet cannot honour, refused by name."""

import json

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_encoder,
    check_token_classifier,
    close,
    ids,
    randomize,
    right_padded,
    roundtrip,
    save_and_import,
)

import plmgraph as pg
from plmgraph.compile.hf_config import config_to_spec
from plmgraph.errors import ConversionError

V = 91


def config(**kw):
    # 40 positions: the 36-token case reaches distances past the 8 exact buckets of each direction
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                max_position_embeddings=40, layer_norm_eps=1e-6, num_labels=3, hidden_act="gelu")
    return tf.MPNetConfig(**{**base, **kw})


@pytest.mark.parametrize("arch", ["MPNetForMaskedLM", "MPNetForSequenceClassification", "MPNetForTokenClassification",
                                  "MPNetForQuestionAnswering", "MPNetModel"])
def test_mpnet(tmp_path, arch):
    torch.manual_seed(0)
    hf = getattr(tf, arch)(config(**({"num_labels": 2} if "Question" in arch else {})))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    spec = model.spec
    assert (spec.position.kind, spec.position.offset, spec.position.padding_aware) == ("learned", 2, True)
    assert (spec.relative_position.kind, spec.relative_position.buckets) == ("t5_relative", 32)
    assert "encoder.position.weight" in dict(model.named_parameters())  # one bias table for all layers
    if arch == "MPNetForMaskedLM":
        check_encoder(hf, model, V, {"mlm": "logits"})
        # the graph's parameter count (stats) is HF's, the tied embedding and bias once
        assert pg.resolve(spec).num_params() == sum(p.numel() for p in hf.parameters())
        with torch.no_grad():  # long enough for the log-spaced buckets
            x, mask = ids(V, t=36), right_padded(t=36, pad=9)
            close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "36 tokens",
                  mask)
    elif arch == "MPNetForSequenceClassification":
        check_encoder(hf, model, V, {"sequence_classification": "logits"})
    elif arch == "MPNetForTokenClassification":
        check_token_classifier(hf, model, V)
    elif arch == "MPNetForQuestionAnswering":
        x, mask = ids(V), right_padded()
        with torch.no_grad():
            ref, out = hf(input_ids=x, attention_mask=mask), model(x, attention_mask=mask)
        close(out.logits[..., 0], ref.start_logits, "start logits", mask)
        close(out.logits[..., 1], ref.end_logits, "end logits", mask)
    else:
        check_bare(hf, model, V)
    roundtrip(hf, model, tmp_path, dead=("pooler.",) if arch == "MPNetModel" else ())


@torch.no_grad()
def test_mpnet_multiple_choice(tmp_path):
    torch.manual_seed(0)
    hf = tf.MPNetForMultipleChoice(config())
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    B, C, T = 2, 3, 6
    x = ids(V, B * C, T).reshape(B, C, T)
    mask = torch.ones(B, C, T, dtype=torch.long)
    mask[0, 1, -2:] = 0
    close(model(x, attention_mask=mask).logits, hf(input_ids=x, attention_mask=mask).logits, "choice scores")
    roundtrip(hf, model, tmp_path)


def test_mpnet_other_bucket_count_is_refused():
    cfg = config(relative_attention_num_buckets=16).to_dict()
    cfg["architectures"] = ["MPNetForMaskedLM"]
    with pytest.raises(ConversionError, match="relative_attention_num_buckets = 16.*supported: 32"):
        config_to_spec(json.loads(json.dumps(cfg)))
