"""Puts `tests/` on sys.path so every test can `from helpers import tiny`; points the Optimum deploy
tests at the venv `tools/install.sh --test` makes for optimum-onnx (which pins an older transformers)."""

import os
from pathlib import Path

_OPTIMUM = Path(__file__).resolve().parents[1] / ".venv-optimum" / "bin" / "python"
if _OPTIMUM.exists():
    os.environ.setdefault("PLMGRAPH_OPTIMUM_PYTHON", str(_OPTIMUM))
