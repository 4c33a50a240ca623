"""`plmgraph.compile.hf_types`: one registered module per Hugging Face model_type, and a
`find_family` that skips only the families that refuse a spec (a bug in a table propagates)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest
from helpers import tiny

import plmgraph as pg
from plmgraph.compile import hf_types
from plmgraph.compile.hf_types import FAMILIES, config_to_spec, find_family, spec_to_config
from plmgraph.errors import ConversionError
from plmgraph.spec import zoo_names


def test_every_type_module_is_registered_under_its_model_type():
    found = {}
    for m in pkgutil.iter_modules(hf_types.__path__):
        mod = importlib.import_module(f"{hf_types.__name__}.{m.name}")
        if hasattr(mod, "FAMILY"):
            found[m.name] = mod.FAMILY
    assert found, "no type module found"
    for name, fam in found.items():
        assert name == fam.model_type.replace("-", "_")
        assert FAMILIES[fam.model_type] is fam, f"{name}.py is not in hf_types._MODULES"
    assert set(FAMILIES) == {f.model_type for f in found.values()}


def test_every_family_names_its_weights():
    for mt, fam in FAMILIES.items():
        assert fam.names and fam.archs, mt


@pytest.mark.parametrize("name", zoo_names())
def test_find_family_answers_or_refuses_every_zoo_spec(name):
    """Trying every family on every zoo spec raises nothing but ConversionError."""
    try:
        find_family(pg.load_spec(name))
    except ConversionError:
        pass


@pytest.mark.parametrize(
    ("spec", "model_type", "arch", "match"),
    [
        ("gpt2", "llama", "LlamaForCausalLM", r"llama cannot express position kind 'learned'"),
        ("llama2-7b", "roberta", "RobertaForMaskedLM", r"roberta cannot express position kind 'rope'"),
        ("mixtral-8x7b", "t5", "T5ForConditionalGeneration", r"t5 cannot express mlp kind 'moe'"),
    ],
)
def test_unhooks_refuse_what_their_family_cannot_write(spec, model_type, arch, match):
    with pytest.raises(ConversionError, match=match):
        spec_to_config(tiny(spec), model_type, arch)


def test_find_family_propagates_a_bug_in_a_reverse_mapping(monkeypatch):
    def broken(spec, cfg):
        raise KeyError("n_ctx")  # what a typo in an unhook looks like

    monkeypatch.setitem(FAMILIES, "gpt2", dataclasses.replace(FAMILIES["gpt2"], unhook=broken))
    with pytest.raises(KeyError, match="n_ctx"):
        find_family(tiny("gpt2"))


def test_t5_writes_d_kv_when_the_spec_derives_head_dim():
    spec = tiny("t5-small")
    assert spec.block.attention.head_dim is None  # derived: hidden / heads
    cfg = spec_to_config(spec, "t5", "T5ForConditionalGeneration")
    assert cfg["d_kv"] == spec.sizes.hidden // spec.sizes.heads
    assert config_to_spec(cfg).encoder.block.attention.head_dim == cfg["d_kv"]


def test_an_unhashable_config_value_is_a_conversion_error():
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 50, "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 40, "hidden_act": ["silu"]}
    with pytest.raises(ConversionError, match=r"hidden_act = \['silu'\] has no plmgraph equivalent"):
        config_to_spec(cfg)
