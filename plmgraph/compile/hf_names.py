"""Old home of the Hugging Face weight-name tables; they now live in `plmgraph.compile.hf_types`.

Kept so existing imports keep working: `TABLES` and `IGNORED` are views of the registry
(``FAMILIES[mt].names`` and ``FAMILIES[mt].ignored``, with the patterns every type shares
under ``"*"``).  New code imports from `hf_types`.
"""

from .hf_types import FAMILIES, Item, ignored, plan
from .hf_types.weights import ALWAYS_IGNORED, QKV, R, Rule

TABLES = {mt: fam.names for mt, fam in FAMILIES.items()}
IGNORED = {"*": ALWAYS_IGNORED, **{mt: fam.ignored for mt, fam in FAMILIES.items()}}

__all__ = ["IGNORED", "QKV", "TABLES", "Item", "R", "Rule", "ignored", "plan"]
