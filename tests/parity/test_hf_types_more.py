"""Parity of the model types added after the first 27 (qwen3_moe, ...): a tiny random model of each HF
class in fp32 with right padding and a cached step, greedy generation token for token, every
architecture HF ships for the type, and the HF round trip (same architecture, state dict and spec)."""

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_decoder,
    check_last_token_classifier,
    check_token_classifier,
    ids,
    randomize,
    roundtrip,
    save_and_import,
)

import plmgraph as pg

V = 113


@torch.no_grad()
def check_generate(hf, model, vocab: int, new: int = 6) -> None:
    """Greedy decoding: the same tokens as HF's generate, through plmgraph's KV cache."""
    x = ids(vocab, t=5, seed=7)
    want = hf.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new, do_sample=False,
                       min_new_tokens=new, pad_token_id=0)
    got = pg.generate(model, prompt=x, max_new_tokens=new, do_sample=False)
    assert torch.equal(got, want), f"generated {got.tolist()} != HF {want.tolist()}"


def _all_archs(tmp_path, prefix: str, cfg, check_spec=None, generate: bool = True, others: bool = True) -> None:
    """Causal LM (+ generation), bare model and the classifiers HF ships for `prefix` (not with `others` off)."""
    hf = getattr(tf, prefix + "ForCausalLM")(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "lm")
    assert model.spec.source == f"Hugging Face {prefix}ForCausalLM"
    if check_spec is not None:
        assert check_spec(model.spec)
    check_decoder(hf, model, V)
    if generate:
        check_generate(hf, model, V)
    roundtrip(hf, model, tmp_path / "lm")
    if not others:
        return
    for arch, check in (("Model", lambda h, m: check_bare(h, m, V, decoder=True)),
                        ("ForSequenceClassification", lambda h, m: check_last_token_classifier(h, m, V)),
                        ("ForTokenClassification", lambda h, m: check_token_classifier(h, m, V))):
        if not hasattr(tf, prefix + arch):
            continue
        cfg.num_labels = 3
        hf = getattr(tf, prefix + arch)(cfg)
        randomize(hf)
        model = save_and_import(hf, tmp_path / arch)
        check(hf, model)
        roundtrip(hf, model, tmp_path / arch)


@pytest.mark.parametrize("norm_topk", [False, True])
def test_qwen3_moe(tmp_path, norm_topk):
    torch.manual_seed(0)
    cfg = tf.Qwen3MoeConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=16, intermediate_size=48, moe_intermediate_size=24,
                            num_experts=4, num_experts_per_tok=2, norm_topk_prob=norm_topk,
                            max_position_embeddings=64, pad_token_id=0)
    _all_archs(tmp_path, "Qwen3Moe", cfg, lambda s: s.block.mlp.kind == "moe" and s.block.attention.qk_norm
               and s.block.mlp.normalize_top_k == norm_topk and s.block.mlp.aux_loss == 0, others=not norm_topk)


@pytest.mark.parametrize("multi_query", [True, False])
def test_gpt_bigcode(tmp_path, multi_query):
    """SantaCoder/StarCoder: multi-query ([q; k; v] rows) or multi-head (per-head rows) fused c_attn."""
    torch.manual_seed(0)
    cfg = tf.GPTBigCodeConfig(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64,
                              multi_query=multi_query, pad_token_id=0)
    _all_archs(tmp_path, "GPTBigCode", cfg, lambda s: s.block.attention.kv_heads == (1 if multi_query else 4)
               and s.block.mlp.activation == "gelu_tanh" and s.heads[0].tie_embeddings)


FALCON = {  # case -> (config kwargs, what the spec must say)
    "7b": (dict(multi_query=True), lambda s: s.block.residual.kind == "parallel" and s.block.residual.shared_norm
           and s.block.attention.kv_heads == 1),
    "40b": (dict(new_decoder_architecture=True, num_kv_heads=2, bias=True),
            lambda s: s.block.residual.kind == "parallel" and not s.block.residual.shared_norm
            and s.block.attention.kv_heads == 2 and s.block.mlp.bias),
    "new-one-norm": (dict(new_decoder_architecture=True, num_kv_heads=2, num_ln_in_parallel_attn=1),
                     lambda s: s.block.residual.shared_norm and s.block.attention.kv_heads == 2),
    "mha": (dict(multi_query=False), lambda s: s.block.attention.kv_heads == 4),
    "sequential": (dict(parallel_attn=False, multi_query=True, bias=True),
                   lambda s: s.block.residual.kind == "sequential" and s.block.attention.kv_heads == 1),
}


@pytest.mark.parametrize("case", list(FALCON))
def test_falcon(tmp_path, case):
    torch.manual_seed(0)
    extra, want = FALCON[case]
    cfg = tf.FalconConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          ffn_hidden_size=48, max_position_embeddings=64, pad_token_id=0, **extra)
    if case in ("7b", "40b"):
        _all_archs(tmp_path, "Falcon", cfg, want)
        return
    hf = tf.FalconForCausalLM(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "lm")
    assert want(model.spec)
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path / "lm")


def test_qwen2_moe(tmp_path):
    """Qwen2-MoE: routed experts plus a shared expert behind a sigmoid gate."""
    torch.manual_seed(0)
    cfg = tf.Qwen2MoeConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=48, moe_intermediate_size=24,
                            shared_expert_intermediate_size=40, num_experts=4, num_experts_per_tok=2,
                            max_position_embeddings=64, pad_token_id=0)
    _all_archs(tmp_path, "Qwen2Moe", cfg, lambda s: s.block.mlp.shared_ffn == 40 and s.block.mlp.shared_gate
               and s.block.attention.qkv_bias and not s.block.attention.out_bias)


@pytest.mark.parametrize("qk_layernorm", [False, True])
def test_phi(tmp_path, qk_layernorm):
    """Phi-2: parallel attention and MLP on one LayerNorm, partial rotate-half rotary, biased LM head."""
    torch.manual_seed(0)
    cfg = tf.PhiConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=48, max_position_embeddings=64, qk_layernorm=qk_layernorm, pad_token_id=0,
                       layer_norm_eps=1e-6)
    _all_archs(tmp_path, "Phi", cfg, lambda s: s.block.residual.kind == "parallel" and s.block.residual.shared_norm
               and s.position.fraction == 0.5 and not s.position.interleaved and s.heads[0].bias
               and s.block.attention.qk_norm == qk_layernorm, others=not qk_layernorm)


@pytest.mark.parametrize("embedding_size", [16, 32])  # 16: projected to hidden by embeddings_project
def test_electra(tmp_path, embedding_size):
    """ELECTRA: BERT's encoder with its own embedding width; the generator MLM head and the
    discriminator's task heads (GELU pooler + out_proj for sequence classification)."""
    from parity_util import check_bare, check_encoder

    torch.manual_seed(0)
    cfg = tf.ElectraConfig(vocab_size=V, embedding_size=embedding_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=48, max_position_embeddings=64,
                           layer_norm_eps=1e-6, num_labels=3)
    for arch, heads in (("ForMaskedLM", {"mlm": "logits"}), ("ForSequenceClassification",
                                                              {"sequence_classification": "logits"}),
                        ("ForTokenClassification", {"token_classification": "logits"})):
        hf = getattr(tf, "Electra" + arch)(cfg)
        randomize(hf)
        model = save_and_import(hf, tmp_path / arch)
        assert model.spec.embeddings.size == embedding_size
        check_encoder(hf, model, V, heads, segments=2)
        roundtrip(hf, model, tmp_path / arch)
    hf = tf.ElectraModel(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path / "bare")
    check_bare(hf, model, V, segments=2)
    roundtrip(hf, model, tmp_path / "bare")
