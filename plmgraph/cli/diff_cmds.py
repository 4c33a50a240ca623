"""`plmgraph diff` and `plmgraph draw` (torch-free)."""

from __future__ import annotations
