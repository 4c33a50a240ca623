"""Bottleneck adapters (plmgraph/kinds/tuning/adapters.py, plmgraph/tuning/adapters.py).

The reference is the Hugging Face model with the same adapters placed where Houlsby et al. put them,
by hooks on Hugging Face's own modules (no adapter library supports transformers 5 yet): on the
attention's output projection and the MLP's output projection, before the residual add (and, for
post-norm BERT, before the add & LayerNorm).  Besides: an adapted model starts as the model it adapts,
only the adapters (and, as asked, the norms) train, the counts agree, bad options are one message.
"""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.spec.errors import SpecError

tf = pytest.importorskip("transformers")


def _randomize(model: torch.nn.Module, seed: int = 1, std: float = 0.15) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_((1 + 0.2 * torch.randn(p.shape, generator=g)) if p.dim() == 1 and name.endswith("weight")
                    else std * torch.randn(p.shape, generator=g))


def _hf_hook(adapter: torch.nn.Module):  # noqa: ANN202
    """The adapter's formula, written out on HF's module output: y + W_up relu(W_down y + b) + b."""
    def hook(module, args, out):  # noqa: ANN001, ANN202
        h = torch.relu(out @ adapter.down.weight.T + adapter.down.bias)
        return out + h @ adapter.up.weight.T + adapter.up.bias
    return hook


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
@pytest.mark.parametrize("variant", ["houlsby", "pfeiffer"])
def test_hugging_face_with_the_same_adapters_gives_the_same_outputs(arch, variant, tmp_path):
    torch.manual_seed(0)
    if arch == "gpt2":
        hf = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=24,
                                              n_inner=48))
        sites = lambda i: {"attn": hf.transformer.h[i].attn.c_proj, "mlp": hf.transformer.h[i].mlp.c_proj}  # noqa: E731
    else:
        hf = tf.BertModel(tf.BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=48, max_position_embeddings=24), add_pooling_layer=False)
        sites = lambda i: {"attn": hf.encoder.layer[i].attention.output.dense,  # noqa: E731
                           "mlp": hf.encoder.layer[i].output.dense}
    _randomize(hf)
    hf.eval().save_pretrained(tmp_path)
    base = pg.from_hf(tmp_path)
    model = pg.build(pg.load_spec(base.spec, f"tuning={{kind: adapters, bottleneck: 8, variant: {variant}}}"), seed=0)
    model.load_state_dict(base.state_dict(), strict=False)
    model.eval()
    _randomize(model.get_submodule(f"{model.stack_names[0]}.layers"), seed=2, std=0.3)  # the adapters too
    model.load_state_dict(base.state_dict(), strict=False)  # base weights back; adapters stay random
    stack = model.stack_names[0]
    for i in range(2):
        for role, module in sites(i).items():
            if variant == "pfeiffer" and role == "attn":
                assert not hasattr(model.get_submodule(f"{stack}.layers.{i}.attn"), "adapter")
                continue
            module.register_forward_hook(_hf_hook(model.get_submodule(f"{stack}.layers.{i}.{role}.adapter")))
    x = torch.randint(3, 101, (2, 7), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        want = (hf.transformer if arch == "gpt2" else hf)(input_ids=x, attention_mask=mask).last_hidden_state
        got = model(x, attention_mask=mask).last_hidden_state
        plain = base(x, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got[keep], plain[keep])  # the adapters did something


@pytest.mark.parametrize("name", ["gpt2", "t5-small", "albert-base", "mixtral-8x7b"])
def test_starts_as_the_base_model_and_the_counts_agree(name):
    spec = pg.load_spec(tiny(name), "tuning={kind: adapters, bottleneck: 8}")
    model, base = pg.build(spec, seed=0).eval(), pg.build(tiny(name), seed=0).eval()
    x = torch.randint(3, 100, (2, 6), generator=torch.Generator().manual_seed(0))
    kw = {"decoder_input_ids": x} if spec.family == "encoder-decoder" else {}
    with torch.no_grad():
        assert torch.equal(model(x, **kw).last_hidden_state, base(x, **kw).last_hidden_state)  # W_up = 0
    st = pg.stats(spec)
    adapters = {n: p for n, p in model.named_parameters() if ".adapter." in n}
    assert st.trainable == model.tuning.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert st.trainable == sum(p.numel() for p in adapters.values())
    assert st.params == sum(p.numel() for p in model.parameters())
    hosts = {n.split(".adapter.")[0].rsplit(".", 1)[1] for n in adapters}
    assert hosts == ({"attn", "cross", "mlp"} if name == "t5-small" else {"attn", "mlp"})  # every sublayer
    per_site = 2 * 8 * 64 + 8 + 64
    distinct = 1 if name == "albert-base" else (4 if name == "t5-small" else 2)  # layers with their own weights
    sites = {"t5-small": 2 * 2 + 2 * 3}.get(name, distinct * 2)
    assert st.trainable == sites * per_site


def test_pfeiffer_adapts_the_mlp_only_and_train_norms_keeps_the_norms_trainable():
    p = pg.tuning.plan(pg.load_spec(tiny("bert-base"), "tuning={kind: adapters, variant: pfeiffer, bottleneck: 4}"))
    assert sorted(p.added) == sorted(f"encoder.layers.{i}.mlp.adapter.{w}.{t}" for i in range(2)
                                     for w in ("down", "up") for t in ("weight", "bias"))
    assert p.kept == ()
    h = pg.tuning.plan(pg.load_spec(tiny("bert-base"), "tuning={kind: adapters, bottleneck: 4, train_norms: true}"))
    assert h.kept and all("norm" in n for n in h.kept)
    assert set(h.kept) == {n for n in pg.resolve(tiny("bert-base")).param_shapes() if "norm" in n
                           and not n.startswith("heads.")}  # the layers' and embeddings' norms, not the head's


@pytest.mark.parametrize("train_norms", [False, True])
def test_only_the_adapters_train(train_norms):
    flag = str(train_norms).lower()
    spec = pg.load_spec(tiny("gpt2"), f"tuning={{kind: adapters, bottleneck: 8, train_norms: {flag}}}")
    model = pg.build(spec, seed=0)
    moves = {n for n, p in model.named_parameters() if ".adapter." in n or (train_norms and "norm" in n)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(3, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # dropout draws from the global generator: the same losses in any test order
    model.train()
    losses = []
    for _ in range(3):
        loss = model(x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != (n in moves), n  # the base bitwise unchanged, the adapters moved


def test_words_label_diff_and_draw():
    spec = pg.load_spec(tiny("gpt2"), "tuning={kind: adapters, bottleneck: 16, variant: pfeiffer}")
    from exporters.graphviz import arch_dot
    from plmgraph.kinds import KINDS

    a = spec.tuning.model_dump(exclude={"kind"})
    assert KINDS["tuning/adapters"].words(a) == "Pfeiffer adapters (bottleneck 16, ReLU)"
    assert "pfeiffer · bottleneck 16 · after MLP" in arch_dot(spec).source
    assert any(line.startswith("tuning: full → adapters (bottleneck 16, variant pfeiffer")
               for line in pg.diff(tiny("gpt2"), spec).lines())


def test_bad_options_are_one_clear_message():
    with pytest.raises(SpecError, match=r"tuning.bottleneck: adapters: bottleneck 65 is wider than the model's hidden "
                                        r"size 64; a bottleneck must be at most 64"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: adapters, bottleneck: 65}")  # refused by the validator
    with pytest.raises(SpecError, match=r"tuning.bottleneck: must be greater than 0, got 0"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: adapters, bottleneck: 0}")
    with pytest.raises(SpecError, match=r"tuning.variant: must be one of houlsby, pfeiffer, got 'lora'"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: adapters, variant: lora}")
