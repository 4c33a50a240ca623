"""The tuning core (plmgraph/tuning): plan, apply, freeze, counts, the --tuning option, the train CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import tiny
from helpers_tuning import assert_only_tuning_changes, tuned
from safetensors.torch import load_file
from typer.testing import CliRunner

import plmgraph as pg
import plmgraph.cli.hf_cmds  # noqa: F401  (registers import-hf, export-hf)
import plmgraph.cli.spec_cmds  # noqa: F401  (registers show)
import plmgraph.cli.train_cmds  # noqa: F401  (registers train)
from plmgraph.cli import app
from plmgraph.tuning import TuningError, plan, trainable_report, trainable_text
from plmgraph.tuning.options import apply_options, parse_options

runner = CliRunner()
KINDS = ["lora:rank=4,targets=attn.qkv+attn.out", "lora:rank=2,targets=q+v+mlp", "bitfit", "ia3", "prompt:length=3"]


def test_report_text():
    assert trainable_text(98_304, 4_206_912) == "trainable 98,304 of 4,206,912 (2.3 %)"
    assert trainable_text(5, 4_206_912) == "trainable 5 of 4,206,912 (0.000 %)"


def test_full_changes_nothing():
    m = pg.build(tiny("gpt2"), device="meta")
    assert m.tuning.kind == "full" and all(p.requires_grad for p in m.parameters())
    assert trainable_report(m) == m.tuning.report() == f"trainable {m.num_params():,} of {m.num_params():,} (100.0 %)"


@pytest.mark.parametrize(("name", "options"), [
    (name, options) for name in ("gpt2", "llama2-7b", "bert-base", "t5-small") for options in KINDS
    if not (options == "bitfit" and name in ("llama2-7b", "t5-small"))  # no biases: refused (test_bitfit)
])
def test_counts_of_graph_model_and_stats_agree(name, options):
    spec = apply_options(tiny(name), options)
    m = pg.build(spec, device="meta")
    p = plan(spec)
    params = {id(t): t for t in m.parameters()}.values()
    assert sum(t.numel() for t in params if t.requires_grad) == p.trainable > 0
    assert sum(t.numel() for t in params) == p.total
    st = pg.stats(spec)
    assert (st.trainable, st.frozen, st.params, st.tuning) == (p.trainable, p.frozen, p.total, spec.tuning.kind)
    assert trainable_report(m) == p.report()
    names = {n: tuple(t.shape) for n, t in m.named_parameters()}
    assert names == {**p.base, **p.added}


@pytest.mark.parametrize("options", KINDS)
def test_only_the_tuning_trains(options):
    m = tuned(tiny("gpt2"), options)
    changed = assert_only_tuning_changes(m)
    assert changed and len(changed) == len(m.tuning.trainable_names)


def test_shared_layers_get_one_adapter():
    spec = apply_options(tiny("albert-base", layers=4), "lora:rank=2,targets=attn.qkv")
    m = pg.build(spec, seed=0)
    added = m.tuning.added
    assert len(added) == 2 and all(".layers.0." in k for k in added)  # ALBERT: one shared layer
    assert m.tuning.flops == 4 * 2 * 2 * (64 + 3 * 64)  # run 4 times
    assert_only_tuning_changes(m.eval())


def test_save_and_load_keep_the_adapter(tmp_path):
    m = tuned(tiny("llama2-7b"), "lora:rank=4,targets=attn.q+attn.v+mlp.gate")
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.normal_()
    pg.save(m, tmp_path / "m")
    back = pg.load(tmp_path / "m")
    x = torch.randint(0, 128, (2, 6))
    torch.testing.assert_close(back(x).logits, m(x).logits, rtol=0, atol=0)
    assert back.tuning.trainable_names == m.tuning.trainable_names
    assert [n for n, p in back.named_parameters() if p.requires_grad] == \
        [n for n, p in m.named_parameters() if p.requires_grad]


def test_parse_options():
    assert parse_options("lora:rank=8,alpha=16,targets=attn.qkv+attn.out,rslora=true") == {
        "kind": "lora", "rank": 8, "alpha": 16, "targets": ["attn.qkv", "attn.out"], "rslora": True}
    assert parse_options("lora:targets=attn.q") == {"kind": "lora", "targets": ["attn.q"]}
    assert parse_options(" bitfit ") == {"kind": "bitfit"}


@pytest.mark.parametrize(("options", "match"), [
    ("", "give a tuning kind first"),
    ("lora:rank", r"'rank' is not key=value"),
    ("lora:rank=2,rank=3", "'rank' is given twice"),
    ("qlora:rank=2", r"tuning kinds: full, lora, .*bitfit, ia3, prompt"),
    ("lora:rank=x", r"rank: Input should be a valid integer.*\(lora options: rank, alpha, dropout, targets, rslora\)"),
    ("lora:size=3", r"size: Extra inputs are not permitted"),
])
def test_bad_options(options, match):
    with pytest.raises(TuningError, match=match):
        apply_options(tiny("gpt2"), options)


def test_options_that_contradict_the_spec():
    spec = pg.load_spec(tiny("gpt2"), ["tuning.kind=lora", "tuning.rank=4"])
    with pytest.raises(TuningError, match=r"--tuning 'ia3' contradicts the spec's tuning kind 'lora'"):
        apply_options(spec, "ia3")
    with pytest.raises(TuningError, match=r"contradicts the spec's tuning: rank=8 \(spec: 4\)"):
        apply_options(spec, "lora:rank=8")
    ok = apply_options(spec, "lora:rank=4,alpha=2")  # agrees, adds an option
    assert (ok.tuning.rank, ok.tuning.alpha) == (4, 2.0)


# ---------------------------------------------------------------------------- CLI


def _corpus(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("\n\n".join(f"the quick brown fox {i} jumps over the lazy dog {i % 7}" for i in range(40)))
    return str(f)


TRAIN = ["--steps", "3", "--seq-len", "16", "--batch-size", "4", "--checkpoint-every", "100", "--held-out", "0"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("base")
    data = _corpus(tmp)
    r = runner.invoke(app, ["train", "gpt2", "-O", "layers=2,hidden=32,heads=2,ffn=64,vocab=300,max_positions=32",
                            "--data", data, "-o", str(tmp / "base"), *TRAIN])
    assert r.exit_code == 0, r.output
    return tmp / "base", data


def _weights(run):
    return load_file(str(run / "checkpoints" / (run / "LATEST").read_text().strip() / "model.safetensors"))


def test_train_tuning_from_a_run_trains_only_the_adapter(base_run, tmp_path):
    base, data = base_run
    out = tmp_path / "lora"
    r = runner.invoke(app, ["train", str(base), "--tuning", "lora:rank=2,alpha=4,targets=attn.qkv+attn.out",
                            "--data", data, "-o", str(out), *TRAIN])
    assert r.exit_code == 0, r.output
    w0, w1 = _weights(base), _weights(out)
    adapter = sorted(set(w1) - set(w0))
    assert adapter and all(".lora." in k for k in adapter)
    want = sum(math.prod(w1[k].shape) for k in adapter)
    total = sum(math.prod(t.shape) for t in w1.values())
    assert f"trainable {want:,} of {total:,}" in r.output
    for k in w0:  # the base is bitwise the base run's
        assert torch.equal(w0[k], w1[k]), k
    assert all(not torch.equal(w1[k], torch.zeros_like(w1[k])) for k in adapter if k.endswith(".B"))
    assert json.loads((out / "train.json").read_text())["spec"] == "gpt2"
    # resuming the tuned run keeps training the adapter only
    r = runner.invoke(app, ["train", str(out), "--steps", "4"])
    assert r.exit_code == 0, r.output
    w2 = _weights(out)
    assert all(torch.equal(w0[k], w2[k]) for k in w0)


@pytest.mark.parametrize(("options", "match"), [
    ("lora:rank=2,targets=mlp.gate", r"LoRA targets 'mlp.gate' match no module of gpt2; its layers have attn.qkv, "
                                     r"attn.q, attn.k, attn.v, attn.out, mlp.up, mlp.down"),
    ("lora:rank=64", r"LoRA rank 64 is larger than attn.q in decoder.layers.0.attn.qkv \(32 in, 32 out\)"),
    ("lora:rank=2,targets=attn.qkv+attn.q", r"targets 'attn.qkv' and 'attn.q' overlap"),
    ("adapterz", r"tuning kinds: full, lora"),
])
def test_train_bad_tuning_writes_nothing(base_run, tmp_path, options, match):
    import re

    base, data = base_run
    out = tmp_path / "bad"
    r = runner.invoke(app, ["train", str(base), "--tuning", options, "--data", data, "-o", str(out), *TRAIN])
    assert r.exit_code == 1 and re.search(match, r.output.replace("\n", " ")), r.output
    assert "Traceback" not in r.output and not out.exists()


def test_build_cli_prints_stats(tmp_path):
    r = runner.invoke(app, ["show", "gpt2", "-O", "tuning.kind=lora"])
    p = plan(pg.load_spec("gpt2", "tuning.kind=lora"))
    assert r.exit_code == 0 and f"tuning lora: {p.report()}, frozen {p.frozen:,}" in r.output, r.output


def test_eject_refuses_a_tuned_spec():
    from plmgraph.kinds import NotCompiledYet

    with pytest.raises(NotCompiledYet, match=r"eject writes the base architecture; tuning kind 'lora' is not ejected"):
        pg.eject(pg.load_spec(tiny("gpt2"), "tuning.kind=lora"))
