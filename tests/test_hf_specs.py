"""A Hugging Face folder (or its config.json) wherever a spec is accepted, resolved through the importer's
tables without reading weights (the folders here hold only config.json), and ``spec-from-hf``: the spec as
YAML that extends the nearest zoo spec, which validates back to exactly the imported spec."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import plmgraph.cli
from plmgraph.cli import app, build_cmds, diff_cmds, hf_spec_cmds, spec_cmds  # noqa: F401  (register)
from plmgraph.compile.hf_types import config_to_spec, read_config_file
from plmgraph.spec import load_spec

tf = pytest.importorskip("transformers")

SMALL = dict(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=64)
CONFIGS = {  # folder name -> (config, the zoo spec it should extend, or None: any or none)
    "tiny-llama": (tf.LlamaConfig(**SMALL, num_key_value_heads=2, architectures=["LlamaForCausalLM"]), "llama"),
    "tiny-qwen2": (tf.Qwen2Config(**SMALL, num_key_value_heads=2, architectures=["Qwen2ForCausalLM"]), "qwen2"),
    "tiny-mistral": (tf.MistralConfig(**SMALL, num_key_value_heads=2, sliding_window=16,
                                      architectures=["MistralForCausalLM"]), "mistral"),
    "tiny-qwen3-moe": (tf.Qwen3MoeConfig(**SMALL, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                                         architectures=["Qwen3MoeForCausalLM"]), "mixtral"),
    "tiny-falcon": (tf.FalconConfig(vocab_size=113, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    architectures=["FalconForCausalLM"]), None),
    "tiny-bert": (tf.BertConfig(**SMALL, architectures=["BertModel"]), "bert"),
    "tiny-gpt2": (tf.GPT2Config(vocab_size=113, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                architectures=["GPT2LMHeadModel"]), "gpt2"),
    "tiny-t5": (tf.T5Config(vocab_size=113, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                            architectures=["T5ForConditionalGeneration"]), "t5"),
}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(plmgraph.cli.out, "width", 200)
    monkeypatch.setattr(plmgraph.cli.err, "width", 400)
    return CliRunner()


def invoke(cli: CliRunner, *args, code: int = 0) -> str:
    r = cli.invoke(app, [str(a) for a in args])
    text = r.output
    assert r.exit_code == code, (r.exit_code, text, r.exception)
    assert "Traceback" not in text
    return text


def folder(tmp_path, name: str):
    d = tmp_path / name
    CONFIGS[name][0].save_pretrained(d)  # config.json only: no weights anywhere
    return d


@pytest.mark.parametrize("name", list(CONFIGS))
def test_spec_from_hf_validates_back_to_the_import(tmp_path, cli, name):
    d = folder(tmp_path, name)
    want = config_to_spec(read_config_file(d / "config.json"), name)
    assert load_spec(d).model_dump() == want.model_dump() == load_spec(d / "config.json").model_dump()
    text = invoke(cli, "spec-from-hf", d, "-o", tmp_path / "spec.yaml")
    assert "wrote" in text
    got = load_spec(tmp_path / "spec.yaml")
    skip = {"name", "source", "extends"}
    assert got.model_dump(exclude=skip) == want.model_dump(exclude=skip) and got.source == want.source
    zoo = CONFIGS[name][1]
    extends = got.extends if isinstance(got.extends, str) or got.extends is None else got.extends[0]
    assert zoo is None or extends.startswith(zoo), extends
    if zoo is not None:  # a change, not a copy: far fewer lines than the whole spec
        written = (tmp_path / "spec.yaml").read_text()
        assert written.count("\n") < 40, written


def test_hf_folders_in_every_spec_command(tmp_path, cli):
    a, b = folder(tmp_path, "tiny-llama"), folder(tmp_path, "tiny-qwen2")
    assert "LlamaForCausalLM" in invoke(cli, "show", a)
    assert "ok tiny-llama" in invoke(cli, "validate", a / "config.json")
    out = invoke(cli, "diff", a, b)
    assert "qkv bias" in out.lower() or "bias" in out, out
    invoke(cli, "draw", a, "-o", tmp_path / "llama.dot")
    assert (tmp_path / "llama.dot").read_text().startswith("digraph")
    assert "matches the graph" in invoke(cli, "build", a, "-O", "layers=1")
    assert "layers: 1" in invoke(cli, "show", b, "--resolved", "-O", "layers=1")


def test_bad_hf_configs_are_one_message(tmp_path, cli):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    for cmd in (["show", d], ["spec-from-hf", d]):
        assert "not valid JSON" in invoke(cli, *cmd, code=1)
    (d / "config.json").write_text('{"model_type": 7}')
    assert "model_type must be a string" in invoke(cli, "show", d, code=1)
    (d / "config.json").write_text('["llama"]')
    assert "is a JSON object" in invoke(cli, "validate", d, code=1)
    (d / "config.json").write_text('{"model_type": "no-such-type"}')
    out = invoke(cli, "diff", d, "gpt2", code=1)
    assert "'no-such-type' is not supported; supported:" in out and "llama" in out
    assert "not a Hugging Face checkpoint folder" in invoke(cli, "spec-from-hf", tmp_path / "nothing", code=1)


LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 50, "hidden_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 40}


@pytest.mark.parametrize(("change", "match"), [
    ({"hidden_size": "32"}, 'hidden_size = "32" has the wrong type; expected a whole number'),
    ({"tie_word_embeddings": "yes"}, 'tie_word_embeddings = "yes" has the wrong type; expected true or false'),
    ({"rms_norm_eps": "1e-5"}, 'rms_norm_eps = "1e-5" has the wrong type; expected a number'),
    ({"rope_parameters": "default"}, 'rope_parameters = "default" has the wrong type; expected a JSON object'),
    ({"architectures": "LlamaForCausalLM"}, "architectures must be a list of class names"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 4}},
     "quantization_config (quant_method = 'gptq') is not supported"),
    ({"hidden_act": "relu2"}, "hidden_act = 'relu2' has no plmgraph equivalent; supported:"),
])
def test_config_values_of_the_wrong_type_or_meaning(tmp_path, cli, change, match):
    import json

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({**LLAMA, **change}))
    out = invoke(cli, "show", d, code=1)
    assert match in out and out.count("\n") <= 2, out


def test_weights_of_another_architecture_list_missing_and_unexpected(tmp_path):
    """A LLaMA config over GPT-2 weights: the first missing and unexpected tensors are named."""
    import json

    from safetensors.torch import save_file

    import plmgraph as pg
    from plmgraph.errors import CheckpointError

    gpt2 = tf.GPT2Model(tf.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                      bos_token_id=0, eos_token_id=0))
    d = tmp_path / "mixed"
    d.mkdir()
    save_file({"transformer." + k: v.clone() for k, v in gpt2.state_dict().items() if not k.endswith("attn.bias")},
              str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(LLAMA))
    with pytest.raises(CheckpointError) as e:
        pg.from_hf(d)
    msg = str(e.value)
    assert "missing tensors: lm_head.weight [50, 32], model.embed_tokens.weight [50, 32]" in msg
    assert "model.layers.0." in msg
    assert "unexpected tensors: " in msg and "transformer.h.0." in msg and "... (" in msg
