"""The spec language: load YAML safely, resolve `extends`, validate into a `ModelSpec`.

Imports nothing of plmgraph outside this package, and never torch.

Only the error types are imported with the package; the rest (pydantic models, the loader,
the ``extends`` resolver) on first use of any of its names (PEP 562).  So ``plmgraph.errors``
and the block-kind table (``plmgraph.kinds``, which the spec's unions are built from and
which raises these errors) can be imported first without a circular import, and commands
that never read a spec do not pay for pydantic.
"""

import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import PlmgraphError, Problem, SpecError

if TYPE_CHECKING:
    from .extends import Merged, find_spec, load_merged, zoo_dir, zoo_names
    from .model import FORMAT_VERSION, ModelSpec, deep_merge
    from .validate import load_spec, validate

_LAZY = ("FORMAT_VERSION", "Merged", "ModelSpec", "deep_merge", "find_spec", "load_merged", "load_spec", "validate",
         "zoo_dir", "zoo_names")


def _load() -> None:
    """Bind every lazy name at once, as an eager ``__init__`` would: in particular ``validate``
    becomes the function, not the submodule of the same name."""
    from .extends import Merged, find_spec, load_merged, zoo_dir, zoo_names
    from .model import FORMAT_VERSION, ModelSpec, deep_merge
    from .validate import load_spec, validate

    globals().update(FORMAT_VERSION=FORMAT_VERSION, Merged=Merged, ModelSpec=ModelSpec, deep_merge=deep_merge,
                     find_spec=find_spec, load_merged=load_merged, load_spec=load_spec, _validate=validate,
                     zoo_dir=zoo_dir, zoo_names=zoo_names)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """``plmgraph.spec.validate`` is the function even after ``import plmgraph.spec.validate``,
    which would otherwise bind the submodule of that name onto the package."""

    @property
    def validate(self) -> Any:
        if "_validate" not in self.__dict__:
            _load()
        return self.__dict__["_validate"]

    @validate.setter
    def validate(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):  # the import system binds the submodule: keep the function
            self.__dict__["_validate"] = value


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "FORMAT_VERSION",
    "Merged",
    "ModelSpec",
    "PlmgraphError",
    "Problem",
    "SpecError",
    "deep_merge",
    "find_spec",
    "load_merged",
    "load_spec",
    "validate",
    "zoo_dir",
    "zoo_names",
]
