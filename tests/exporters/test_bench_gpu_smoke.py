"""`tools/bench_gpu.py` in its CPU smoke configuration, as a subprocess: tiny sizes, one round.

The script's timings mean nothing here; what is checked is that every row is there with positive
latencies, that ONNX Runtime and PyTorch ran the same model (the encoder's hidden states agree, the
decoder's greedy tokens are equal), and that ``--device cuda`` refuses clearly on a machine without CUDA
(and runs where CUDA is present).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "bench_gpu.py"
TINY = ["--sizes", "layers=1,hidden=64,heads=2,ffn=128,vocab=256,max_positions=64", "--seq", "16", "--prompt", "16",
        "--steps", "8", "--repeats", "1", "--inner", "1", "--pause", "0", "--threads", "1"]


def bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def cuda_present() -> bool:
    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_smoke_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = bench("--device", "cpu", *TINY, "--precision", "fp32", "fp16", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["device"]["type"] == "cpu" and got["device"]["name"]
    assert got["versions"]["onnxruntime"] == ort.__version__ and got["versions"]["torch"] == torch.__version__
    assert got["date"].endswith("UTC")
    rows = {(x["model"], x["case"], x["precision"]): x for x in got["rows"]}
    want = {("bert-base", f"forward, batch {b}, seq 16", p) for b in (1, 8) for p in ("fp32", "fp16")} | \
        {("llama2-7b", c, p) for c in ("prefill, prompt 16", "decode per token, 8 greedy steps")
         for p in ("fp32", "fp16")}
    assert set(rows) == want and len(got["rows"]) == len(want)
    for key, x in rows.items():
        assert x["ort_ms"] > 0 and x["torch_ms"] > 0 and x["ratio"] > 0, key
        assert abs(x["ratio"] - x["ort_ms"] / x["torch_ms"]) < 0.01 * x["ratio"] + 1e-3, key
        # PyTorch fp16 runs on CUDA only: the CPU's fp16 ONNX rows are against PyTorch fp32
        assert x["torch_precision"] == "fp32", key
        assert x["graph"] == "fused", key  # the plain graph is CUDA's fp32 decoder's only
        # ORT's profiler saw every node of the graph, all on the CPU's execution provider
        assert x["placement"]["provider"] == "CPUExecutionProvider" and x["placement"]["nodes_on_provider"] > 5, key
        assert x["placement"]["nodes_elsewhere"] == {}, key
    for b in (1, 8):  # ONNX Runtime's hidden states against PyTorch's
        assert rows[("bert-base", f"forward, batch {b}, seq 16", "fp32")]["last_hidden_state_max_abs_diff"] < 1e-4
        assert rows[("bert-base", f"forward, batch {b}, seq 16", "fp16")]["last_hidden_state_max_abs_diff"] < 0.05
    for case in ("prefill, prompt 16", "decode per token, 8 greedy steps"):
        x = rows[("llama2-7b", case, "fp32")]
        assert len(x["ort_tokens"]) == 8 and x["ort_tokens"] == x["torch_tokens"], x
        assert x["same_tokens"] and x["first_different_step"] is None
        assert len(rows[("llama2-7b", case, "fp16")]["ort_tokens"]) == 8
    lines = r.stdout.splitlines()  # the plain-text table: a header and one line per row
    assert any("ORT/PyTorch" in line for line in lines)
    assert sum(line.startswith(("bert-base ", "llama2-7b ")) for line in lines) == len(want)
    assert sum("same" in line for line in lines if line.startswith("llama2-7b ")) >= 2


def test_cuda_refused_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "cuda.json"
    r = bench("--device", "cuda", *TINY, "--json", str(out), timeout=600)
    if cuda_present():  # a GPU machine: the same tiny run on CUDA, every row there
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads(out.read_text())
        assert got["device"]["type"] == "cuda" and len(got["rows"]) == 8
        assert all(x["torch_precision"] == x["precision"] for x in got["rows"])
        return
    assert r.returncode == 1 and not out.exists()
    msg = r.stderr.strip()
    assert msg.startswith("bench_gpu: --device cuda needs"), msg
    assert "--device cpu" in msg and "Traceback" not in msg
    if not torch.cuda.is_available():
        assert "torch.cuda.is_available() is False" in msg
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "CUDAExecutionProvider" in msg and "onnxruntime-gpu" in msg


def test_too_large_refused_before_building() -> None:
    # ~3 trillion parameters: the export alone needs tens of terabytes; refused before anything is built
    r = bench("--device", "cpu", "--models", "decoder", "--sizes", "layers=1000,hidden=16384,heads=128,ffn=65536",
              timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    msg = r.stderr.strip()
    assert msg.startswith("bench_gpu: ") and "Traceback" not in msg
    assert "is free" in msg and "--sizes" in msg and "building" not in msg


def test_device_memory_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device-side check (CUDA's free memory) with the host roomy: the 1B decoder does not fit in 1 GiB."""
    build = importlib.import_module("plmgraph.compile.build")  # the module (plmgraph.compile.build is also a function)
    spec_ = importlib.util.spec_from_file_location("bench_gpu_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    free = {"cpu": 2**50, "cuda": 2**30}
    monkeypatch.setattr(build, "available_memory", lambda device: free[device.type])
    args = argparse.Namespace(device="cuda", precision=["fp32", "fp16"])
    spec = mod.load("decoder", None)
    with pytest.raises(mod.Refused) as e:
        mod.check_memory("decoder", spec, args)
    msg = str(e.value)
    assert "1,055,991,808 parameters" in msg and "on cuda" in msg and "only 1.0 GiB is free" in msg, msg
    free["cuda"] = 2**40  # roomy: no refusal
    mod.check_memory("decoder", spec, args)
