"""`from_hf` / `to_hf` / `import-hf` refuse what they cannot represent, with messages naming fields,
values, tensors and shapes.  No transformers needed: checkpoints are written from the tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, diff_cmds, hf_cmds, spec_cmds  # noqa: F401 (register commands)
from plmgraph.compile.hf import expected_hf_shapes
from plmgraph.compile.hf_config import FAMILIES, config_to_spec, find_family
from plmgraph.errors import CheckpointError, ConversionError
from plmgraph.graph import resolve

LLAMA = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 50, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 40,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
}
BERT = {
    "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 50, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 40, "max_position_embeddings": 64,
    "hidden_act": "gelu", "type_vocab_size": 2, "position_embedding_type": "absolute",
}


def checkpoint(tmp_path: Path, cfg: dict[str, Any], name: str = "ckpt") -> Path:
    """A folder with `cfg` and random tensors of exactly the shapes the tables expect."""
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    shapes = expected_hf_shapes(resolve(config_to_spec(cfg)), cfg["model_type"])
    g = torch.Generator().manual_seed(0)
    save_file({k: torch.randn(s, generator=g) for k, s in shapes.items()}, str(d / "model.safetensors"))
    return d


def edit(d: Path, fn: Any) -> None:
    tensors = load_file(str(d / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(d / "model.safetensors"))


# ------------------------------------------------------------------ config -> spec


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model_type": "transfo-xl"}, r"model_type 'transfo-xl' is not supported; supported: .*bert"),
        ({"architectures": ["LlamaForMultipleChoice"]},
         r"architectures\[0\] = 'LlamaForMultipleChoice' is not supported .* LlamaForCausalLM"),
        ({"hidden_act": "relu2"}, r"hidden_act = 'relu2' has no plmgraph equivalent; supported: .*'silu'"),
        ({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "factor": 2.0}},
         r"rope type 'longrope' has no plmgraph equivalent; supported: default, linear, dynamic, llama3, yarn"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0, "beta_fast": 16.0}},
         r"rope \(yarn\) parameters \{'beta_fast': 16.0\} have no plmgraph equivalent"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0, "mystery": 1}},
         r"'mystery': 1"),
        ({"pretraining_tp": 2}, r"pretraining_tp = 2 is not supported"),
        ({"hidden_size": None}, r"has no 'hidden_size'"),
        ({"num_key_value_heads": 3}, r"heads \(4\) must be divisible by kv_heads \(3\)"),
    ],
)
def test_llama_config_refused(change, match):
    with pytest.raises(ConversionError, match=match):
        config_to_spec({**LLAMA, **change})


@pytest.mark.parametrize(
    ("family", "change", "match"),
    [
        (BERT, {"position_embedding_type": "relative_key"},
         r"position_embedding_type = 'relative_key' is not supported .*'absolute'"),
        (BERT, {"is_decoder": True}, r"is_decoder = True is not supported"),
        (BERT, {"type_vocab_size": 0}, r"type_vocab_size = 0; bert needs at least 1"),
        ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50, "n_embd": 32, "n_layer": 2,
          "n_head": 4, "n_positions": 32}, {"scale_attn_by_inverse_layer_idx": True},
         r"scale_attn_by_inverse_layer_idx = True is not supported"),
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": 50, "d_model": 32,
          "num_layers": 2, "num_heads": 4, "d_ff": 40, "d_kv": 8}, {"tie_word_embeddings": False,
                                                                     "scale_decoder_outputs": True},
         r"scale_decoder_outputs = true with tie_word_embeddings = false"),
        ({"model_type": "albert", "architectures": ["AlbertForMaskedLM"], "vocab_size": 50, "hidden_size": 32,
          "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 40}, {"inner_group_num": 2},
         r"inner_group_num = 2"),
        ({"model_type": "bart", "architectures": ["BartForConditionalGeneration"], "vocab_size": 50, "d_model": 32},
         {"encoder_attention_heads": 4, "decoder_attention_heads": 8},
         r"encoder_attention_heads \(4\) != decoder_attention_heads \(8\)"),
    ],
)
def test_other_configs_refused(family, change, match):
    with pytest.raises(ConversionError, match=match):
        config_to_spec({**family, **change})


def test_every_family_has_a_table_for_weights_and_config():
    from plmgraph.compile.hf_names import IGNORED, TABLES

    assert set(FAMILIES) == set(TABLES) == set(IGNORED) - {"*"}


# -------------------------------------------------------------------- checkpoints


def test_clean_checkpoint_loads(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    model = pg.from_hf(d)
    assert model.spec.block.attention.kv_heads == 2


def test_dtype_is_the_checkpoints_unless_given(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    assert next(pg.from_hf(d).parameters()).dtype == torch.float32
    assert {p.dtype for p in pg.from_hf(d, dtype=torch.bfloat16).parameters()} == {torch.bfloat16}


def test_mixtral_router_jitter_refused():
    cfg = {**LLAMA, "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "router_jitter_noise": 0.1}
    with pytest.raises(ConversionError, match=r"router_jitter_noise = 0.1 is not supported"):
        config_to_spec(cfg)


def test_missing_tensor_named_with_shape(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    edit(d, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    match = r"missing tensors: model\.layers\.1\.self_attn\.k_proj\.weight \[16, 32\]"
    with pytest.raises(CheckpointError, match=match):
        pg.from_hf(d)


def test_unexpected_tensor_named(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    edit(d, lambda t: t.update({"model.layers.0.self_attn.q_norm.weight": torch.ones(8)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: model\.layers\.0\.self_attn\.q_norm\.weight \[8\]"):
        pg.from_hf(d)


def test_wrong_shape_names_both_shapes(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    edit(d, lambda t: t.update({"model.layers.0.mlp.up_proj.weight": torch.ones(41, 32)}))
    match = r"model\.layers\.0\.mlp\.up_proj\.weight is \[41, 32\], expected \[40, 32\]"
    with pytest.raises(CheckpointError, match=match):
        pg.from_hf(d)


def test_known_buffers_and_tied_aliases_are_ignored(tmp_path):
    cfg = {**LLAMA, "tie_word_embeddings": True}
    d = checkpoint(tmp_path, cfg)
    edit(d, lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"].clone(),
                                "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4)}))
    model = pg.from_hf(d)
    assert model.spec.heads[0].tie_embeddings


def test_bart_without_final_logits_bias_loads_zeros(tmp_path):
    cfg = {"model_type": "bart", "architectures": ["BartForConditionalGeneration"], "vocab_size": 50, "d_model": 32,
           "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
           "encoder_ffn_dim": 40, "decoder_ffn_dim": 40, "max_position_embeddings": 32}
    d = checkpoint(tmp_path, cfg)
    edit(d, lambda t: t.pop("final_logits_bias"))
    model = pg.from_hf(d)
    assert torch.equal(model.heads["lm"].bias, torch.zeros(50))


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: (d / "config.json").unlink(), r"no config\.json"),
        (lambda d: (d / "config.json").write_text("{not json"), r"config\.json: not valid JSON"),
        (lambda d: (d / "model.safetensors").unlink(), r"no \*\.safetensors weights"),
        (lambda d: ((d / "model.safetensors").rename(d / "pytorch_model.bin")), r"only PyTorch \.bin weights"),
        (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), r"cannot read safetensors"),
        (lambda d: (d / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}})),
         r"names shard files that do not exist: model-00002-of-00002\.safetensors"),
    ],
)
def test_bad_folders(tmp_path, setup, match):
    d = checkpoint(tmp_path, LLAMA)
    setup(d)
    with pytest.raises(CheckpointError, match=match):
        pg.from_hf(d)


def test_not_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        pg.from_hf(tmp_path / "absent")


# ------------------------------------------------------------------------- export


def test_zoo_gpt2_exports_as_gpt2(tmp_path):
    from helpers import tiny

    model = pg.build(tiny("gpt2"), seed=0)
    mt, arch, _ = find_family(model.spec)
    assert (mt, arch) == ("gpt2", "GPT2LMHeadModel")
    pg.to_hf(model, tmp_path / "out")
    back = pg.from_hf(tmp_path / "out")
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_export_refuses_a_spec_no_hf_class_has(tmp_path):
    from helpers import tiny

    spec = tiny("gpt2")
    spec = pg.load_spec(spec, ["decoder.block.placement=sandwich"])
    match = (r"matches no supported Hugging Face architecture; closest is GPT2LMHeadModel, which cannot express: "
             r".*placement \('sandwich' would become 'pre'\)")
    with pytest.raises(ConversionError, match=match):
        pg.to_hf(pg.build(spec, seed=0), tmp_path / "out")


# ---------------------------------------------------------------------------- CLI


def test_cli_import_and_export(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    r = CliRunner().invoke(app, ["import-hf", str(d), "-o", str(tmp_path / "pg")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pg" / "spec.yaml").exists()
    r = CliRunner().invoke(app, ["export-hf", str(tmp_path / "pg"), "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    a, b = load_file(str(d / "model.safetensors")), load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_import_error_exits_1_without_traceback(tmp_path):
    d = checkpoint(tmp_path, LLAMA)
    edit(d, lambda t: t.pop("model.norm.weight"))
    r = CliRunner().invoke(app, ["import-hf", str(d), "-o", str(tmp_path / "pg")])
    assert r.exit_code == 1
    assert "missing tensors: model.norm.weight [32]" in r.output
    assert "Traceback" not in r.output


def test_init_scheme_follows_the_family_and_initializer_range():
    """HF's `_init_weights` per family becomes the spec's typed `init` (and goes back on export)."""
    from plmgraph.compile.hf_config import config_to_spec, spec_to_config

    gpt2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 100, "n_embd": 32,
            "n_layer": 2, "n_head": 4, "n_positions": 64, "initializer_range": 0.03}
    spec = config_to_spec(gpt2)
    assert spec.init.model_dump() == {"kind": "normal", "std": 0.03, "scaled_residual": True}
    assert spec_to_config(spec, "gpt2", "GPT2LMHeadModel")["initializer_range"] == 0.03
    t5 = {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": 100, "d_model": 32,
          "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4}
    assert config_to_spec(t5).init.kind == "fan_in"
    bart = {"model_type": "bart", "architectures": ["BartForConditionalGeneration"], "vocab_size": 100,
            "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 4,
            "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
            "max_position_embeddings": 64, "init_std": 0.05}
    assert config_to_spec(bart).init.model_dump() == {"kind": "normal", "std": 0.05, "scaled_residual": False}
