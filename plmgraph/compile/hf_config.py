"""Old home of the Hugging Face config tables; they now live in `plmgraph.compile.hf_types`.

Kept so existing imports keep working: every name here is the same object as in
`hf_types` (one module per ``model_type``).  New code imports from `hf_types`.
"""

from .hf_types import FAMILIES, config_to_dict, config_to_spec, family_of, find_family, spec_to_config
from .hf_types.base import ACT, OPENAI_ACT, F, Family, Fixed

__all__ = ["ACT", "FAMILIES", "OPENAI_ACT", "F", "Family", "Fixed", "config_to_dict", "config_to_spec", "family_of",
           "find_family", "spec_to_config"]
