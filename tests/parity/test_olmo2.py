"""Parity of the ``olmo2`` model type (plmgraph/compile/hf_types/olmo2.py): a tiny random HF Olmo2 model in fp32,
with right padding and a cached step, then the HF round trip (same architecture, same state dict, same spec), for
every architecture transformers has (causal LM, bare model, sequence classifier). OLMo 2 is the model type that
needs ``block.placement: output`` (x + norm(f(x)), no input norm) and ``qk_norm_scope: projection`` (one RMSNorm
over all of q and one over all of k, before the heads split), so the spec each import gives is checked for them,
and an edit of the imported spec that drops either no longer matches HF (the two features are not no-ops)."""

import pytest
import torch
import transformers as tf
from parity_util import (
    check_bare,
    check_decoder,
    check_last_token_classifier,
    ids,
    randomize,
    right_padded,
    roundtrip,
    save_and_import,
)

import plmgraph as pg

V = 113
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=56, max_position_embeddings=64, pad_token_id=0, eos_token_id=1, rms_norm_eps=1e-6,
             rope_parameters={"rope_theta": 500000.0, "rope_type": "default"})


def _pair(tmp_path, arch="ForCausalLM", **kw):
    torch.manual_seed(0)
    hf = getattr(tf, "Olmo2" + arch)(tf.Olmo2Config(**(SMALL | kw)))
    randomize(hf)
    return hf, save_and_import(hf, tmp_path / "hf")


def _is_olmo2(spec) -> bool:  # noqa: ANN001
    b = spec.block
    return (b.placement == "output" and b.attention.qk_norm and b.attention.qk_norm_scope == "projection"
            and b.norm.kind == "rmsnorm" and b.norm.eps == 1e-6 and spec.position.theta == 500000.0
            and b.attention.kv_heads == 2 and not b.attention.qkv_bias and not spec.heads[0].tie_embeddings
            if spec.heads else b.placement == "output")


@pytest.mark.parametrize("bias", [False, True])
def test_causal_lm(tmp_path, bias):
    hf, model = _pair(tmp_path, attention_bias=bias)
    assert model.spec.source == "Hugging Face Olmo2ForCausalLM" and _is_olmo2(model.spec) is not bias
    assert model.spec.block.attention.qkv_bias is bias and model.spec.block.attention.out_bias is bias
    norms = {n: tuple(p.shape) for n, p in model.named_parameters() if "_norm" in n and ".layers.0." in n}
    assert norms == {"decoder.layers.0.attn.q_norm.weight": (4 * 8,), "decoder.layers.0.attn.k_norm.weight": (2 * 8,),
                     "decoder.layers.0.attn_post_norm.weight": (32,), "decoder.layers.0.mlp_post_norm.weight": (32,)}
    check_decoder(hf, model, V)
    roundtrip(hf, model, tmp_path)


def test_bare_model_and_classifier(tmp_path):
    hf, model = _pair(tmp_path / "bare", "Model")
    check_bare(hf, model, V, decoder=True)
    roundtrip(hf, model, tmp_path / "bare")
    hf, model = _pair(tmp_path / "seq", "ForSequenceClassification", num_labels=3)
    check_last_token_classifier(hf, model, V)
    roundtrip(hf, model, tmp_path / "seq")


@pytest.mark.parametrize("edit", [["block.placement=sandwich"], ["block.attention.qk_norm_scope=head"]])
def test_each_feature_matters(tmp_path, edit):
    """The same weights under the LLaMA-like neighbour (norms also on the inputs; per-head q/k norm of the
    same name, loaded where the shapes allow) give other logits: the test above could fail."""
    hf, model = _pair(tmp_path)
    x, mask = ids(V), right_padded()
    ref = hf(input_ids=x, attention_mask=mask).logits
    spec = pg.load_spec(model.spec, edit)
    other = pg.build(spec, seed=0).eval()
    state = {k: v for k, v in model.state_dict().items() if k in other.state_dict()
             and other.state_dict()[k].shape == v.shape}
    other.load_state_dict(state, strict=False)
    with torch.no_grad():
        got = other(x, attention_mask=mask).logits
    assert not torch.allclose(got, ref, atol=1e-3)


@pytest.mark.parametrize("kv_cache", [False, True])
def test_onnx_export(tmp_path, kv_cache):
    """The imported model exports to ONNX and ONNX Runtime matches PyTorch (`verify`: two shapes other than the
    export's; with the KV cache, past length 0 and > 0)."""
    pytest.importorskip("onnxruntime")
    _, model = _pair(tmp_path)
    path = pg.export_onnx(model, tmp_path / "olmo2.onnx", kv_cache=kv_cache, verify=True)
    assert path.exists()


def test_stats_diff_and_diagram(tmp_path):
    """What the two fields do shows everywhere the graph is read: the parameter count is HF's (q norm
    heads·head_dim wide, k norm kv_heads·head_dim), the diff against its LLaMA neighbour names both, the
    diagram draws the post-sublayer norms and the whole-projection q/k norm."""
    hf, model = _pair(tmp_path)
    assert pg.stats(model.spec).params == sum(p.numel() for p in hf.parameters())
    llama = pg.load_spec(model.spec, ["block.placement=pre", "block.attention.qk_norm=false",
                                      "block.attention.qk_norm_scope=head"])
    lines = pg.diff(llama, model.spec).lines()
    assert "norm: norm placement: pre-norm → output-norm" in lines
    assert "attention: attention QK norm: off → on, over the whole q/k projections  [all 2 layers]" in lines
    assert "norm: attention post-norm (RMSNorm): added  [all 2 layers]" in lines
    dot = pg.draw(model.spec, tmp_path / "olmo2.dot").read_text()
    assert "decoder.layers.0.attn_post_norm" in dot and "QK-norm (whole projection)" in dot
    assert "decoder.layers.0.attn_norm" not in dot
