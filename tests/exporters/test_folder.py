"""Export folders (`plmgraph export ... -o FOLDER --kv-cache`) loaded in the real deployment tools:
ONNX Runtime GenAI's `og.Model` + `og.Generator`, Hugging Face Optimum's `ORTModelForCausalLM`,
transformers' `AutoConfig` / `AutoTokenizer`; each generates PyTorch's greedy tokens.

Optimum (optimum-onnx 0.1) pins transformers < 4.58, so it cannot live in this environment (5.24);
its test runs in a separate interpreter named by ``PLMGRAPH_OPTIMUM_PYTHON`` (a venv with
``pip install optimum-onnx``, see the README's Deploy section) and is skipped without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import deploy_models
import numpy as np
import pytest
from helpers import tiny
from plmgraph.exporters import onnx_folder

import plmgraph as pg
from plmgraph.errors import CheckpointError, ExportError, InputError, ResourceError
from plmgraph.runtime import OrtModel
from plmgraph.train.generate import generate

og = pytest.importorskip("onnxruntime_genai")
PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]  # GenAI: rows of one length (see test_genai_...)


def test_folder_files_and_configs_describe_the_graph():
    model, folder = deploy_models.folder("llama2-7b")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "genai_config.json", "generation_config.json",
                                                        "model.onnx", "spec.yaml", "special_tokens_map.json",
                                                        "tokenizer.json", "tokenizer_config.json"]
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(folder)
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.vocab_size, cfg.use_cache) == ("llama", 2, 300, True)
    hf_tok = AutoTokenizer.from_pretrained(folder)
    text = "the quick brown fox"
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == deploy_models.tokenizer().encode(text)
    g = json.loads((folder / "genai_config.json").read_text())
    dec = g["model"]["decoder"]
    assert dec["inputs"] == {"input_ids": "input_ids", "attention_mask": "attention_mask",  # rotary: no position_ids
                             "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"}
    assert (dec["num_hidden_layers"], dec["num_key_value_heads"], dec["head_size"]) == (2, 4, 16)
    assert g["search"]["past_present_share_buffer"] is True and g["model"]["context_length"] == 64
    assert g["model"]["eos_token_id"] == deploy_models.tokenizer().roles["eos"]
    m = OrtModel(folder)
    assert "position_ids" not in m.inputs and m.vocab == 300
    import onnx

    nodes = onnx.load(str(folder / "model.onnx")).graph.node
    ops = {n.op_type for n in nodes}
    assert "GroupQueryAttention" in ops and "RotaryEmbedding" not in ops  # the fused graph is what the tools load
    gqa = next(n for n in nodes if n.op_type == "GroupQueryAttention")
    assert {a.name: a.i for a in gqa.attribute}["do_rotary"] == 1 and gqa.input[1] == ""  # rotary inside, packed QKV
    _, gpt2 = deploy_models.folder("gpt2")  # learned positions: a position_ids input, and GenAI is told so
    assert OrtModel(gpt2).inputs["position_ids"].shape == ["batch", "seq"]
    assert json.loads((gpt2 / "genai_config.json").read_text())["model"]["decoder"]["inputs"]["position_ids"] == \
        "position_ids"


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_genai_loads_the_folder_and_generates_pytorchs_greedy_tokens(name):
    model, folder = deploy_models.folder(name)
    if name == "gpt2":  # GenAI's own gpt2 type wants a combined past; the folder says its generic decoder path
        assert json.loads((folder / "genai_config.json").read_text())["model"]["type"] == "llama"
    m = og.Model(str(folder))
    params = og.GeneratorParams(m)
    params.set_search_options(do_sample=False, max_length=17, batch_size=2)
    gen = og.Generator(m, params)
    gen.append_tokens(np.array(PROMPTS, np.int32))
    while not gen.is_done():
        gen.generate_next_token()
    want = generate(model, deploy_models.tokenizer(), PROMPTS, 12, temperature=0.0)
    for i in range(2):
        got = [int(t) for t in gen.get_sequence(i)]
        assert got == want[i, :len(got)].tolist() and len(got) > 10
    tok = og.Tokenizer(m)  # GenAI reads the folder's tokenizer files too
    text = "the quick brown fox"
    assert [int(t) for t in tok.encode(text)] == deploy_models.tokenizer().encode(text)


OPTIMUM = os.environ.get("PLMGRAPH_OPTIMUM_PYTHON")
OPTIMUM_SCRIPT = """
import json, sys, torch
from optimum.onnxruntime import ORTModelForCausalLM
m = ORTModelForCausalLM.from_pretrained(sys.argv[1])
ids, mask = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))
out = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0)
print(json.dumps({"names": m.input_names if hasattr(m, "input_names") else None, "ids": out.tolist()}))
"""


@pytest.mark.skipif(not OPTIMUM, reason="PLMGRAPH_OPTIMUM_PYTHON names no interpreter with optimum-onnx (it pins "
                    "transformers < 4.58, which cannot share this environment)")
@pytest.mark.parametrize("name", ["llama2-7b", "gpt2"])
def test_optimum_loads_the_folder_left_padded_batch_included(name):
    model, folder = deploy_models.folder(name)
    prompts = [[40, 41, 42], [5, 6, 7, 8, 9, 10]]
    ids = np.zeros((2, 6), np.int64)
    mask = np.zeros((2, 6), np.int64)
    for i, p in enumerate(prompts):
        ids[i, 6 - len(p):], mask[i, 6 - len(p):] = p, 1
    r = subprocess.run([OPTIMUM, "-c", OPTIMUM_SCRIPT, str(folder), json.dumps(ids.tolist()),
                        json.dumps(mask.tolist())], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])["ids"]
    want = generate(model, deploy_models.tokenizer(), prompts, 10, temperature=0.0)
    assert got == want.tolist()
    assert got[0][:3] == [0, 0, 0] and len(set(got[0][6:])) > 2


@pytest.mark.skipif(not OPTIMUM, reason="PLMGRAPH_OPTIMUM_PYTHON names no interpreter with optimum-onnx")
def test_optimum_feature_extraction_loads_an_encoder_folder(tmp_path):
    import torch

    from plmgraph.train.tokenizer import train_tokenizer

    spec = tiny("bert-base", vocab=200)
    model = pg.build(spec, seed=0).eval()
    tok = train_tokenizer(deploy_models.TEXTS, spec, vocab_size=200)
    report = onnx_folder.export_folder(model, tmp_path / "bert", tokenizer=tok, kv_cache=False, verify=False)
    assert "genai_config.json" not in report.files and "config.json" in report.files
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 20, 21, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        want = model(ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    script = ("import json, sys, torch\nfrom optimum.onnxruntime import ORTModelForFeatureExtraction\n"
              "m = ORTModelForFeatureExtraction.from_pretrained(sys.argv[1])\n"
              "ids, mask = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))\n"
              "h = m(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state\n"
              "print(json.dumps(h.tolist()))\n")
    r = subprocess.run([OPTIMUM, "-c", script, str(tmp_path / "bert"), json.dumps(ids.tolist()),
                        json.dumps(mask.tolist())], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.tensor(json.loads(r.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ writing the folder, and refusing


def test_folder_is_written_atomically_and_user_files_are_kept(tmp_path, monkeypatch):
    model = deploy_models.model("llama2-7b")
    out = tmp_path / "deploy"

    def boom(*a, **k):
        (a[1].parent / "model.onnx").write_bytes(b"half")  # as if the export died halfway
        raise ExportError("exporting failed: boom")

    monkeypatch.setattr("plmgraph.exporters.onnx.export_onnx", boom)
    with pytest.raises(ExportError, match="boom"):
        onnx_folder.export_folder(model, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"holds files plmgraph did not write \(notes.txt\).*--force"):
        onnx_folder.export_folder(model, out)
    with pytest.raises(ExportError, match="boom"):
        onnx_folder.export_folder(model, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_folders_that_are_not_built_are_refused():
    with pytest.raises(ExportError, match=r"add --kv-cache"):
        onnx_folder.export_folder(deploy_models.model("llama2-7b"), "never", kv_cache=False)
    assert not os.path.exists("never")


def test_export_memory_is_checked_before_building(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("plmgraph.compile.build"), "available_memory", lambda device: 2**30)
    with pytest.raises(ResourceError, match=r"exporting 7,000,000,000 parameters to ONNX needs about 104.8 GiB.*"
                                            r"only 1.0 GiB is free"):
        onnx_folder.check_export_memory(7_000_000_000, name="llama2-7b")
    onnx_folder.check_export_memory(1_000_000)


def test_a_corrupt_truncated_or_foreign_folder_is_one_message(tmp_path):
    bad = deploy_models.copy("llama2-7b", tmp_path / "truncated")
    data = (bad / "model.onnx").read_bytes()
    (bad / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"model.onnx: ONNX Runtime cannot load it: not a complete ONNX model"):
        OrtModel(bad)
    (bad / "model.onnx").write_text("not onnx at all")
    with pytest.raises(InputError, match=r"cannot load it"):
        OrtModel(bad / "model.onnx")
    other = deploy_models.copy("llama2-7b", tmp_path / "other")
    cfg = json.loads((other / "genai_config.json").read_text())
    cfg["model"]["decoder"]["num_hidden_layers"] = 4  # the genai_config of a 4-layer sibling
    (other / "genai_config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"num_hidden_layers is 4 but model.onnx has 2: the folder's files come "
                                         r"from another model"):
        OrtModel(other)
    (other / "genai_config.json").unlink()
    cfg = json.loads((other / "config.json").read_text())
    cfg["vocab_size"] = 32000
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"config.json vocab_size is 32000 but model.onnx has 300"):
        OrtModel(other)
    (other / "config.json").unlink()
    (other / "model.onnx").unlink()
    with pytest.raises(InputError, match=r"no model.onnx in the folder"):
        OrtModel(other)
    with pytest.raises(InputError, match=r"no such file or folder"):
        OrtModel(tmp_path / "nowhere")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
