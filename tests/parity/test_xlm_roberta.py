"""XLM-RoBERTa and CamemBERT parity: RoBERTa's architecture under their own model_types; every architecture
(masked LM, sequence and token classification, the bare model), each round-tripped through to_hf."""

import pytest
import torch
import transformers as tf
from parity_util import check_bare, check_encoder, check_token_classifier, randomize, roundtrip, save_and_import

HEADS = {"XLMRobertaForMaskedLM": {"mlm": "logits"},
         "XLMRobertaForSequenceClassification": {"sequence_classification": "logits"}}


def config(cls=tf.XLMRobertaConfig, **kw):
    return cls(vocab_size=91, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=40, max_position_embeddings=34, type_vocab_size=1, pad_token_id=1,
                               layer_norm_eps=1e-6, **kw)


@pytest.mark.parametrize("arch", ["XLMRobertaForMaskedLM", "XLMRobertaForSequenceClassification",
                                  "XLMRobertaForTokenClassification", "XLMRobertaModel"])
def test_xlm_roberta(tmp_path, arch):
    torch.manual_seed(0)
    hf = getattr(tf, arch)(config(num_labels=3))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    assert model.spec.position.offset == 2
    if arch in HEADS:
        check_encoder(hf, model, 91, HEADS[arch])
    elif arch == "XLMRobertaModel":
        check_bare(hf, model, 91)
    else:
        check_token_classifier(hf, model, 91)
    roundtrip(hf, model, tmp_path, dead=("pooler.",) if arch == "XLMRobertaModel" else ())


@pytest.mark.parametrize("arch", ["CamembertForMaskedLM", "CamembertForSequenceClassification",
                                  "CamembertForTokenClassification", "CamembertModel"])
def test_camembert(tmp_path, arch):
    torch.manual_seed(0)
    hf = getattr(tf, arch)(config(tf.CamembertConfig, num_labels=3))
    randomize(hf)
    model = save_and_import(hf, tmp_path / "hf")
    key = arch.replace("Camembert", "XLMRoberta")
    if key in HEADS:
        check_encoder(hf, model, 91, HEADS[key])
    elif arch == "CamembertModel":
        check_bare(hf, model, 91)
    else:
        check_token_classifier(hf, model, 91)
    roundtrip(hf, model, tmp_path, dead=("pooler.",) if arch == "CamembertModel" else ())
