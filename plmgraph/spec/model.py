"""The whole-model spec: sizes, embeddings, stacks, sharing, heads; one validator for it all.

A spec describes one architecture.  Its top-level ``block`` is the layer every stack uses;
``encoder:`` and ``decoder:`` may override any part of it per stack (their ``block`` is
deep-merged onto the top-level one before validation).  After validation every derived
value (head_dim, kv_heads, ffn, the decoder's causal mask, the pooler, ...) is filled in,
so downstream code never re-derives anything: `ModelSpec.stacks` is the resolved truth.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, PrivateAttr, model_validator

from .blocks import (
    INPUT_POSITIONS,
    Block,
    DenseMLP,
    GatedMLP,
    LayerNorm,
    Norm,
    Position,
    Probability,
    RelativePosition,
    RMSNorm,
    Strict,
)
from .heads import HEAD_KINDS, FullTuning, Head, Init, NormalInit, Objective, Pooler, Tuning
from .pattern import LayerPattern

FORMAT_VERSION = 1
#: The deepest stack a spec may declare. The graph has a node per layer (so a million layers would
#: take minutes and gigabytes to resolve); DeepNet's 1000-layer Transformer is the deepest published.
MAX_LAYERS = 4096
Layers = Annotated[PositiveInt, Field(le=MAX_LAYERS)]
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


class Sizes(Strict):
    """The headline dimensions; `--override layers=2,hidden=64` edits these."""

    vocab: PositiveInt | None = Field(None, description="Vocabulary size (omit for image-only models).")
    hidden: PositiveInt = Field(description="Model width d_model.")
    layers: Layers = Field(description=f"Layers per stack (a stack may override); at most {MAX_LAYERS}.")
    heads: PositiveInt = Field(description="Attention (query) heads.")
    ffn: PositiveInt | None = Field(None, description="MLP inner width. Default: 4 * hidden.")
    max_positions: PositiveInt | None = Field(
        None, description="Longest sequence the model accepts (required by learned positions)."
    )


class Patches(Strict):
    """Image input as a grid of patches, linearly embedded, with a [CLS] token (ViT)."""

    image_size: PositiveInt = Field(224, description="Input height and width in pixels.")
    patch_size: PositiveInt = Field(16, description="Patch height and width in pixels.")
    channels: PositiveInt = Field(3, description="Input channels.")
    cls_token: bool = Field(True, description="Prepend a learned [CLS] token.")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Embeddings(Strict):
    """What turns inputs into the first hidden states of each stack."""

    size: PositiveInt | None = Field(
        None, description="Embedding width E; E < hidden adds a projection E->hidden (ALBERT). Default: hidden."
    )
    segments: Annotated[int, Field(ge=0)] = Field(
        0, description="Segment (token type) vocabulary: 2 in BERT, 1 in RoBERTa, 0 for none."
    )
    task_types: Annotated[int, Field(ge=0)] = Field(0, description="Task-type vocabulary (ERNIE 2.0/3.0).")
    scale: bool = Field(False, description="Multiply token embeddings by sqrt(hidden) (Transformer 2017).")
    norm: bool | Norm = Field(
        False, description="Normalise the summed embeddings: true for the block's norm, or a norm of its own."
    )
    dropout: Probability = Field(0.0, description="Dropout on the embeddings.")
    patches: Patches | None = Field(None, description="Image patches instead of tokens (ViT).")
    mask_token: bool = Field(False, description="A learned mask embedding for query streams (XLNet).")
    share_across_stacks: bool = Field(
        True, description="Encoder and decoder share one token-embedding matrix (T5, BART)."
    )


class Stack(Strict):
    """One stack of identical layers (encoder or decoder)."""

    layers: Layers | None = Field(None, description=f"Number of layers (at most {MAX_LAYERS}). Default: sizes.layers.")
    block: Block = Field(default_factory=Block, description="The layer, merged onto the top-level block.")
    final_norm: bool | None = Field(
        None, description="Normalise the stack output. Default: true for pre/sandwich/output, false for post."
    )
    pattern: list[LayerPattern] | None = Field(
        None, min_length=1,
        description="Per-layer attention overrides cycled over the layers: layer i uses pattern[i % len(pattern)], "
        "whose window and rotary base replace the block's (Gemma 2: [{window: 4096}, {}]). Default: all alike.",
    )
    first_attn_norm: bool = Field(
        True, description="Layer 0 normalises its attention input; false: it reads the embeddings (already "
        "normalised by embeddings.norm) directly, as ModernBERT. Pre-norm, sequential, unshared layers only.",
    )


class Sharing(Strict):
    """Cross-layer parameter sharing (ALBERT)."""

    kind: Literal["none", "all", "groups"] = Field(
        "none", description="none; all layers share one set of weights; or `groups` consecutive groups."
    )
    groups: PositiveInt | None = Field(None, description="groups only: the number of weight sets.")


class ModelSpec(Strict):
    """A pretrained language model architecture."""

    plmgraph: Literal[1] = Field(FORMAT_VERSION, description="Spec format version.")
    name: Annotated[str, Field(pattern=NAME_RE, max_length=100)] = Field(description="Model name.")
    extends: str | list[str] | None = Field(
        None, description="Zoo names or relative paths this spec is a change to (deep-merged, in order)."
    )
    source: str | None = Field(None, description="Paper or reference implementation this spec follows.")
    family: Literal["encoder", "decoder", "encoder-decoder"] = Field(
        description="encoder-only (BERT), decoder-only (GPT) or encoder-decoder (T5)."
    )
    sizes: Sizes = Field(description="Headline dimensions.")
    embeddings: Embeddings = Field(default_factory=Embeddings, description="Input embeddings.")
    position: Position = Field(
        default_factory=lambda: _default_position(), description="How token order is encoded."
    )
    relative_position: RelativePosition | None = Field(
        None, description="A relative position signal inside attention, computed once per stack and shared by every "
        "layer, next to an absolute `position` added to the embeddings: t5_relative (MPNet) or disentangled "
        "(DeBERTa with absolute positions too). Default: none."
    )
    block: Block = Field(default_factory=Block, description="The layer every stack uses by default.")
    encoder: Stack | None = Field(None, description="The encoder stack (encoder and encoder-decoder).")
    decoder: Stack | None = Field(None, description="The decoder stack (decoder and encoder-decoder).")
    sharing: Sharing = Field(default_factory=Sharing, description="Cross-layer parameter sharing.")
    pooler: Pooler | None = Field(None, description="Sequence pooling for sequence-level heads. Default: derived.")
    heads: list[Head] = Field(default_factory=list, description="Output heads; the first is the primary.")
    objectives: list[Objective] = Field(default_factory=list, description="Pre-training objectives.")
    tuning: Tuning = Field(default_factory=FullTuning, description="Which parameters train.")
    init: Init = Field(default_factory=NormalInit, description="How a freshly built model is initialised.")

    _source_file: str | None = PrivateAttr(None)
    _merged: Any = PrivateAttr(None)  # the merged mapping this spec was validated from (for overrides)

    # ------------------------------------------------------------------ expansion

    @model_validator(mode="before")
    @classmethod
    def _expand_stacks(cls, data: Any) -> Any:
        """Merge the top-level block into each stack the family has, before field validation."""
        if not isinstance(data, dict) or data.get("family") not in ("encoder", "decoder", "encoder-decoder"):
            return data
        family = data["family"]
        names = {"encoder": ["encoder"], "decoder": ["decoder"], "encoder-decoder": ["encoder", "decoder"]}[family]
        data = dict(data)
        base = data.get("block", {})
        for name in names:
            raw = data.get(name) or {}
            if not isinstance(raw, dict) or not isinstance(base, dict):
                continue
            raw = dict(raw)
            own = raw.get("block") or {}
            if not isinstance(own, dict):
                continue
            merged = deep_merge(base, own)
            if family == "encoder-decoder" and "attention" not in merged:
                merged["attention"] = {"kind": "self"}  # the default attention, tagged so its mask can be set
            # In an encoder-decoder the decoder is causal and cross-attends unless told otherwise.
            if family == "encoder-decoder" and name == "decoder":
                att = merged.setdefault("attention", {})
                if isinstance(att, dict) and "mask" not in (own.get("attention") or {}):
                    att["mask"] = "causal"
                if "cross_attention" not in own:
                    merged["cross_attention"] = True
            if family == "encoder-decoder" and name == "encoder":
                att = merged.setdefault("attention", {})
                if isinstance(att, dict) and "mask" not in (own.get("attention") or {}):
                    att["mask"] = "bidirectional"
            raw["block"] = merged
            data[name] = raw
        return data

    # -------------------------------------------------------- derived + cross-field

    @model_validator(mode="after")
    def _derive_and_check(self) -> ModelSpec:
        """Fill every derived value and check every rule that spans more than one field."""
        errs: list[tuple[tuple[str | int, ...], str]] = []
        s = self.sizes
        fam = self.family
        present = {"encoder": ["encoder"], "decoder": ["decoder"], "encoder-decoder": ["encoder", "decoder"]}[fam]
        for name in ("encoder", "decoder"):
            if name not in present and getattr(self, name) is not None:
                errs.append(((name,), f"a {fam} model has no {name} stack; remove `{name}` or change `family`"))
        if s.ffn is None:
            s.__dict__["ffn"] = 4 * s.hidden

        # Embeddings and inputs.
        emb = self.embeddings
        if emb.size is None:
            emb.__dict__["size"] = s.hidden
        if emb.patches is None and s.vocab is None:
            errs.append((("sizes", "vocab"), "vocab is required unless the model reads image patches"))
        if emb.patches is not None:
            p = emb.patches
            if p.image_size % p.patch_size:
                errs.append(
                    (
                        ("embeddings", "patches", "patch_size"),
                        f"image_size ({p.image_size}) must be divisible by patch_size ({p.patch_size})",
                    )
                )
            if fam != "encoder":
                errs.append((("embeddings", "patches"), f"image patches need an encoder model, not {fam}"))
        if emb.norm is True:
            emb.__dict__["norm"] = copy.deepcopy(self.block.norm)
        pos = self.position
        if pos.kind in ("learned", "glm_2d") and s.max_positions is None and emb.patches is None:
            errs.append((("sizes", "max_positions"), f"{pos.kind} positions need sizes.max_positions"))
        if self.relative_position is not None and pos.kind not in INPUT_POSITIONS:
            errs.append((("relative_position",), f"relative_position goes with an absolute position added to the "
                         f"embeddings ({', '.join(INPUT_POSITIONS)}), not position kind '{pos.kind}'; a relative "
                         f"position alone is written as `position` itself"))

        # Stacks.
        for name in present:
            stack = getattr(self, name)
            if stack is None:
                stack = Stack(block=copy.deepcopy(self.block))
                object.__setattr__(self, name, stack)
            errs += _check_stack(self, name, stack)

        if emb.mask_token and not any(getattr(self, n).block.attention.kind == "two_stream" for n in present):
            errs.append((("embeddings", "mask_token"), "the mask token feeds XLNet's query stream; it needs "
                         "attention kind 'two_stream' (nothing else reads it, so it would never train)"))
        if not emb.mask_token and any(getattr(self, n).block.attention.kind == "two_stream" for n in present):
            errs.append((("embeddings", "mask_token"), "two_stream attention starts its query stream from a learned "
                         "mask embedding; set embeddings.mask_token: true"))

        # Sharing.
        if self.sharing.kind == "groups":
            if self.sharing.groups is None:
                errs.append((("sharing", "groups"), "sharing kind 'groups' needs `groups` (number of weight sets)"))
            else:
                for name in present:
                    n = getattr(self, name).layers
                    if n % self.sharing.groups:
                        errs.append(
                            (
                                ("sharing", "groups"),
                                f"{name} layers ({n}) must be divisible by sharing.groups ({self.sharing.groups})",
                            )
                        )
        elif self.sharing.groups is not None:
            errs.append(
                (("sharing", "groups"), f"`groups` only applies to sharing kind 'groups', not '{self.sharing.kind}'")
            )

        # Heads, pooler, objectives.
        names_seen: dict[str, int] = {}
        for i, head in enumerate(self.heads):
            if head.name is None:
                head.__dict__["name"] = head.kind
            if head.name in names_seen:
                errs.append(
                    (("heads", i, "name"), f"head name {head.name!r} is already used by "
                     f"heads[{names_seen[head.name]}]; give each head a distinct `name`")
                )
            names_seen[head.name] = i
            if head.kind in ("lm", "mlm"):
                if s.vocab is None:
                    errs.append((("heads", i, "kind"), f"a {head.kind} head needs sizes.vocab"))
            if head.kind in ("lm", "mlm") and head.tie_embeddings and head.transform is None and emb.size != s.hidden:
                errs.append(
                    (("heads", i, "transform"), f"a tied {head.kind} head projects hidden ({s.hidden}) onto the "
                     f"embedding matrix of width embeddings.size ({emb.size}); add a `transform` or untie it")
                )
            if head.kind in ("lm", "mlm") and head.tie_embeddings and emb.patches is not None:
                errs.append((("heads", i, "tie_embeddings"), f"a tied {head.kind} head reuses the token embedding, "
                             "and a model that reads image patches has none; set tie_embeddings: false"))
            if head.kind == "image_classification" and emb.patches is None:
                errs.append((("heads", i, "kind"), "image_classification needs embeddings.patches"))
        if self.pooler is None and any(getattr(h, "pooled", False) for h in self.heads):
            self.pooler = Pooler(kind="last" if fam == "decoder" else "cls")
        kinds = {h.kind for h in self.heads}
        needs = {"nsp": {"nsp"}, "sop": {"sop"}, "mlm": {"mlm", "lm"}, "clm": {"lm"}}
        for i, obj in enumerate(self.objectives):
            want = needs.get(obj.kind)
            if want and not (kinds & want):
                have = ", ".join(h.kind for h in self.heads) or "none"
                errs.append(
                    (("objectives", i, "kind"), f"objective {obj.kind!r} needs a head of kind "
                     f"{' or '.join(sorted(want))!r}; heads are: {have}")
                )
        if not errs:  # what each objective needs of the architecture (plmgraph/kinds/objective/rules.py)
            from ..kinds.base import KINDS

            for i, obj in enumerate(self.objectives):
                why = getattr(KINDS.get(f"objective/{obj.kind}"), "contradiction", lambda o, s: None)(obj, self)
                if why:
                    errs.append((("objectives", i, "kind"), why))
        if not errs and self.tuning.kind != "full":  # what the tuning kind needs of the model (kinds/tuning/)
            from ..kinds.base import KINDS

            errs += KINDS[f"tuning/{self.tuning.kind}"].problems(self)
        if errs:
            raise CrossFieldError(errs)
        return self

    # ------------------------------------------------------------------ accessors

    @property
    def stacks(self) -> dict[str, Stack]:
        """The stacks this model has, in data-flow order: encoder first."""
        return {n: getattr(self, n) for n in ("encoder", "decoder") if getattr(self, n) is not None}

    @property
    def primary_head(self) -> Head | None:
        return self.heads[0] if self.heads else None

    @property
    def source_file(self) -> str | None:
        return self._source_file


class CrossFieldError(Exception):
    """Raised by the model validator; carries (path, message) pairs rooted at the spec."""

    def __init__(self, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(m for _, m in errors))
        self.errors = errors


def _default_position() -> Position:
    from .blocks import NoPosition

    return NoPosition()


def _check_stack(spec: ModelSpec, name: str, stack: Stack) -> list[tuple[tuple[str | int, ...], str]]:
    """Derive the stack's per-layer values and check them; returns (path, message) pairs."""
    errs: list[tuple[tuple[str | int, ...], str]] = []
    s = spec.sizes
    b = stack.block
    at = b.attention
    base = (name, "block")
    if stack.layers is None:
        stack.__dict__["layers"] = s.layers
    if stack.final_norm is None:
        stack.__dict__["final_norm"] = b.placement != "post"
    # Attention shapes.
    if at.head_dim is None:
        if s.hidden % s.heads:
            errs.append(
                (("sizes", "hidden"), f"hidden ({s.hidden}) must be divisible by heads ({s.heads}), "
                 "or set block.attention.head_dim")
            )
        else:
            at.__dict__["head_dim"] = s.hidden // s.heads
    if at.kv_heads is None:
        at.__dict__["kv_heads"] = s.heads
    elif s.heads % at.kv_heads:
        errs.append(
            (base + ("attention", "kv_heads"), f"heads ({s.heads}) must be divisible by kv_heads ({at.kv_heads})")
        )
    pos = spec.position
    if pos.kind == "rope" and at.head_dim is not None:
        rot = at.head_dim * pos.fraction
        if rot != int(rot) or int(rot) % 2:
            errs.append(
                (("position", "fraction"), f"head_dim ({at.head_dim}) * fraction ({pos.fraction}) = {rot:g} "
                 "rotary dimensions; it must be a whole even number")
            )
        sc = pos.scaling
        if sc is not None and sc.kind in ("llama3", "yarn", "dynamic") and not (
                sc.original_max_positions or s.max_positions):
            errs.append(
                (("position", "scaling", "original_max_positions"), f"{sc.kind} rope scaling needs the "
                 "unscaled training context: set scaling.original_max_positions (or sizes.max_positions)")
            )
        if sc is not None and sc.kind == "dynamic" and rot == 2:
            errs.append(
                (("position", "scaling", "kind"), "dynamic rope scaling rescales theta by d/(d-2); it needs more "
                 "than 2 rotary dimensions")
            )
    relative_attn = at.kind in ("two_stream", "segment_memory")
    if relative_attn and pos.kind != "xl_relative":
        errs.append(
            (base + ("attention", "kind"), f"{at.kind} attention needs position kind 'xl_relative', not '{pos.kind}'")
        )
    if "disentangled" in (pos.kind, getattr(spec.relative_position, "kind", None)) and at.kind != "disentangled":
        where = ("position", "kind") if pos.kind == "disentangled" else ("relative_position", "kind")
        errs.append((where, f"disentangled positions (DeBERTa's relative table) need attention kind 'disentangled', "
                     f"not '{at.kind}'"))
    if pos.kind == "xl_relative" and not relative_attn:
        errs.append(
            (("position", "kind"), f"xl_relative positions need attention kind 'two_stream' or 'segment_memory', "
             f"not '{at.kind}'")
        )
    if at.window is not None and at.mask == "bidirectional" and spec.family != "encoder":
        pass  # a bidirectional local window is legal (Longformer-style); nothing to check
    if at.kind == "two_stream" and at.mask == "causal":
        errs.append(
            (base + ("attention", "mask"), "two_stream attention builds its own permutation mask; "
             "mask must be 'bidirectional', not 'causal'")
        )
    # Cross-attention only where there is an encoder to attend to.
    if b.cross_attention is None:
        b.__dict__["cross_attention"] = spec.family == "encoder-decoder" and name == "decoder"
    elif b.cross_attention and not (spec.family == "encoder-decoder" and name == "decoder"):
        errs.append(
            (base + ("cross_attention",), f"cross_attention needs an encoder to attend to; the {name} of a "
             f"{spec.family} model has none")
        )
    # MLP widths.
    mlp = b.mlp
    inner = mlp.expert if mlp.kind == "moe" else mlp
    if inner.ffn is None:
        inner.__dict__["ffn"] = s.ffn
    if mlp.kind == "moe" and mlp.top_k > mlp.experts:
        errs.append((base + ("mlp", "top_k"), f"top_k ({mlp.top_k}) must be at most experts ({mlp.experts})"))
    if b.residual.kind == "parallel" and b.placement != "pre":
        errs.append(
            (base + ("placement",), "parallel residual reads normalised inputs; "
             f"placement must be 'pre', not '{b.placement}'")
        )
    if b.placement == "output" and at.kind != "self":
        errs.append((base + ("placement",), f"placement 'output' (x + norm(f(x)), OLMo 2) is compiled for "
                     f"self-attention layers; {at.kind} attention runs its own norm placement: use 'pre', 'post' or "
                     "'sandwich'"))
    if getattr(at, "qk_norm_scope", "head") == "projection" and not at.qk_norm:
        errs.append((base + ("attention", "qk_norm_scope"), "qk_norm_scope 'projection' says how the q/k norm "
                     "normalises, and qk_norm is false; set qk_norm: true or remove qk_norm_scope"))
    elif getattr(at, "qk_norm_scope", "head") == "projection" and b.cross_attention:
        errs.append((base + ("attention", "qk_norm_scope"), "qk_norm_scope 'projection' (OLMo 2) is compiled for "
                     "self-attention only, and this stack cross-attends; use qk_norm_scope 'head'"))
    if b.cross_attention is False and spec.family == "encoder-decoder" and name == "decoder":
        errs.append(
            (base + ("cross_attention",), "a decoder without cross-attention never reads the encoder, whose "
             "weights would then never train; use family 'decoder' for a decoder-only model")
        )
    if b.residual.kind == "parallel" and b.cross_attention:
        errs.append(
            (base + ("residual", "kind"), "parallel residual runs attention and MLP side by side and has no "
             "place for cross-attention; give the decoder `residual: {kind: sequential}` (or deepnorm) or set "
             "`cross_attention: false`")
        )
    if stack.pattern is not None:
        errs += _check_pattern(spec, name, stack)
    if not stack.first_attn_norm and (b.placement != "pre" or b.residual.kind != "sequential"
                                      or spec.sharing.kind != "none" or at.kind != "self"):
        errs.append(((name, "first_attn_norm"), "a first layer without attention norm needs placement 'pre', a "
                     f"sequential residual, unshared layers and self-attention (here: {b.placement}, "
                     f"{b.residual.kind}, sharing {spec.sharing.kind}, {at.kind} attention)"))
    # Kinds that derive values of their own (DeepNorm's alpha and beta from the depth).
    for field_name in ("norm", "residual", "attention", "mlp"):
        derive = getattr(getattr(b, field_name), "derive", None)
        if derive is not None:
            errs += [(base + path, msg) for path, msg in derive(spec, name, b.placement)]
    return errs


def _check_pattern(spec: ModelSpec, name: str, stack: Stack) -> list[tuple[tuple[str | int, ...], str]]:
    """A stack's per-layer pattern: each entry used, windows only there, rotary overrides on rotary models."""
    errs: list[tuple[tuple[str | int, ...], str]] = []
    pat, at, at_path = stack.pattern or [], stack.block.attention, (name, "block", "attention")
    if len(pat) > stack.layers:
        errs.append(((name, "pattern"), f"the pattern has {len(pat)} entries for {stack.layers} layers; entries "
                     f"{stack.layers}.. would never be used"))
    if at.kind != "self":
        errs.append((at_path + ("kind",), f"a layer pattern varies self-attention; {at.kind} attention has no "
                     "per-layer window or rotary base; remove `pattern`"))
    if at.window is not None:
        errs.append((at_path + ("window",), f"with a layer pattern each entry sets its layers' window; remove "
                     f"block.attention.window ({at.window}) and put it in the entries that slide"))
    if at.mask == "prefix" and any(e.window is not None for e in pat):
        errs.append(((name, "pattern"), "a sliding window with the 'prefix' mask is not supported"))
    for j, e in enumerate(pat):
        if e.rope is None:
            continue
        if spec.position.kind != "rope":
            errs.append(((name, "pattern", j, "rope"), f"a per-layer rotary base needs position kind 'rope', not "
                         f"{spec.position.kind!r}"))
            continue
        sc = e.rope.scaling
        if sc is not None and sc.kind in ("llama3", "yarn", "dynamic") and not (
                sc.original_max_positions or spec.sizes.max_positions):
            errs.append(((name, "pattern", j, "rope", "scaling", "original_max_positions"), f"{sc.kind} rope "
                         "scaling needs the unscaled training context: set original_max_positions "
                         "(or sizes.max_positions)"))
        if sc is not None and sc.kind == "dynamic":
            errs.append(((name, "pattern", j, "rope", "scaling", "kind"), "dynamic rope scaling per layer is not "
                         "supported; supported: linear, llama3, yarn"))
    return errs


def deep_merge(base: Any, over: Any) -> Any:
    """Merge `over` onto `base` without mutating either.

    Mappings merge key by key; everything else (lists included) is replaced.  A mapping
    whose ``kind`` changes is replaced whole, so switching ``norm`` from layernorm to
    rmsnorm does not drag layernorm's ``bias`` along.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        if "kind" in over and "kind" in base and over["kind"] != base["kind"]:
            return _copied(over)
        out = {k: deep_merge(v, over[k]) if k in over else _copied(v) for k, v in base.items()}
        for k, v in over.items():
            if k not in base:
                out[k] = _copied(v)
        return out
    return _copied(over)


def _copied(x: Any) -> Any:
    """`copy.deepcopy` for the plain data specs are made of (several times faster: `plmgraph list`
    merges every zoo spec); anything else is deep-copied."""
    if type(x) is dict:
        return {k: _copied(v) for k, v in x.items()}
    if type(x) is list:
        return [_copied(v) for v in x]
    if x is None or type(x) in (str, int, float, bool):
        return x
    return copy.deepcopy(x)


#: Short names accepted by ``--override`` for the headline sizes.
SIZE_ALIASES = {k: ("sizes", k) for k in Sizes.model_fields}

__all__ = [
    "Block",
    "DenseMLP",
    "Embeddings",
    "GatedMLP",
    "HEAD_KINDS",
    "LayerNorm",
    "ModelSpec",
    "Patches",
    "RMSNorm",
    "Sharing",
    "Sizes",
    "Stack",
    "deep_merge",
]
