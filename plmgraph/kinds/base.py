"""What a block kind is: one object that carries every facet the pipeline needs.

A kind (``norm/rmsnorm``, ``attention/self``, ``residual/deepnorm``) is a subclass of `Kind`
in one module of ``plmgraph/kinds/<axis>/``, registered with `register`. Its facets:

==============  ==========================================================  ===========
facet           what it answers                                             read by
==============  ==========================================================  ===========
``spec``        the tagged pydantic class users write in YAML               spec/
``params``      parameter shapes of a graph node, from the node's attrs     graph/arch
``flops``       forward FLOPs per token                                     graph/stats
``words``       the kind in a few words ("RMSNorm", "SwiGLU")               diff, draw
``aspects``     the facts a diff compares                                   graph/diff
``label``       (title, detail) in a diagram                                exporters/graphviz
``build``       the torch module for a node (imports torch lazily)          compile/build
``init``        how a fresh module is initialised, through an init rule    compile/init
``explain``     a short explanation with its formula, in English / Chinese  exporters/report
``eject``       the PyTorch source it writes in a standalone ejected file   eject/
``model_inputs``  the forward arguments / ONNX inputs its nodes read        exporters/onnx
==============  ==========================================================  ===========

Attention kinds also answer ``kv_elems_per_token`` (what the KV cache grows by; graph/stats).
A facet a kind does not define raises `MissingFacet` naming the kind and the facet, at the
point it is needed: nothing falls back to building or describing something else. A kind
that is known but deliberately not compiled yet lists the facet in ``refused`` with the
reason, and raises `NotCompiledYet` ("not compiled yet") where it is asked for.
Hugging Face weight names are per ``model_type``, not per kind: they live with each type's
config table in plmgraph/compile/hf_types/<type>.py.

This module (and every kind module at import time) is torch-free: the torch half of a kind
lives in functions that import torch when they run, so ``validate``, ``show``, ``diff`` and
``draw`` never load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..errors import PlmgraphError

Shape = tuple[Any, ...]
Attrs = dict[str, Any]

#: A dropout rate (or any probability below 1).
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]

#: Attribute names of torch's ModuleDict (the container of the heads): a head of that name could not
#: be a submodule ``heads.<name>``.  Written out so the spec side stays torch-free.
RESERVED_HEAD_NAMES = frozenset(
    "add_module apply bfloat16 buffers call_super_init children clear compile cpu cuda double dump_patches eval "
    "extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu items keys "
    "load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters pop "
    "register_backward_hook register_buffer register_forward_hook register_forward_pre_hook "
    "register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook "
    "register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook "
    "register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to "
    "to_empty train training type update values xpu zero_grad".split()
)


def _head_name(v: str | None) -> str | None:
    if v is not None and v in RESERVED_HEAD_NAMES:
        raise ValueError(f"head name {v!r} is reserved (it names a method of the module that holds the heads); "
                         "choose another")
    return v


#: A head's name: the module path ``heads.<name>`` and the key in ``out.head_outputs``.
HeadName = Annotated[
    str | None,
    Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=64,
          description="Name in out.head_outputs and module path heads.<name>: a letter, then letters, digits, "
          "'_' or '-'. Default: the kind."),
    AfterValidator(_head_name),
]

#: The element-wise activations a spec may name (MLPs, head transforms, poolers).
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "quick_gelu"]

#: Each activation as people write it ("GELU", "SiLU").
ACTIVATIONS = {
    "relu": "ReLU", "gelu": "GELU", "gelu_tanh": "GELU (tanh)", "silu": "SiLU", "tanh": "tanh",
    "sigmoid": "sigmoid", "quick_gelu": "QuickGELU",
}


def _describe_tag(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Give a variant's `kind` tag a description in the JSON schema: the value and what it selects."""
    kind = schema.get("properties", {}).get("kind")
    if kind is not None and "description" not in kind:
        summary = (cls.__doc__ or "").strip().split("\n")[0]
        tag = kind.get("const", kind.get("default"))
        kind["description"] = f"{tag!r} selects this variant: {summary}" if tag else summary


class Strict(BaseModel):
    """Base for every spec class: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, json_schema_extra=_describe_tag,
        allow_inf_nan=False,  # `eps: .inf`, `theta: .nan` are typos or attacks, never sizes
        defer_build=True,  # each class builds its validator on first use: spec commands start faster
    )


class MissingFacet(PlmgraphError):
    """A block kind has no implementation of a facet where the pipeline needs it."""


class NotCompiledYet(MissingFacet):
    """A block kind is known (it validates and resolves) but deliberately not compiled yet."""


@dataclass(frozen=True)
class Aspect:
    """One fact about a block that a diff compares: what ("norm"), in words ("RMSNorm"), and a
    structural key (``None`` = a hyper-parameter change, not a change of structure)."""

    what: str
    text: str
    key: Any = None


def num(v: Any) -> str:
    """A number as people write it: 1.0 -> "1", 1e-05 -> "1e-05", None -> "none"."""
    if v is None:
        return "none"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"
    return str(v)


def onoff(v: Any) -> str:
    return "on" if v else "off"


class Kind:
    """One block kind. Subclasses set `name` (``axis/variant``) and define their facets."""

    name: ClassVar[str]
    #: The tagged spec class (``kind: Literal[...]``) users write; None for graph-only kinds.
    spec: ClassVar[type[Strict] | None] = None
    #: Facets this kind refuses on purpose: {facet: why}; `refuse` raises NotCompiledYet.
    refused: ClassVar[dict[str, str]] = {}

    @property
    def axis(self) -> str:
        return self.name.split("/")[0]

    @property
    def variant(self) -> str:
        return self.name.split("/")[1]

    def missing(self, facet: str) -> MissingFacet:
        if facet in self.refused:
            return NotCompiledYet(f"block kind {self.name!r}: {self.refused[facet]}")
        return MissingFacet(f"block kind {self.name!r} has no {facet!r} facet; add it to {type(self).__module__}")

    # -- graph and stats (torch-free) ----------------------------------------------

    def params(self, a: Attrs) -> dict[str, Shape]:
        """Shapes of the tensors a node of this kind owns, from its attrs."""
        raise self.missing("params")

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        """Forward FLOPs per token (see graph/stats.py for the conventions)."""
        raise self.missing("flops")

    # -- words (torch-free) --------------------------------------------------------

    def words(self, a: Attrs) -> str:
        """The kind in a few words, as people say it."""
        raise self.missing("words")

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        """The facts about one node that a diff compares."""
        raise self.missing("aspects")

    def label(self, a: Attrs) -> tuple[str, str]:
        """(title, detail) of a node in a diagram."""
        raise self.missing("label")

    def explain(self, lang: str) -> str:
        """What the kind does, with its formula between backticks, in `lang` (``"en"`` or ``"zh"``,
        the language of the study notes): a few sentences for `plmgraph report`. Kinds answer with
        `explained`."""
        raise self.missing("explain")

    def explained(self, lang: str, en: str, zh: str) -> str:
        """`en` or `zh`, whichever `lang` names; another language is a `MissingFacet` naming it."""
        texts = {"en": en, "zh": zh}
        if lang not in texts:
            raise MissingFacet(f"block kind {self.name!r} has no explanation in {lang!r}; known: en, zh")
        return texts[lang]

    # -- the model's interface (torch-free) ----------------------------------------

    def model_inputs(self, a: Attrs) -> tuple[str, ...]:
        """The forward arguments (and so the ONNX graph inputs) a node of this kind reads; most
        kinds read only the hidden states, hence the empty default."""
        return ()

    # -- torch (imported lazily) ---------------------------------------------------

    def build(self, node: Any) -> Any:
        """The torch module for a graph node (a `compile.registry.Node`)."""
        raise self.missing("build")

    def init(self, module: Any, rule: Any) -> None:
        """Initialise a freshly built module through `rule` (a `compile.init.InitRule`)."""
        raise self.missing("init")

    # -- eject (writes text, torch-free) -------------------------------------------

    def eject(self, a: Attrs) -> Any:
        """The source a node of this kind writes in a standalone ejected file, from its attrs: a
        `plmgraph.eject.pieces.Piece` (definitions, constructor, config fields)."""
        raise self.missing("eject")


def mm(params: dict[str, Shape], *names: str) -> int:
    """FLOPs of the matrix multiplies by the named weights: 2 per multiply-accumulate."""
    total = 0
    for p in names:
        if p in params:
            n = 1
            for s in params[p]:
                n *= s
            total += 2 * n
    return total


__all__ = ["ACTIVATIONS", "KINDS", "Activation", "Aspect", "Attrs", "HeadName", "Kind", "MissingFacet",
           "NotCompiledYet", "Probability", "Shape", "Strict", "mm", "num", "onoff", "register"]


# ------------------------------------------------------------------------ the table

#: Every registered kind by name (``norm/rmsnorm``), in registration order.
KINDS: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: add one instance of `cls` to the table under ``cls.name``."""
    if cls.name in KINDS:
        raise ValueError(f"block kind {cls.name!r} is registered twice ({type(KINDS[cls.name]).__module__})")
    KINDS[cls.name] = cls()
    return cls
