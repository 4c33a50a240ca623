"""`plmgraph run`, `plmgraph bench`, `plmgraph generate DEPLOY/` and `plmgraph export -o FOLDER`
(the folders come from tests/deploy_models.py; GPT-2's is written through `plmgraph export`)."""

from __future__ import annotations

import importlib
import json

import deploy_models
import numpy as np
from typer.testing import CliRunner

from plmgraph.cli import app, deploy_cmds, export_cmds, train_cmds  # noqa: F401  (register commands)
from plmgraph.runtime import OrtModel
from plmgraph.train.generate import generate

runner = CliRunner()


def test_export_folder_from_a_checkpoint_with_its_tokenizer():
    _, folder = deploy_models.folder("gpt2")  # made by `plmgraph export CK -o FOLDER --kv-cache --no-verify`
    names = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "config.json", "genai_config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert json.loads((folder / "config.json").read_text())["model_type"] == "gpt2"


def test_run_prints_shapes_and_the_top_tokens():
    model, folder = deploy_models.folder("gpt2")
    r = runner.invoke(app, ["run", str(folder), "--input-ids", "5,6,7", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["outputs"]["logits"] == [1, 3, 300] and data["outputs"]["present.1.value"] == [1, 4, 3, 16]
    assert data["inputs"]["past_key_values.0.key"] == [1, 4, 0, 16]
    import torch

    with torch.no_grad():
        want = model(torch.tensor([[5, 6, 7]])).logits[0, -1]
    assert [t["id"] for t in data["top"]] == torch.topk(want, 5).indices.tolist()
    assert abs(sum(t["prob"] for t in data["top"]) - float(want.softmax(-1).topk(5).values.sum())) < 1e-4
    r = runner.invoke(app, ["run", str(folder / "model.onnx"), "--input-ids", "5, 6, 7", "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "present.0.key" in r.output and "next token" in r.output


def test_generate_on_an_export_folder_is_ort_with_pytorchs_tokens():
    model, folder = deploy_models.folder("gpt2")
    tok = deploy_models.tokenizer()
    r = runner.invoke(app, ["generate", str(folder), "-p", "the quick", "-p", "a model of", "-n", "8", "--greedy"])
    assert r.exit_code == 0, r.output
    want = generate(model, tok, ["the quick", "a model of"], 8, temperature=0.0)
    def shown(text: str) -> str:  # the console drops control characters (a random model decodes some)
        return "".join(c for c in text if c.isprintable() or c == "\n")

    assert shown(r.stdout) == shown("".join(tok.decode(row) + "\n" for row in want.tolist()))
    r = runner.invoke(app, ["generate", str(folder), "-p", "the", "-n", "5", "--top-p", "0.9", "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert shown(r.stdout) == shown(tok.decode(OrtModel(folder).generate(["the"], 5, top_p=0.9, seed=2)[0].tolist())
                                    + "\n")


def test_bench_json_has_both_sides():
    _, folder = deploy_models.folder("gpt2")
    r = runner.invoke(app, ["bench", str(folder), "--prompt-len", "8", "--new-tokens", "4", "--repeats", "1",
                            "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data["prefill_ms"]) == {"ort", "torch"} and set(data["decode_tokens_per_s"]) == {"ort", "torch"}
    assert data["torch_weights"] == "random (spec.yaml)" and data["provider"] == "CPUExecutionProvider"


def test_bad_input_is_one_message_and_exit_1(tmp_path):
    _, folder = deploy_models.folder("gpt2")
    cases = [
        (["run", str(folder), "--input-ids", "1,x"], 2, "comma-separated integers"),
        (["run", str(folder), "--input-ids", "1,300"], 1, "300 is outside the vocabulary (0..299)"),
        (["run", str(tmp_path / "nowhere"), "--input-ids", "1"], 1, "no such file or folder"),
        (["run", str(folder), "--input-ids", "1", "--provider", "rocm"], 1, "--provider 'rocm' is not available"),
        (["bench", str(folder / "model.onnx")], 1, "bench takes an export folder"),
        (["generate", str(folder), "-p", "x", "--provider", "nope"], 1, "is not available"),
    ]
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes((folder / "model.onnx").read_bytes()[:1000])
    cases.append((["run", str(corrupt), "--input-ids", "1"], 1, "not a complete ONNX model"))
    for args, code, message in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == code, (args, r.output)
        assert message in " ".join(r.output.split()), (args, r.output)
        assert "Traceback" not in r.output


def test_export_to_a_folder_refuses_before_building(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.import_module("plmgraph.compile.build"), "available_memory", lambda device: 2**30)
    out = tmp_path / "deploy"
    r = runner.invoke(app, ["export", "llama2-7b", "-o", str(out), "--kv-cache"])
    assert r.exit_code == 1 and "needs about" in r.output and "only 1.0 GiB is free" in r.output
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    r = runner.invoke(app, ["export", "gpt2", "-O", "layers=1,hidden=32,heads=2,vocab=64", "-o", str(out),
                            "--kv-cache"])
    assert r.exit_code == 1 and "mine.txt" in r.output and "--force" in r.output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # an encoder-decoder folder is written in fp32 only (tests/exporters/test_seq2seq_folder.py writes one)
    r = runner.invoke(app, ["export", "t5-small", "-O", "layers=1,hidden=32,heads=2,vocab=64", "-o",
                            str(tmp_path / "t5"), "--precision", "int8"])
    assert r.exit_code == 1 and "is an encoder-decoder" in r.output and not (tmp_path / "t5").exists()


def test_generate_feeds_every_graph_input_by_name():
    m = OrtModel(deploy_models.folder("gpt2")[1])
    feed = m.complete(np.array([[1, 2]]), attention_mask=np.array([[0, 1]]))
    assert feed["position_ids"].tolist() == [[0, 0]] and feed["attention_mask"].tolist() == [[0, 1]]


def test_export_a_training_run_then_generate_on_ort_as_on_pytorch(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(deploy_models.TEXTS) + "\n")
    run, dep = tmp_path / "run", tmp_path / "deploy"
    r = runner.invoke(app, ["train", "gpt2", "-O", "layers=1,hidden=32,heads=2,vocab=300,max_positions=64", "--data",
                            str(corpus), "--steps", "2", "--seq-len", "16", "--batch-size", "2", "-o", str(run)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", str(run), "-o", str(dep), "--kv-cache", "--no-optimize", "--no-fuse"])
    assert r.exit_code == 0, r.output
    import onnx

    ops = {n.op_type for n in onnx.load(str(dep / "model.onnx")).graph.node}
    assert "GroupQueryAttention" not in ops and "MatMul" in ops  # the plain graph, as asked
    assert "verified" in r.output
    assert json.loads((dep / "tokenizer.json").read_text()) == json.loads((run / "tokenizer.json").read_text())
    args = ["-p", "the quick", "-p", "a", "-n", "6", "--greedy"]
    on_ort = runner.invoke(app, ["generate", str(dep), *args])
    on_torch = runner.invoke(app, ["generate", str(run), *args])
    assert on_ort.exit_code == 0 and on_torch.exit_code == 0, on_ort.output + on_torch.output
    assert on_ort.stdout == on_torch.stdout and on_ort.stdout.startswith("the quick")
