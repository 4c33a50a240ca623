"""``camembert``: CamemBERT (Martin et al. 2020), RoBERTa's architecture and tensor names for French."""

from __future__ import annotations

from .roberta import roberta_like

FAMILY = roberta_like("camembert", "Camembert")
