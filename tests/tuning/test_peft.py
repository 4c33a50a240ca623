"""PEFT interop, against Hugging Face PEFT itself (test-only dependency, tested with peft 0.21.2):

* plmgraph -> PEFT: `export-hf` of a tuned model writes the base model and ``adapter/`` in PEFT's layout;
  ``peft.PeftModel.from_pretrained(hf_model, adapter)`` gives plmgraph's outputs (LoRA in every fused /
  sliced layout, IA³, prompt tuning; GPT-2 and a GQA LLaMA-style model);
* PEFT -> plmgraph: adapters made and saved by PEFT import (`import-hf base/ --adapter adapter/`) and give
  PEFT's outputs;
* adapters for another base model, or with options plmgraph does not compile, are refused, nothing written.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from helpers import tiny
from helpers_tuning import perturb, tuned
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.hf_cmds  # noqa: F401  (registers import-hf, export-hf)
from plmgraph.cli import app
from plmgraph.compile.hf import to_hf
from plmgraph.tuning.core import write_hf

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
runner = CliRunner()
X = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(0))
MASK = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])


def _hf(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()


def _peft_logits(pm, n_virtual=0):
    out = pm(input_ids=X, attention_mask=MASK).logits
    return out[:, n_virtual:]


EXPORTS = [
    ("gpt2", "lora:rank=4,alpha=8,targets=attn.qkv+attn.out+mlp.up+mlp.down"),  # 1:1 with c_attn, c_proj, c_fc
    ("gpt2", "lora:rank=2,targets=attn.q+attn.v,rslora=true"),  # two slices in c_attn: block-diagonal rank 4
    ("mistral-7b", "lora:rank=4,targets=attn.q+attn.k+attn.v+attn.out+mlp.gate+mlp.up+mlp.down"),  # 1:1
    ("mistral-7b", "lora:rank=2,alpha=4,targets=attn.qkv+mlp.gate_up"),  # one fused LoRA: A copied per module
    ("gpt2", "ia3"),  # c_attn scaled with ones on q, c_proj's input
    ("mistral-7b", "ia3"),
    ("gpt2", "prompt:length=3"),
    ("mistral-7b", "prompt:length=3"),
]


@pytest.mark.parametrize(("name", "options"), EXPORTS)
def test_our_adapter_in_peft(tmp_path, name, options):
    m = perturb(tuned(tiny(name), options), scale=0.2)
    assert write_hf(m, tmp_path)[-1] == "adapter/adapter_model.safetensors"
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    pm = peft.PeftModel.from_pretrained(_hf(tmp_path), str(tmp_path / "adapter")).eval()
    n = cfg.get("num_virtual_tokens", 0)
    pos = (MASK.cumsum(1) - 1).clamp(min=0)
    ours = m(X, attention_mask=MASK, position_ids=pos if n == 0 else None).logits
    if n == 0:  # PEFT's prompt tuning numbers positions over the whole sequence, as plmgraph does without ids
        theirs = pm(input_ids=X, attention_mask=MASK, position_ids=pos).logits
    else:
        theirs = _peft_logits(pm, n)
    torch.testing.assert_close(ours[MASK.bool()], theirs[MASK.bool()], atol=2e-5, rtol=1e-4)
    if "slices" not in options and "q+attn.v" in options:
        assert cfg["rank_pattern"] and cfg["alpha_pattern"]


def _peft_adapter(tmp_path, name, config):
    """A base model exported by plmgraph, and a PEFT adapter PEFT itself makes (random, nonzero) and saves."""
    base = pg.build(tiny(name), seed=0)
    to_hf(base, tmp_path / "base")
    torch.manual_seed(0)
    pm = peft.get_peft_model(_hf(tmp_path / "base"), config).eval()
    with torch.no_grad():
        for p in pm.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.2)
    pm.save_pretrained(str(tmp_path / "adapter"))
    return pm


IMPORTS = [
    ("gpt2", lambda: peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"])),
    ("mistral-7b", lambda: peft.LoraConfig(r=2, lora_alpha=4, use_rslora=True,
                                           target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"])),
    ("gpt2", lambda: peft.IA3Config(task_type="CAUSAL_LM")),
    ("mistral-7b", lambda: peft.IA3Config(task_type="CAUSAL_LM")),
    ("gpt2", lambda: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)),
]


@pytest.mark.parametrize(("name", "config"), IMPORTS)
def test_peft_adapter_imports(tmp_path, name, config):
    pm = _peft_adapter(tmp_path, name, config())
    r = runner.invoke(app, ["import-hf", str(tmp_path / "base"), "--adapter", str(tmp_path / "adapter"),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "trainable" in r.output
    m = pg.load(tmp_path / "out")
    n = pm.peft_config["default"].num_virtual_tokens if name == "gpt2" and m.tuning.kind == "prompt" else 0
    ours = m(X, attention_mask=MASK).logits
    theirs = _peft_logits(pm, n)
    if n == 0:
        pos = (MASK.cumsum(1) - 1).clamp(min=0)
        ours = m(X, attention_mask=MASK, position_ids=pos).logits
        theirs = pm(input_ids=X, attention_mask=MASK, position_ids=pos).logits
    torch.testing.assert_close(ours[MASK.bool()], theirs[MASK.bool()], atol=2e-5, rtol=1e-4)


def test_cli_export_hf_of_a_tuned_folder(tmp_path):
    m = perturb(tuned(tiny("gpt2"), "lora:rank=2,targets=attn.qkv"))
    pg.save(m, tmp_path / "m")
    r = runner.invoke(app, ["export-hf", str(tmp_path / "m"), "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["adapter", "config.json", "model.safetensors"]
    base = _hf(tmp_path / "hf")  # the base model alone: transformers does not pick up adapter/
    torch.testing.assert_close(base(X).logits, merged_off(m)(X).logits, atol=2e-5, rtol=1e-4)


def merged_off(m):
    """The base model of a LoRA model: the adapters' B zeroed."""
    import copy

    c = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in c.named_parameters():
            if n.endswith(".B"):
                p.zero_()
    return c


# ------------------------------------------------------------------------------ refused


def _import(tmp_path, base, adapter):
    out = tmp_path / "out"
    r = runner.invoke(app, ["import-hf", str(base), "--adapter", str(adapter), "-o", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert not out.exists()
    return " ".join(r.output.split())


def test_adapter_for_another_base_model(tmp_path):
    _peft_adapter(tmp_path, "gpt2", peft.LoraConfig(r=2, target_modules=["c_attn"]))
    other = pg.build(tiny("gpt2", hidden=32, heads=2), seed=0)
    to_hf(other, tmp_path / "other")
    msg = _import(tmp_path, tmp_path / "other", tmp_path / "adapter")
    assert "lora_A [2, 64] / lora_B [192, 2] do not fit this base model (expected [2, 32] and [96, 2])" in msg
    llama = pg.build(tiny("llama2-7b"), seed=0)
    to_hf(llama, tmp_path / "llama")
    msg = _import(tmp_path, tmp_path / "llama", tmp_path / "adapter")
    assert "the adapter is not for this base model, or targets modules plmgraph's lora does not cover: " \
           "transformer.h.0.attn.c_attn" in msg


@pytest.mark.parametrize(("config", "match"), [
    (lambda: peft.LoraConfig(r=2, target_modules=["c_attn"], layers_to_transform=[0]),
     "the adapter covers 1 of the 2 projections its targets name (attn.qkv)"),
    (lambda: peft.LoraConfig(r=2, target_modules=["c_attn", "c_proj"], rank_pattern={"c_proj": 4}),
     "per-module ranks or alphas"),
    (lambda: peft.LoraConfig(r=2, target_modules=["c_attn", "lm_head"]),
     "targets modules plmgraph's lora does not cover: lm_head"),
    (lambda: peft.LoraConfig(r=2, target_modules=["c_attn"], use_dora=True), "DoRA"),
])
def test_adapters_plmgraph_does_not_compile(tmp_path, config, match):
    _peft_adapter(tmp_path, "gpt2", config())
    assert match in _import(tmp_path, tmp_path / "base", tmp_path / "adapter")


def test_adapter_folder_problems(tmp_path):
    to_hf(pg.build(tiny("gpt2"), seed=0), tmp_path / "base")
    (tmp_path / "loha").mkdir()
    (tmp_path / "loha" / "adapter_config.json").write_text('{"peft_type": "LOHA"}')
    (tmp_path / "loha" / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert "PEFT type LOHA is not read by plmgraph (LORA, IA3 and PROMPT_TUNING are)" in \
        _import(tmp_path, tmp_path / "base", tmp_path / "loha")
    (tmp_path / "a").mkdir()
    assert "no adapter_config.json" in _import(tmp_path, tmp_path / "base", tmp_path / "a")
    (tmp_path / "a" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (tmp_path / "a" / "adapter_model.bin").write_bytes(b"x")
    assert "adapter_model.bin is a pickle, which plmgraph does not read" in \
        _import(tmp_path, tmp_path / "base", tmp_path / "a")


def test_pg_to_hf_of_a_tuned_model_writes_the_adapter_too(tmp_path):
    m = perturb(tuned(tiny("gpt2"), "ia3"))
    pg.to_hf(m, tmp_path)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    pm = peft.PeftModel.from_pretrained(_hf(tmp_path), str(tmp_path / "adapter")).eval()
    torch.testing.assert_close(m(X).logits, pm(input_ids=X).logits, atol=2e-5, rtol=1e-4)
