"""Ladder Side Tuning (plmgraph/kinds/tuning/ladder.py, plmgraph/tuning/ladder.py).

No reference library implements LST, so the checks are the method's defining properties: the tuned
model starts as the frozen one; the backbone runs with gradients off and keeps nothing for
backward (fewer bytes saved for backward than LoRA on the same model); the output follows the
ladder equations from the plain model's own layer outputs; cached decoding equals the full forward;
only the side network trains; the counts agree; bad options are one clear message.
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny

import plmgraph as pg
from plmgraph.spec.errors import SpecError


def _ladder(name: str, r: int = 4, perturb: bool = True, **sizes: int):  # noqa: ANN202
    model = pg.build(pg.load_spec(tiny(name, **sizes), f"tuning={{kind: ladder, reduction: {r}}}"), seed=0)
    if perturb:  # a trained-looking side network: U != 0, gates away from 0.5
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            model.ladder.up.weight.copy_(0.3 * torch.randn(model.ladder.up.weight.shape, generator=g))
            model.ladder.gates.copy_(0.2 * torch.randn(model.ladder.gates.shape, generator=g))
    return model


def _ids(b: int = 2, t: int = 12) -> torch.Tensor:
    return torch.randint(3, 100, (b, t), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b", "bert-base", "mistral-7b"])
def test_starts_as_the_frozen_model_and_the_counts_agree(name):
    model, base = _ladder(name, perturb=False).eval(), pg.build(tiny(name), seed=0).eval()
    with torch.no_grad():
        assert torch.equal(model(_ids()).last_hidden_state, base(_ids()).last_hidden_state)  # U = 0
    st = pg.stats(model.spec)
    side = {n: tuple(p.shape) for n, p in model.named_parameters() if n.startswith("ladder.")}
    assert side == model.tuning.added
    assert st.trainable == model.tuning.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert st.params == sum(p.numel() for p in model.parameters())
    assert model.ladder.up.weight.shape == (64, 16) and len(model.ladder.down) == 3  # hidden / 4; layers + 1


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b"])
def test_the_output_follows_the_ladder_equations(name):
    """s_0 = D_0 h_0, s_{i+1} = side_i(μ_i D_{i+1} h_{i+1} + (1 - μ_i) s_i), out = h_L + U norm(s_L), with the
    h_i read from the *plain* model (a second build) through hooks on its layers."""
    model, base = _ladder(name).eval(), pg.build(tiny(name), seed=0).eval()
    stack = getattr(base, base.stack_names[0])
    hs, calls = [], []

    def record(module, args, out) -> None:  # noqa: ANN001
        if not hs:
            hs.append(args[0])  # the embedding output
        hs.append(out[0])
        calls.append(args[1:3])  # mask, is_causal

    for block in stack.layers.values():
        block.register_forward_hook(record)
    x = _ids()
    with torch.no_grad():
        h_last = base(x).last_hidden_state
        lad = model.ladder
        mu = torch.sigmoid(lad.gates / 0.1)
        rotary = lad.position(torch.arange(x.shape[1])[None]) if lad.rotary else None
        s = lad.down[0](hs[0])
        for i in range(2):
            z = mu[i] * lad.down[i + 1](hs[i + 1]) + (1 - mu[i]) * s
            s, _ = lad.layers[str(i)](z, *calls[i], rotary, None, None, None)
        want = h_last + lad.up(lad.final_norm(s))
        torch.testing.assert_close(model(x).last_hidden_state, want, rtol=1e-5, atol=1e-6)


def test_the_backbone_runs_without_gradients_and_keeps_less_for_backward_than_lora():
    def saved_bytes(model) -> int:  # noqa: ANN001
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x = _ids(4, 32)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x, labels=x).loss.backward()
        return sum(seen.values())

    model = _ladder("gpt2", r=8, perturb=False, hidden=128, layers=4, max_positions=64)
    modes = []
    for block in model.decoder.layers.values():
        block.register_forward_pre_hook(lambda m, args: modes.append(torch.is_grad_enabled()))
    model.train()
    ladder = saved_bytes(model)
    assert modes == [False] * 4  # the backbone's layers ran under no_grad
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("ladder."))
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("ladder."))
    lora = pg.build(pg.load_spec(tiny("gpt2", hidden=128, layers=4, max_positions=64), "tuning={kind: lora}"), seed=0)
    assert ladder < 0.6 * saved_bytes(lora.train())


@pytest.mark.parametrize("name", ["gpt2", "llama2-7b"])
def test_cached_steps_equal_the_full_forward(name):
    model = _ladder(name).eval()
    x = _ids()
    with torch.no_grad():
        full = model(x).logits
        a = model(x[:, :5], use_cache=True)
        assert len(a.past_key_values[0]) == 4 and a.past_key_values[0][2].shape[-1] == 4  # + the side's (k, v)
        b = model(x[:, 5:6], past_key_values=a.past_key_values, use_cache=True)
        c = model(x[:, 6:], past_key_values=b.past_key_values, use_cache=True)
    torch.testing.assert_close(torch.cat([a.logits, b.logits, c.logits], 1), full, rtol=1e-5, atol=1e-5)
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    assert pg.generate(model, prompt=prompts, max_new_tokens=5, do_sample=False).tolist() == \
        pg.generate(model, prompt=prompts, max_new_tokens=5, do_sample=False, use_cache=False).tolist()


def test_only_the_side_network_trains():
    model = _ladder("gpt2", perturb=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = _ids(4, 16)
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
        assert torch.equal(p, before[n]) != n.startswith("ladder."), n


def test_a_deep_copy_runs_its_own_side_network():
    model = _ladder("gpt2").eval()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        torch.testing.assert_close(twin(_ids()).logits, model(_ids()).logits, rtol=0, atol=0)
        twin.ladder.up.bias.add_(1.0)
        assert not torch.allclose(twin(_ids()).logits, model(_ids()).logits)


def test_words_label_diff_and_draw():
    from exporters.graphviz import arch_dot

    spec = pg.load_spec(tiny("gpt2"), "tuning={kind: ladder, reduction: 4}")
    assert "side network hidden/4 · gates σ(α/0.1)" in arch_dot(spec).source
    assert "tuning: full → ladder (reduction 4, gate_temperature 0.1)" in pg.diff(tiny("gpt2"), spec).lines()
    st = pg.stats(spec)
    assert st.tuning == "ladder" and st.by_block["tuning"] == st.trainable


def test_bad_options_are_one_clear_message():
    # refused by the validator, not at build
    with pytest.raises(SpecError, match=r"tuning.reduction: ladder: reduction 3 does not divide hidden 64; .*allowed: "
                                        r"a divisor of 64 such as 2, 4, 8"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: ladder, reduction: 3}")
    with pytest.raises(SpecError, match=r"tuning.reduction: ladder: reduction 32 does not divide the head width 16: "
                                        r"the side network keeps the 4 heads"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: ladder, reduction: 32}")
    with pytest.raises(SpecError, match=r"tuning.gate_temperature: must be greater than 0"):
        pg.load_spec(tiny("gpt2"), "tuning={kind: ladder, gate_temperature: 0}")
    for name, why in [("t5-small", "encoder-decoder models"), ("xlnet-base", "relative attention")]:
        with pytest.raises(SpecError, match=f"tuning.kind: ladder side tuning is not compiled for .*{why}"):
            pg.load_spec(tiny(name), "tuning={kind: ladder}")


def test_save_load_and_the_cli_trains_only_the_side_network(tmp_path):
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    import plmgraph.cli.train_cmds  # noqa: F401  (registers train)
    from plmgraph.cli import app

    model = _ladder("llama2-7b")
    pg.save(model, tmp_path / "m")
    again = pg.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again.eval()(_ids()).logits, model.eval()(_ids()).logits)
    data = tmp_path / "c.txt"
    data.write_text("\n\n".join(f"the quick brown fox {i} jumps over the lazy dog {i % 7}" for i in range(40)))
    args = ["--data", str(data), "--steps", "2", "--seq-len", "16", "--batch-size", "4", "--checkpoint-every", "100",
            "--held-out", "0"]
    r = CliRunner().invoke(app, ["train", "gpt2", "-O", "layers=2,hidden=32,heads=2,ffn=64,vocab=300,max_positions=32",
                                 "--tuning", "ladder:reduction=2", "-o", str(tmp_path / "run"), *args])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    w = load_file(str(run / "checkpoints" / (run / "LATEST").read_text().strip() / "model.safetensors"))
    side = sum(t.numel() for k, t in w.items() if k.startswith("ladder."))
    assert f"trainable {side:,} of {sum(t.numel() for t in w.values()):,}" in r.output, r.output
