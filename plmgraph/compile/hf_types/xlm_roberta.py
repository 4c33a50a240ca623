"""``xlm-roberta``: XLM-RoBERTa (Conneau et al. 2020), RoBERTa's architecture and tensor names with a
multilingual vocabulary."""

from __future__ import annotations

from .roberta import roberta_like

FAMILY = roberta_like("xlm-roberta", "XLMRoberta")
