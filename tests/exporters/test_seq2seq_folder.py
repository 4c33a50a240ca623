"""Encoder-decoder deploy folders (Optimum's seq2seq layout, exporters/onnx_seq2seq.py): the files and
their names, cached generation on ONNX Runtime equal to PyTorch's greedy tokens (left-padded batches),
Hugging Face Optimum's ORTModelForSeq2SeqLM loading the folder and generating the same tokens, an
imported tiny random Hugging Face T5 against transformers' own generate, and a failed verification
leaving nothing behind.

Each folder is exported once per test process (about a minute each on a loaded machine). The
Optimum cases run in the interpreter ``PLMGRAPH_OPTIMUM_PYTHON`` names (see tests/conftest.py and
tests/exporters/test_folder.py: optimum-onnx pins an older transformers).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess

import deploy_models
import numpy as np
import pytest
import torch
from helpers import tiny
from plmgraph.exporters import onnx_folder, onnx_seq2seq

import plmgraph as pg
from plmgraph.errors import ExportError
from plmgraph.runtime import OrtModel
from plmgraph.train.generate import generate

OPTIMUM = os.environ.get("PLMGRAPH_OPTIMUM_PYTHON")
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [40, 41, 42]]  # of two lengths: the batch is left-padded
NAMES = ["t5-small", "bart-base"]
SPREAD = {"t5-small": 1.0, "bart-base": 0.5}  # (picked so that greedy decoding does not repeat one token)


def seq2seq_model(name: str, layers: int = 2) -> object:
    """A tiny T5-like or BART-like model whose spec converts to a Hugging Face config (T5 has no
    position limit; BART's lm head carries final_logits_bias), weights redrawn with a larger spread
    so that greedy decoding does not repeat one token (see tests/deploy_models.py)."""
    spec = tiny(name, vocab=deploy_models.VOCAB, max_positions=None, layers=layers) if name.startswith("t5") else \
        pg.load_spec(tiny(name, vocab=deploy_models.VOCAB, layers=layers), "heads.0.bias=true")
    m = pg.build(spec, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * SPREAD[name])
    return m


@functools.cache
def folder(name: str) -> tuple[object, object, object]:
    """(model, folder, FolderReport or None): t5 through the command line from a saved model folder with
    its tokenizer, bart through `export_folder`; both verified."""
    m = seq2seq_model(name)
    out = deploy_models._ROOT / f"s2s-{name}"
    if name.startswith("t5"):
        from typer.testing import CliRunner

        from plmgraph.cli import app, export_cmds  # noqa: F401  (registers `export`)

        ck = deploy_models._ROOT / f"s2s-{name}-ck"
        pg.save(m, ck)
        deploy_models.tokenizer().save(ck / "tokenizer.json")
        r = CliRunner().invoke(app, ["export", str(ck), "-o", str(out), "--json"])
        assert r.exit_code == 0, r.output
        return m, out, json.loads(r.output[r.output.index("{"):])["verification"]
    report = onnx_folder.export_folder(m, out, tokenizer=deploy_models.tokenizer())
    return m, out, report.verification.to_dict()


def optimum_generate(path: object, ids: np.ndarray, mask: np.ndarray, n: int) -> dict:
    script = """
import json, sys, torch
from optimum.onnxruntime import ORTModelForSeq2SeqLM
m = ORTModelForSeq2SeqLM.from_pretrained(sys.argv[1])
ids, mask = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))
out = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=int(sys.argv[4]), do_sample=False)
print(json.dumps({"merged": m.decoder.is_merged, "cache": m.decoder.can_use_cache, "ids": out.tolist()}))
"""
    r = subprocess.run([OPTIMUM, "-c", script, str(path), json.dumps(ids.tolist()), json.dumps(mask.tolist()),
                        str(n)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def padded(prompts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    T = max(map(len, prompts))
    ids, mask = np.zeros((len(prompts), T), np.int64), np.zeros((len(prompts), T), np.int64)
    for i, p in enumerate(prompts):
        ids[i, T - len(p):], mask[i, T - len(p):] = p, 1
    return ids, mask


# ------------------------------------------------------------------ the folder


@pytest.mark.parametrize("name", NAMES)
def test_seq2seq_folder_has_optimums_files_and_names(name):
    import onnx
    from transformers import AutoConfig, AutoTokenizer

    _, out, verification = folder(name)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "decoder_model_merged.onnx", "encoder_model.onnx",
                                                     "generation_config.json", "spec.yaml", "special_tokens_map.json",
                                                     "tokenizer.json", "tokenizer_config.json"]
    enc = onnx.load(str(out / "encoder_model.onnx"))
    assert [i.name for i in enc.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in enc.graph.output] == ["last_hidden_state"]
    dec = onnx.load(str(out / "decoder_model_merged.onnx"))
    per_layer = [f"{i}.{part}.{kv}" for i in range(2) for part in ("decoder", "encoder") for kv in ("key", "value")]
    assert [i.name for i in dec.graph.input] == ["input_ids", "encoder_attention_mask", "encoder_hidden_states",
                                                 *(f"past_key_values.{n}" for n in per_layer), "use_cache_branch"]
    assert [o.name for o in dec.graph.output] == ["logits", *(f"present.{n}" for n in per_layer)]
    assert [n.op_type for n in dec.graph.node] == ["If"]  # the merged decoder: one If over both branches
    # weights stored once: the merged decoder is smaller than its two branches' weights would be
    weights = sum(p.numel() * 4 for n, p in folder(name)[0].named_parameters() if not n.startswith("encoder."))
    assert (out / "decoder_model_merged.onnx").stat().st_size < 1.5 * weights
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.model_type == name.split("-")[0] and cfg.is_encoder_decoder and cfg.vocab_size == deploy_models.VOCAB
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == gen["pad_token_id"] == deploy_models.tokenizer().roles["pad"]
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert hf_tok("the quick brown fox", add_special_tokens=False)["input_ids"] == \
        deploy_models.tokenizer().encode("the quick brown fox")
    cases = {c["case"] for c in verification["checks"]}
    assert any(c.startswith("encoder batch 3") for c in cases) and any("ORT cache" in c for c in cases)
    assert any("PyTorch cache" in c for c in cases) and verification["tolerance_used"] <= 1.0
    outputs = {c["output"] for c in verification["checks"]}
    assert {"last_hidden_state", "logits", "present.1.decoder.value", "present.1.encoder.key"} <= outputs


@pytest.mark.parametrize("name", NAMES)
def test_cached_ort_generation_equals_pytorch_greedy(name):
    model, out, _ = folder(name)
    m = OrtModel(out)
    assert m.encoder is not None and m.layers == 2 and m.vocab == deploy_models.VOCAB
    got = m.generate(PROMPTS, 12, temperature=0.0)
    want = generate(model, deploy_models.tokenizer(), PROMPTS, 12, temperature=0.0)
    assert got.tolist() == want.tolist()
    assert len(set(got.flatten().tolist())) > 3 and got[0].tolist() != got[1].tolist()
    text = ["the quick brown fox", "a model"]
    assert m.generate(text, 8, temperature=0.0).tolist() == \
        generate(model, deploy_models.tokenizer(), text, 8, temperature=0.0).tolist()
    # a seeded sample follows PyTorch's seeded sample on the same logits
    kw = dict(temperature=0.8, top_k=20, seed=3)
    assert m.generate(PROMPTS, 10, **kw).tolist() == \
        generate(model, deploy_models.tokenizer(), PROMPTS, 10, **kw).tolist()


def test_cli_generate_on_a_seq2seq_folder():
    from typer.testing import CliRunner

    from plmgraph.cli import app, train_cmds  # noqa: F401  (registers `generate`)

    model, out, _ = folder("t5-small")
    r = CliRunner().invoke(app, ["generate", str(out), "--prompt", "the quick brown fox", "-n", "8", "--greedy"])
    assert r.exit_code == 0, r.output
    tok = deploy_models.tokenizer()
    want = generate(model, tok, "the quick brown fox", 8, temperature=0.0)[0].tolist()
    assert r.output.strip() == tok.decode(want)


def test_cli_run_on_a_seq2seq_folder_is_the_first_decoder_step():
    from typer.testing import CliRunner

    from plmgraph.cli import app, deploy_cmds  # noqa: F401  (registers `run`)

    model, out, _ = folder("t5-small")
    r = CliRunner().invoke(app, ["run", str(out), "--input-ids", "5,6,7,8", "--json", "--top", "3"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output[r.output.index("{"):])
    assert got["outputs"]["logits"] == [1, 1, deploy_models.VOCAB]
    assert got["outputs"]["present.1.encoder.key"] == [1, 4, 4, 16]
    pad = deploy_models.tokenizer().roles["pad"]
    with torch.no_grad():
        want = model(torch.tensor([[5, 6, 7, 8]]), decoder_input_ids=torch.tensor([[pad]])).logits[0, -1]
    assert [t["id"] for t in got["top"]] == want.topk(3).indices.tolist()


def test_cli_bench_on_a_seq2seq_folder():
    from typer.testing import CliRunner

    from plmgraph.cli import app, deploy_cmds  # noqa: F401  (registers `bench`)

    _, out, _ = folder("t5-small")
    r = CliRunner().invoke(app, ["bench", str(out), "--prompt-len", "5", "--new-tokens", "3", "--repeats", "1",
                                 "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output[r.output.index("{"):])
    assert got["spec"] == "t5-small" and set(got["decode_tokens_per_s"]) == {"ort", "torch"}


@pytest.mark.skipif(not OPTIMUM, reason="PLMGRAPH_OPTIMUM_PYTHON names no interpreter with optimum-onnx")
@pytest.mark.parametrize("name", NAMES)
def test_optimum_seq2seq_loads_the_folder_and_generates_pytorchs_tokens(name):
    model, out, _ = folder(name)
    ids, mask = padded(PROMPTS)
    got = optimum_generate(out, ids, mask, 10)
    assert got["merged"] and got["cache"]
    want = generate(model, deploy_models.tokenizer(), PROMPTS, 10, temperature=0.0)
    assert got["ids"] == want.tolist()


# ------------------------------------------------------------------ an imported Hugging Face T5


def test_imported_hf_t5_folder_generates_transformers_tokens(tmp_path):
    import transformers as tf

    torch.manual_seed(0)  # encoder and decoder depths differ: the folder's decoder is num_decoder_layers deep
    cfg = tf.T5Config(vocab_size=120, d_model=32, d_kv=8, d_ff=48, num_layers=3, num_decoder_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
    hf = tf.T5ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3)
    hf.save_pretrained(tmp_path / "hf")
    model = pg.from_hf(tmp_path / "hf").eval()
    report = onnx_folder.export_folder(model, tmp_path / "deploy")
    assert report.verification.tolerance_used <= 1.0
    ids, mask = padded([[5, 6, 7, 8, 9, 10], [30, 31, 32]])
    with torch.no_grad():
        want = hf.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=10,
                           do_sample=False).tolist()
    got = OrtModel(tmp_path / "deploy").generate(ids, 10, temperature=0.0, attention_mask=mask).tolist()
    assert got == want and len(set(want[0])) > 2
    if OPTIMUM:  # the same folder in Optimum (a skip would hide the main check above)
        assert optimum_generate(tmp_path / "deploy", ids, mask, 10)["ids"] == want


# ------------------------------------------------------------------ failures


def test_failed_verification_leaves_nothing(tmp_path, monkeypatch):
    model = seq2seq_model("t5-small", layers=1)
    real = onnx_seq2seq.verify_seq2seq

    def drifted(m, path, **kw):  # PyTorch's weights move after the export: ONNX Runtime must disagree
        with torch.no_grad():
            m.decoder.layers["0"].cross.kv.weight.add_(0.05)
        return real(m, path, **kw)

    monkeypatch.setattr(onnx_seq2seq, "verify_seq2seq", drifted)
    with pytest.raises(ExportError, match=r"differs from PyTorch on decoder batch 1.*max abs diff"):
        onnx_folder.export_folder(model, tmp_path / "deploy")
    assert list(tmp_path.iterdir()) == []


def test_seq2seq_folders_refuse_what_optimum_cannot_load(tmp_path):
    import yaml

    data = tiny("t5-small").model_dump(mode="json", exclude_unset=True)
    data["heads"] = [{"kind": "token_classification", "labels": 3}]
    (tmp_path / "t5-tagger.yaml").write_text(yaml.safe_dump(data))
    model = pg.build(pg.load_spec(tmp_path / "t5-tagger.yaml"))
    with pytest.raises(ExportError, match=r"heads token_classification: the seq2seq folder needs one language-model "
                                          r"head \(lm\)"):
        onnx_folder.export_folder(model, tmp_path / "never")
    assert not (tmp_path / "never").exists()
