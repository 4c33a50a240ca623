"""Parity with Hugging Face `transformers`: tiny random reference models, imported through `pg.from_hf`.

Every test builds a small HF model with a fixed seed, re-randomises *all* its parameters
(HF's init leaves norms at 1 and biases at 0, which would hide a swapped norm or a lost
bias), saves it with ``save_pretrained``, imports it with the real importer and compares
outputs in fp32.  The reference is always HF's own forward, never plmgraph's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

transformers = pytest.importorskip("transformers")
