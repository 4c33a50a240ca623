"""`plmgraph build`, `import-hf`, `export-hf` (these import torch, lazily, inside each command)."""

from __future__ import annotations
