"""Every zoo spec validates, resolves, cites its source, and matches its reference count."""

from __future__ import annotations

import pytest

import plmgraph as pg
from plmgraph.graph import resolve, stats
from plmgraph.spec import load_merged, zoo_dir, zoo_names

# Parameter counts of the Hugging Face reference class for the same config (issue 2).
REFERENCE_PARAMS = {
    "bert-base": 110_106_428,  # BertForPreTraining, default BertConfig
    "bert-large": 336_226_108,  # BertForPreTraining 1024/24/16/4096
    "roberta-base": 124_697_433,  # RobertaForMaskedLM
    "albert-base": 11_813_810,  # AlbertForPreTraining 768/12/3072, E=128
    "albert-xxlarge": 223_158_450,  # AlbertForPreTraining, default AlbertConfig
    "ernie-base": 100_477_778,  # ErnieForPreTraining, vocab 18000, 513 positions
    "distilbert": 66_985_530,  # DistilBertForMaskedLM
    "gpt": 116_534_784,  # OpenAIGPTLMHeadModel
    "gpt2": 124_439_808,  # GPT2LMHeadModel
    "gpt2-xl": 1_557_611_200,  # GPT2LMHeadModel 1600/48/25
    "gpt3": 174_604_259_328,  # GPT-2-shaped 12288/96/96, 2048 positions
    "t5-small": 60_506_624,  # T5ForConditionalGeneration
    "t5-base": 222_903_552,  # T5ForConditionalGeneration 768/3072/12/12
    "bart-base": 139_420_416,  # BartForConditionalGeneration
    "llama-7b": 6_738_415_616,  # LlamaForCausalLM
    "llama2-7b": 6_738_415_616,
    "llama3-8b": 8_030_261_248,
    "mixtral-8x7b": 46_702_792_704,  # MixtralForCausalLM, default config
    "vit-base": 86_567_656,  # ViTForImageClassification, 1000 labels
    "xlnet-base": 116_750_336,  # XLNetLMHeadModel
    "glm4-9b": 9_399_951_360,  # GlmForCausalLM, default config
    # From the HF class on the meta device for the checkpoint's config.json (values in each spec file).
    "mistral-7b": 7_241_732_096,  # MistralForCausalLM, Mistral-7B-v0.1
    "qwen2.5-7b": 7_615_616_512,  # Qwen2ForCausalLM, Qwen2.5-7B
    "phi3-mini": 3_821_079_552,  # Phi3ForCausalLM, Phi-3-mini-4k-instruct
    "pythia-1.4b": 1_414_647_808,  # GPTNeoXForCausalLM, pythia-1.4b
    "opt-1.3b": 1_315_758_080,  # OPTForCausalLM, opt-1.3b
    "falcon-7b": 6_921_720_704,  # FalconForCausalLM, tiiuae/falcon-7b
    "gemma2-9b": 9_241_705_984,  # Gemma2ForCausalLM, google/gemma-2-9b
    "deberta-v3-base": 184_551_780,  # DebertaV2ForMaskedLM, microsoft/deberta-v3-base
    "mpnet-base": 109_518_527,  # MPNetForMaskedLM, microsoft/mpnet-base
}
# Published sizes (no HF reference class with the same config); within 5 %.
PUBLISHED_PARAMS = {
    "transformer-base": 65e6,
    "glm": 335e6,
    "chatglm2-6b": 6.2e9,
    "llama2-70b": 69e9,
    "glm-130b": 130e9,  # Zeng et al. 2022; DeepNorm
}
ALL = zoo_names()


def test_zoo_has_every_required_spec():
    required = set(REFERENCE_PARAMS) | set(PUBLISHED_PARAMS) | {"transformer-xl"}
    assert required <= set(ALL), sorted(required - set(ALL))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_parameter_count(name):
    assert resolve(name).num_params() == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_parameter_count(name):
    n = resolve(name).num_params()
    assert abs(n - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.05, f"{n:,}"


@pytest.mark.parametrize("name", ALL)
def test_spec_file_cites_source_and_schema(name):
    text = (zoo_dir() / f"{name}.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../plmgraph.schema.json\n")
    comment = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert any(w in comment for w in ("Reference:", "Published size", "published")), "cite a source"
    spec = pg.load_spec(name)
    assert spec.name == name
    assert stats(spec).params == resolve(spec).num_params() > 0


def test_extends_chain_is_resolved_in_order():
    merged = load_merged("llama3-8b")
    names = [f.rsplit("/", 1)[-1] for f in merged.files]
    assert names == ["gpt2.yaml", "llama-7b.yaml", "llama2-7b.yaml", "llama3-8b.yaml"]
    spec = pg.load_spec("llama3-8b")
    at = spec.decoder.block.attention
    assert (at.kv_heads, at.head_dim, at.qkv_bias) == (8, 128, False)  # inherited from llama-7b
    assert spec.position.kind == "rope" and spec.position.theta == 500000.0
    assert spec.decoder.block.norm.kind == "rmsnorm" and spec.decoder.block.norm.eps == 1e-5  # from llama2-7b


def test_kind_change_replaces_instead_of_merging():
    # gpt2's learned position has `offset`; llama's rope must not inherit it.
    spec = pg.load_spec("llama-7b")
    assert "offset" not in spec.position.model_dump()
    assert spec.decoder.block.norm.model_dump() == {"kind": "rmsnorm", "eps": 1e-6, "offset": 0.0}


def test_overrides_on_a_loaded_spec_reach_every_stack():
    from plmgraph.spec import ModelSpec

    t5 = pg.load_spec("t5-small")
    for spec in (t5, ModelSpec.model_validate(t5.model_dump())):  # loaded from a file, or built in Python
        edited = pg.load_spec(spec, "block.placement=post,layers=2")
        assert [st.block.placement for st in edited.stacks.values()] == ["post", "post"]
        # a full dump states every stack's layers explicitly, and explicit values win over `sizes`
        assert [st.layers for st in edited.stacks.values()] == ([2, 2] if spec is t5 else [6, 6])
        assert edited.decoder.block.attention.mask == "causal"
