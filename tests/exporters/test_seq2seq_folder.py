"""Encoder-decoder deploy folders (Optimum's seq2seq layout, exporters/onnx_seq2seq.py): the files and
their names, ONNX Runtime's fused kernels in both graphs (and in both branches of the merged decoder's
If), the weights stored once, cached generation on ONNX Runtime equal to PyTorch's greedy tokens
(left-padded batches), Hugging Face Optimum's ORTModelForSeq2SeqLM loading the folder and generating
the same tokens, the plain graphs (``--no-fuse``) doing the same, blocks no kernel fits left plain and
named, an imported tiny random Hugging Face T5 against transformers' own generate, and a failed
verification leaving nothing behind.

Each folder is exported once per test process (about a minute each on a loaded machine). The
Optimum cases run in the interpreter ``PLMGRAPH_OPTIMUM_PYTHON`` names (see tests/conftest.py and
tests/exporters/test_folder.py: optimum-onnx pins an older transformers).
"""

from __future__ import annotations

import collections
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
def folder(name: str, fuse: bool = True) -> tuple[object, object, object]:
    """(model, folder, verification dict): t5 through the command line from a saved model folder with
    its tokenizer (``--no-fuse`` for the plain graphs), bart through `export_folder(fuse=...)`; both
    verified."""
    m = seq2seq_model(name)
    tag = "" if fuse else "-plain"
    out = deploy_models._ROOT / f"s2s-{name}{tag}"
    if name.startswith("t5"):
        from typer.testing import CliRunner

        from plmgraph.cli import app, export_cmds  # noqa: F401  (registers `export`)

        ck = deploy_models._ROOT / f"s2s-{name}{tag}-ck"
        pg.save(m, ck)
        deploy_models.tokenizer().save(ck / "tokenizer.json")
        r = CliRunner().invoke(app, ["export", str(ck), "-o", str(out), *([] if fuse else ["--no-fuse"]), "--json"])
        assert r.exit_code == 0, r.output
        return m, out, json.loads(r.output[r.output.index("{"):])["verification"]
    report = onnx_folder.export_folder(m, out, tokenizer=deploy_models.tokenizer(), fuse=fuse)
    return m, out, report.verification.to_dict()


def plain_folder(name: str) -> tuple[object, object, object]:
    """`folder` of the plain graphs."""
    return folder(name, fuse=False)


def ops(graph: object) -> collections.Counter:
    """(domain, op) counts of one ONNX graph's own nodes."""
    return collections.Counter((n.domain, n.op_type) for n in graph.node)


def branches(path: object) -> dict[str, object]:
    """The merged decoder's If branches by name (then_branch: cached, else_branch: first step)."""
    import onnx

    (node,) = onnx.load(str(path)).graph.node
    assert node.op_type == "If"
    return {a.name: a.g for a in node.attribute}


MS = "com.microsoft"
ATTENTION = {(MS, "MultiHeadAttention"), (MS, "GroupQueryAttention"), (MS, "Attention")}


def assert_weights_stored_once(model: object, path: object) -> None:
    """Every initializer of the merged decoder (outer graph and branches) of more than 16 values is
    distinct, none is another's transpose (a tied head's folded copy), and together they are no
    larger than the PyTorch model's parameters outside the encoder."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    tensors = [numpy_helper.to_array(t) for g in (m.graph, *branches(path).values()) for t in g.initializer]
    big = [a for a in tensors if a.size > 16]
    keys = [(a.shape, hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()) for a in big]
    assert len(set(keys)) == len(keys)
    transposed = {(a.T.shape, hashlib.sha1(np.ascontiguousarray(a.T).tobytes()).hexdigest()) for a in big
                  if a.ndim == 2 and a.shape[0] != a.shape[1]}
    assert not transposed & set(keys)
    params = sum(p.numel() * 4 for n, p in model.named_parameters() if not n.startswith("encoder."))
    assert sum(a.nbytes for a in tensors) <= params + 4096


def node_count(path: object) -> int:
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    return sum(len(a.g.node) for n in g.node for a in n.attribute if a.HasField("g")) or len(g.node)


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
    # fused (the default): per layer, the encoder's self-attention as MultiHeadAttention; in both branches
    # the decoder's as GroupQueryAttention (the cache inside) and the cross-attention as MultiHeadAttention
    norm = (MS, "SkipSimplifiedLayerNormalization" if name.startswith("t5") else "SkipLayerNormalization")
    enc_ops = ops(enc.graph)
    assert enc_ops[(MS, "MultiHeadAttention")] == 2 and enc_ops[norm] >= 2 and not enc_ops[("", "Softmax")]
    for branch in branches(out / "decoder_model_merged.onnx").values():
        got = ops(branch)
        assert got[(MS, "GroupQueryAttention")] == 2 and got[(MS, "MultiHeadAttention")] == 2, got
        assert got[norm] >= 4 and not got[("", "Softmax")]
        if name.startswith("bart"):
            assert got[(MS, "BiasGelu")] + got[(MS, "FastGelu")] + got[(MS, "Gelu")] == 2
    assert_weights_stored_once(folder(name)[0], out / "decoder_model_merged.onnx")
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
    assert verification["fused"]
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


# ------------------------------------------------------------------ the plain graphs, blocks left plain


@pytest.mark.parametrize("name", NAMES)
def test_no_fuse_writes_the_plain_graphs_and_they_generate_pytorchs_tokens(name):
    import onnx

    model, out, verification = plain_folder(name)
    assert verification["tolerance_used"] <= 1.0 and not verification["fused"]
    enc = onnx.load(str(out / "encoder_model.onnx")).graph
    assert not ATTENTION & set(ops(enc)) and ops(enc)[("", "Softmax")] == 2
    for branch in branches(out / "decoder_model_merged.onnx").values():
        assert not ATTENTION & set(ops(branch)) and ops(branch)[("", "Softmax")] == 4
    assert_weights_stored_once(model, out / "decoder_model_merged.onnx")
    # the fused graphs of the same model are smaller
    fused = folder(name)[1]
    for f in ("encoder_model.onnx", "decoder_model_merged.onnx"):
        assert node_count(fused / f) < 0.7 * node_count(out / f)
    got = OrtModel(out).generate(PROMPTS, 12, temperature=0.0)
    assert got.tolist() == generate(model, deploy_models.tokenizer(), PROMPTS, 12, temperature=0.0).tolist()
    if OPTIMUM:  # (a skip would hide the checks above)
        ids, mask = padded(PROMPTS)
        assert optimum_generate(out, ids, mask, 10)["ids"] == \
            generate(model, deploy_models.tokenizer(), PROMPTS, 10, temperature=0.0).tolist()


@pytest.mark.parametrize(("sizes", "overrides", "plain", "fused_per_branch"), [
    # head_dim 12: GroupQueryAttention needs a multiple of 8, so the decoder's self-attention stays plain
    ({"hidden": 48}, [], r"decoder\.layers\.[01]\.attn stays the plain graph: ONNX Runtime's GroupQueryAttention "
     r"needs head_dim a multiple of 8 \(head_dim 12\)", {(MS, "MultiHeadAttention"): 2}),
    # 2 kv heads: the decoder's GroupQueryAttention serves them; MultiHeadAttention cannot (cross stays plain)
    ({}, ["attention.kv_heads=2"], r"decoder\.layers\.[01]\.cross stays the plain graph: MultiHeadAttention has "
     r"no grouped key/value heads \(4 heads, 2 kv heads\)", {(MS, "GroupQueryAttention"): 2}),
], ids=["head_dim_12", "kv_heads_2"])
def test_fused_folder_leaves_what_no_kernel_fits_plain_and_says_why(tmp_path, sizes, overrides, plain,
                                                                   fused_per_branch):
    import re

    import onnx

    spec = pg.load_spec(tiny("t5-small", vocab=deploy_models.VOCAB, max_positions=None, **sizes), overrides)
    model = pg.build(spec, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)  # (spread 1 is past fp32 tolerance, plain too)
    report = onnx_folder.export_folder(model, tmp_path / "deploy", tokenizer=deploy_models.tokenizer())
    assert report.verification.tolerance_used <= 1.0
    assert sum(bool(re.fullmatch(plain, n)) for n in report.notes) == 2, report.notes
    enc = onnx.load(str(tmp_path / "deploy" / "encoder_model.onnx")).graph
    assert ops(enc)[(MS, "MultiHeadAttention")] == 2
    for branch in branches(tmp_path / "deploy" / "decoder_model_merged.onnx").values():
        got = ops(branch)
        assert {k: v for k, v in got.items() if k in ATTENTION} == fused_per_branch
        assert got[("", "Softmax")] == 2  # the two plain layers
    got = OrtModel(tmp_path / "deploy").generate(PROMPTS, 10, temperature=0.0)
    want = generate(model, deploy_models.tokenizer(), PROMPTS, 10, temperature=0.0)
    assert got.tolist() == want.tolist() and len(set(want.flatten().tolist())) > 3


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
