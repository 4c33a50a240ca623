"""`plmgraph eject`: every zoo spec that ejects, shrunk, is one standalone file that imports no
plmgraph, loads the compiled module's state_dict by the same names and computes the same
outputs (fp32, padding in the mask); the files pass `ruff check` and `ruff format --check`;
the kinds that cannot be ejected yet refuse, naming the block kind."""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, eject_cmds  # noqa: F401  (registers the command)
from plmgraph.kinds import NotCompiledYet
from plmgraph.spec import zoo_names

#: Every zoo spec ejects (but ZOO_REFUSED); these edits of zoo specs refuse, and what each refusal says.
REFUSED = {
    "transformer-xl -O embeddings.segments=2": "relative-attention stack with embedding segment",
    "bart-base -O decoder.block.mlp={kind: gated}": "decoder.layers.0.mlp differs from encoder.layers.0.mlp",
}
#: Zoo specs eject does not write yet, and what their refusal says (README, Eject).
ZOO_REFUSED = {"gemma2-9b": "the decoder's per-layer pattern (windows or rotary bases that differ by layer) is not "
                            "written yet"}
EJECTED = [n for n in zoo_names() if n not in ZOO_REFUSED]


class _NoPlmgraph(importlib.abc.MetaPathFinder):
    """Fails any import of plmgraph while an ejected file loads."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name == "plmgraph" or name.startswith("plmgraph."):
            raise ImportError(f"the ejected file imports {name}")
        return None


def load_ejected(path: Path):  # noqa: ANN201
    """Import the file at `path` with plmgraph gone from sys.modules and unimportable."""
    saved = {k: v for k, v in sys.modules.items() if k == "plmgraph" or k.startswith("plmgraph.")}
    for k in saved:
        del sys.modules[k]
    finder = _NoPlmgraph()
    sys.meta_path.insert(0, finder)
    try:
        spec = importlib.util.spec_from_file_location(f"ejected_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert not any(k == "plmgraph" or k.startswith("plmgraph.") for k in sys.modules)
        return module
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(saved)


def inputs(spec) -> dict:  # noqa: ANN001
    """Inputs with padding: the second sequence ends early."""
    g = torch.Generator().manual_seed(0)
    if spec.embeddings.patches is not None:
        p = spec.embeddings.patches
        return {"pixel_values": torch.randn(2, p.channels, p.image_size, p.image_size, generator=g)}
    V = spec.sizes.vocab
    ids = torch.randint(0, V, (2, 12), generator=g)  # longer than tiny's sliding window of 8
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0
    if spec.family == "encoder-decoder":
        dec = torch.randint(0, V, (2, 10), generator=g)
        dmask = torch.ones(2, 10, dtype=torch.long)
        dmask[1, 7:] = 0
        return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec, "decoder_attention_mask": dmask}
    out = {"input_ids": ids, "attention_mask": mask}
    if pg.resolve(spec).node(f"{next(iter(spec.stacks))}.layers.0.attn")["attrs"]["mask"] == "prefix":
        out["prefix_lengths"] = torch.tensor([4, 2])  # GLM: bidirectional over each sequence's prefix
    if spec.embeddings.segments and spec.embeddings.segments > 1:
        out["token_type_ids"] = (torch.arange(12)[None] >= 5).long().expand(2, 12)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("ejected")


@pytest.mark.parametrize("name", EJECTED)
def test_ejected_file_matches_the_compiled_module(name, folder):
    spec = tiny(name)
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(pg.eject(spec), encoding="utf-8")
    mod = load_ejected(path)
    model = pg.build(spec, seed=0).eval()
    ejected = mod.Model(mod.Config()).eval()
    ejected.load_state_dict(model.state_dict(), strict=True)  # the same names and shapes
    x = inputs(spec)
    with torch.no_grad():
        want, got = model(**x), ejected(**x)
    torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state)
    assert set(got) == {"last_hidden_state", *want.head_outputs}
    for head, logits in want.head_outputs.items():
        torch.testing.assert_close(got[head], logits)


def test_ejected_files_pass_ruff(folder):
    if shutil.which("ruff") is None:
        pytest.skip("ruff is installed with the test extra")
    for name in EJECTED:  # the parity test writes them; write any it did not (-k runs)
        path = folder / f"{name.replace('-', '_')}.py"
        if not path.exists():
            path.write_text(pg.eject(tiny(name)), encoding="utf-8")
    for cmd in (["ruff", "check", "--isolated"], ["ruff", "format", "--isolated", "--check"]):
        r = subprocess.run([*cmd, str(folder)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_ejected_refuses_by_name(case):
    name, edit = case.split(" -O ")
    with pytest.raises(NotCompiledYet, match=re.escape(REFUSED[case])):
        pg.eject(pg.load_spec(name, edit))


@pytest.mark.parametrize("name", sorted(ZOO_REFUSED))
def test_zoo_specs_eject_does_not_write_refuse_by_name(name):
    with pytest.raises(NotCompiledYet, match=re.escape(ZOO_REFUSED[name])):
        pg.eject(tiny(name))


def test_a_llama_file_has_only_the_branches_it_needs():
    src = pg.eject("llama2-7b")
    assert len(src.splitlines()) < 250
    for absent in ("LayerNorm", "nn.Embedding(cfg.max_positions", "Dropout", "bias=True", "import plmgraph",
                   "from safetensors"):
        assert absent not in src, absent
    for present in ("class RMSNorm", "class Rotary", "def apply_rotary", "class SelfAttention", "SwiGLU",
                    "vocab: int = 32000", "# [B, n, T, d]", 'if __name__ == "__main__":'):
        assert present in src, present
    gpt2 = pg.eject("gpt2")
    assert "RMSNorm" not in gpt2 and "apply_rotary" not in gpt2 and "nn.LayerNorm" in gpt2
    gqa = pg.eject("llama2-70b")
    assert "repeat_interleave" in gqa and "repeat_interleave" not in src


def test_wiring_variants_are_written():
    assert "return x + a + m" in pg.eject("pythia-1.4b")  # parallel attention and MLP
    assert "self.window" in pg.eject("mistral-7b")  # sliding window
    assert "self.window" not in pg.eject("llama2-7b")


def test_albert_runs_one_shared_block():
    src = pg.eject("albert-base")
    assert 'nn.ModuleDict({"0": Block(cfg)})' in src and "range(self.depth)" in src


def test_the_smoke_test_runs_on_its_own(tmp_path):
    path = tmp_path / "llama.py"
    path.write_text(pg.eject("llama2-7b"), encoding="utf-8")
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "'lm': (2, 8, 128)" in r.stdout


def test_cli_writes_the_file_and_weights_load(tmp_path):
    spec = tiny("gpt2")
    model = pg.build(spec, seed=1).eval()
    pg.save(model, tmp_path / "saved")
    out = tmp_path / "gpt2.py"
    r = CliRunner().invoke(app, ["eject", str(tmp_path / "saved"), "-o", str(out), "--weights",
                                 str(tmp_path / "saved")])
    assert r.exit_code == 0, r.output
    src = out.read_text(encoding="utf-8")
    assert "def load(" in src and "safetensors" in src
    mod = load_ejected(out)
    ejected = mod.load()
    x = inputs(spec)
    with torch.no_grad():
        torch.testing.assert_close(ejected(**x)["lm"], model(**x).logits)


def test_cli_refuses_with_exit_1(tmp_path):
    out = str(tmp_path / "x.py")
    r = CliRunner().invoke(app, ["eject", "transformer-xl", "-O", "embeddings.segments=2", "-o", out])
    assert r.exit_code == 1 and not (tmp_path / "x.py").exists()
    assert "segment is not written yet" in r.output and "Traceback" not in r.output
    pg.save(pg.build(tiny("gpt2")), tmp_path / "gpt2")
    r = CliRunner().invoke(app, ["eject", "llama2-7b", "--weights", str(tmp_path / "gpt2")])
    assert r.exit_code == 1 and "do not match" in r.output
    r = CliRunner().invoke(app, ["eject", "gpt2", "-o", str(tmp_path / "x.txt")])
    assert r.exit_code == 2


def test_pg_eject_is_callable_after_importing_the_package():
    import plmgraph.eject  # noqa: F401  (binds the attribute plmgraph.eject to the package, or not)

    package = sys.modules["plmgraph.eject"]
    assert callable(pg.eject) and pg.eject("gpt2") == package.eject("gpt2") == package("gpt2")


#: Wiring and kinds no zoo spec ejects with, as edits of a tiny zoo spec.
VARIANTS = {
    "sandwich": ("gpt2", "block.placement=sandwich"),
    "sinusoidal": ("bert-base", "position={kind: sinusoidal}"),
    "alibi causal": ("gpt2", "position={kind: alibi}"),
    "alibi bidirectional": ("bert-base", "position={kind: alibi}"),
    "qk_norm rmsnorm": ("llama2-7b", "block.attention.qk_norm=true"),
    "qk_norm layernorm": ("gpt2", "block.attention.qk_norm=true"),
    "shared parallel norm": ("pythia-1.4b", "block.residual.shared_norm=true"),
    "deepnorm": ("bert-base", "block.residual={kind: deepnorm}"),
    "rmsnorm offset": ("llama2-7b", "block.norm.offset=1.0"),
    "partial rotary": ("llama2-7b", "position.fraction=0.5"),
    "rope linear": ("llama2-7b", "position.scaling={kind: linear, factor: 2.0}"),
    "rope llama3": ("llama2-7b", "position.scaling={kind: llama3, factor: 8.0, original_max_positions: 16, "
                                 "low_freq_factor: 1.0, high_freq_factor: 4.0}"),
    "rope yarn": ("llama2-7b", "position.scaling={kind: yarn, factor: 4.0, original_max_positions: 16}"),
    # the inputs are 12 long: past the trained context of 8, so the base grows
    "rope dynamic": ("llama2-7b", "position.scaling={kind: dynamic, factor: 2.0, original_max_positions: 8}"),
    "albert groups": ("albert-base", ["layers=4", "sharing={kind: groups, groups: 2}"]),  # blocks 0 0 2 2
    # MPNet's layout: learned positions plus a T5 bias shared by every layer (relative_position)
    "t5 bias next to learned positions": ("bert-base", "relative_position={kind: t5_relative, buckets: 8, "
                                                       "max_distance: 16}"),
    # DeBERTa-v3: disentangled attention over a bucketed, LayerNorm-ed table; v2 with absolute positions too,
    # its own position projections, c2p only
    "deberta v3": ("bert-base", ["position={kind: disentangled, buckets: 4, max_distance: 8}",
                                 "position.norm={kind: layernorm}", "block.attention.kind=disentangled"]),
    "deberta absolute + c2p": ("bert-base", ["relative_position={kind: disentangled, buckets: null, max_distance: 4}",
                                             "block.attention={kind: disentangled, share_keys: false, c2p: true, "
                                             "p2c: false, position_dropout: 0.1}"]),
    "deberta own projections": ("bert-base", ["position={kind: disentangled, buckets: 4, max_distance: 8}",
                                              "block.attention={kind: disentangled, share_keys: false, "
                                              "position_dropout: 0.1, dropout: 0.1}"]),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_match_the_compiled_module(variant, tmp_path):
    name, edit = VARIANTS[variant]
    spec = pg.load_spec(tiny(name), edit)
    path = tmp_path / "variant.py"
    path.write_text(pg.eject(spec), encoding="utf-8")
    mod = load_ejected(path)
    model = pg.build(spec, seed=0).eval()
    with torch.no_grad():  # nonzero offsets and biases everywhere, so a missed term shows
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ejected = mod.Model(mod.Config()).eval()
    ejected.load_state_dict(model.state_dict(), strict=True)
    x = inputs(spec)
    with torch.no_grad():
        want, got = model(**x), ejected(**x)
    torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state)
    for head, logits in want.head_outputs.items():
        torch.testing.assert_close(got[head], logits)
    r = subprocess.run(["ruff", "format", "--isolated", "--check", str(path)], capture_output=True, text=True)
    assert shutil.which("ruff") is None or r.returncode == 0, r.stdout


def test_glm_blank_infilling_inputs_match(tmp_path):
    """GLM's 2D positions and prefix mask as blank infilling feeds them: Part A of 8 tokens, then a
    span of 4 whose tokens sit at their [MASK]'s text position 3 and count 1..4 inside the span."""
    spec = tiny("glm")
    path = tmp_path / "glm.py"
    path.write_text(pg.eject(spec), encoding="utf-8")
    mod = load_ejected(path)
    model = pg.build(spec, seed=0).eval()
    ejected = mod.Model(mod.Config()).eval()
    ejected.load_state_dict(model.state_dict(), strict=True)
    x = inputs(spec)
    text = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 3, 3, 3, 3])
    span = torch.tensor([0] * 8 + [1, 2, 3, 4])
    x["position_ids"] = torch.stack((text, span))[None].expand(2, 2, 12).contiguous()
    x["prefix_lengths"] = torch.tensor([8, 8])
    with torch.no_grad():
        want, got = model(**x), ejected(**x)
    torch.testing.assert_close(got["lm"], want.logits)
    with torch.no_grad():  # the span positions matter: without them the logits differ
        plain = ejected(**{k: v for k, v in x.items() if k != "position_ids"})
    assert not torch.allclose(plain["lm"], got["lm"])


def _pair(spec, tmp_path):  # noqa: ANN001, ANN202
    """The compiled model (weights nudged off their init, so every term shows) and its ejected twin."""
    path = tmp_path / "relative.py"
    path.write_text(pg.eject(spec), encoding="utf-8")
    mod = load_ejected(path)
    model = pg.build(spec, seed=0).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ejected = mod.Model(mod.Config()).eval()
    ejected.load_state_dict(model.state_dict(), strict=True)
    return model, ejected


def test_xlnet_streams_segments_and_memory_match(tmp_path):
    """XLNet's segment term, permutation mask and query stream (target_mapping), then a second segment
    through the memory."""
    model, ejected = _pair(tiny("xlnet-base"), tmp_path)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 128, (2, 8), generator=g)
    seg = (torch.arange(8)[None] >= 5).long().expand(2, 8)
    perm = (torch.rand(2, 8, 8, generator=g) > 0.5).float()
    target = torch.zeros(2, 3, 8)
    target[:, 0, 5], target[:, 1, 6], target[:, 2, 7] = 1.0, 1.0, 1.0
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        want = model(ids, attention_mask=mask, token_type_ids=seg, perm_mask=perm, target_mapping=target)
        got = ejected(ids, attention_mask=mask, token_type_ids=seg, perm_mask=perm, target_mapping=target)
        torch.testing.assert_close(got["lm"], want.logits)  # [B, 3, vocab]: the query stream's
        first = model(ids, token_type_ids=seg, use_cache=True)
        mine = ejected(ids, token_type_ids=seg, use_cache=True)
        for a, b in zip(mine["mems"], first.past_key_values, strict=True):
            torch.testing.assert_close(a, b)
        nxt = torch.randint(0, 128, (2, 5), generator=g)
        want = model(nxt, past_key_values=first.past_key_values)
        got = ejected(nxt, mems=mine["mems"])
    torch.testing.assert_close(got["lm"], want.logits)


@pytest.mark.parametrize("edit", [None, "block.placement=pre", "block.placement=sandwich",
                                  ["layers=4", "sharing={kind: groups, groups: 2}"], "block.residual={kind: deepnorm}"])
def test_transformer_xl_segments_through_the_memory(tmp_path, edit):
    """Three segments of 4 tokens with a memory of 6 (so it drops the oldest states), as the
    recurrence runs it; wiring variants as edits."""
    spec = pg.load_spec(tiny("transformer-xl"), ["block.attention.memory=6", *([edit] if isinstance(edit, str)
                                                                                else edit or [])])
    model, ejected = _pair(spec, tmp_path)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(2))
    past, mems = None, None
    with torch.no_grad():
        for s in range(0, 12, 4):
            want = model(ids[:, s:s + 4], past_key_values=past, use_cache=True)
            got = ejected(ids[:, s:s + 4], mems=mems, use_cache=True)
            torch.testing.assert_close(got["lm"], want.logits)
            past, mems = want.past_key_values, got["mems"]
    assert mems[0].shape[1] == 6
