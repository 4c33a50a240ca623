"""Pre-training objectives: one module per objective: its spec class and, for the objectives that
train, a ``train`` facet returning its collator part (`plmgraph.train.objectives`); the others
refuse ``train`` ("not compiled yet").  Imported in the order the spec union lists them (and its
error messages do)."""

# ruff: noqa: I001
from . import clm, mlm, nsp, sop, span_corruption, denoising, blank_infilling, permutation, classification

__all__ = ["blank_infilling", "classification", "clm", "denoising", "mlm", "nsp", "permutation", "sop",
           "span_corruption"]
