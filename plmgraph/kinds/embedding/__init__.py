"""Embedding kinds: what turns a stack's inputs into its first hidden states.

One module per kind (``table`` holds the segment and task-type tables, which share every
facet's code); ``sum`` is the graph-only ``op/sum`` node that adds a stack's embedding parts.
The ``embeddings`` section of a spec is one class (`spec.model.Embeddings`), not a tagged
union, so these kinds carry no spec class of their own.
"""

from . import mask_token, patches, project, sum, table, token

__all__ = ["mask_token", "patches", "project", "sum", "table", "token"]
