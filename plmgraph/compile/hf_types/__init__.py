"""Hugging Face ``config.json`` and tensor names <-> plmgraph, one module per ``model_type``.

Each type module (``bert.py``, ``llama.py``, ...) is data: one ``FAMILY = Family(...)``
holding that type's config table, the architectures it knows, its weight-name templates,
the checkpoint tensors to ignore, its init scheme, and the hook/unhook pair for the
fields that are not a one-to-one copy.  `base` defines `Family` and reads it both ways,
`weights` turns name templates and a graph into a tensor plan, `rope` is the rotary
parameters the rotary decoders share.

Adding a model type is one new small module of data: write ``<model_type>.py`` defining
``FAMILY`` (usually the differences from a close relative: ``mistral.py`` would start from
`llama.LLAMA_FIELDS`, `llama.DECODER_BASE` and `llama.llama_names`), add it to `_MODULES`
below, and give it a parity test under ``tests/parity/``.  Nothing else changes: import,
export, the tensor check and `find_family` all read the registry.

`config_to_spec` reads a table forwards; `spec_to_config` reads it backwards, and
`find_family` picks the (family, architecture) whose table reproduces a given spec, so
``to_hf`` needs no hint and refuses a spec no HF class can express.

This package never imports torch or transformers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from ...errors import ConversionError
from ...graph import ArchGraph
from ...spec import ModelSpec, SpecError, validate
from ...spec.extends import Merged
from . import (
    albert,
    bart,
    bert,
    bloom,
    camembert,
    deberta_v2,
    distilbert,
    electra,
    ernie,
    falcon,
    gemma,
    gemma2,
    gemma3_text,
    glm,
    gpt2,
    gpt_bigcode,
    gpt_neox,
    gptj,
    llama,
    mistral,
    mixtral,
    modernbert,
    mpnet,
    olmo2,
    openai_gpt,
    opt,
    phi,
    phi3,
    qwen2,
    qwen2_moe,
    qwen3,
    qwen3_moe,
    roberta,
    stablelm,
    starcoder2,
    t5,
    vit,
    xlm_roberta,
    xlnet,
)
from .base import Cfg, Family
from .weights import ALWAYS_IGNORED, Item, plan_for

# The order is find_family's preference when two families reproduce a spec: an ERNIE without
# task types is a BERT, so bert comes first.
_MODULES = (bert, ernie, roberta, albert, distilbert, openai_gpt, gpt2, t5, bart, llama, mixtral, glm, vit, xlnet,
            mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, modernbert, starcoder2, phi3, gpt_neox, opt,
            xlm_roberta, camembert, gptj, stablelm, bloom, qwen3_moe,
            gpt_bigcode, falcon, qwen2_moe, phi, electra, deberta_v2, mpnet, olmo2)

#: model_type -> its `Family`: the one registry import, export and the tensor check read.
FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add `family` to `FAMILIES` (a second family for the same model_type is a bug)."""
    if family.model_type in FAMILIES:
        raise ValueError(f"model_type {family.model_type!r} is registered twice")
    FAMILIES[family.model_type] = family
    return family


for _m in _MODULES:
    register(_m.FAMILY)


# ------------------------------------------------------------------------ forwards


def family_of(cfg: Cfg) -> Family:
    """The family of a HF config, by its ``model_type``.

    Raises:
        ConversionError: a model_type plmgraph does not support (the supported ones listed).
    """
    mt = cfg.get("model_type")
    if mt not in FAMILIES:
        raise ConversionError(
            f"config.json: model_type {mt!r} is not supported; supported: {', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[mt]


def config_to_dict(cfg: Cfg, name: str = "hf-model") -> dict[str, Any]:
    """A HF config -> the (unvalidated) spec mapping; raises `ConversionError` for what has no equivalent."""
    return family_of(cfg).to_spec_dict(cfg, name)


def config_to_spec(cfg: Cfg, name: str = "hf-model") -> ModelSpec:
    """A HF config (the parsed ``config.json``) -> validated `ModelSpec`.

    Raises:
        ConversionError: unknown model_type or architecture, or a config value with no spec
            equivalent (named with its value and what is supported).
    """
    d = config_to_dict(cfg, name)
    try:
        return validate(Merged(d, file="config.json"))
    except SpecError as e:
        raise ConversionError(f"config.json converts to an invalid spec: {e}") from None


def read_config_file(f: Path) -> Cfg:
    """A ``config.json`` parsed, or one clear `ConversionError` (not JSON, not an object, a model_type
    that is not a string)."""
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConversionError(f"{f}: not valid JSON ({str(e)[:200]})") from None
    except RecursionError:
        raise ConversionError(f"{f}: JSON nested too deeply to be a config") from None
    except OSError as e:
        raise ConversionError(f"{f}: cannot be read ({e.strerror or e})") from None
    if not isinstance(cfg, dict):
        raise ConversionError(f"{f}: a Hugging Face config.json is a JSON object ({{\"model_type\": ...}}), got "
                              f"a JSON {type(cfg).__name__.replace('str', 'string').replace('NoneType', 'null')}")
    if not isinstance(cfg.get("model_type"), str):
        raise ConversionError(f"{f}: model_type must be a string such as \"llama\", got "
                              f"{json.dumps(cfg.get('model_type'))[:60]}")
    return cfg


def spec_name_of(folder: Path) -> str:
    """A spec name from a checkpoint folder's name (``Llama-3.2-1B``), made a valid spec name."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", folder.resolve().name).strip("-.") or "hf-model"
    return name if name[0].isalnum() else f"hf-{name}"


def merged_from_config(f: Path) -> Merged:
    """A Hugging Face ``config.json`` -> the merged (unvalidated) spec mapping `validate` reads, named after
    its folder; raises `ConversionError` for what has no spec equivalent."""
    return Merged(config_to_dict(read_config_file(f), spec_name_of(f.parent)), file=str(f), files=[str(f)])


# ------------------------------------------------------------------------ backwards


def spec_to_config(spec: ModelSpec, model_type: str, arch: str) -> Cfg:
    """The inverse of `config_to_spec` for one family and architecture (checked by `find_family`).

    Raises:
        ConversionError: the family cannot write one of the spec's values.
    """
    return FAMILIES[model_type].to_config(spec, arch)


def _comparable(spec: ModelSpec) -> dict[str, Any]:
    # The top-level block is only the template of the stacks, which carry the resolved blocks;
    # objectives, tuning and init say how to train, not what the weights are.
    d = spec.model_dump(mode="json", exclude={"name", "source", "extends", "objectives", "tuning", "init", "block"})
    # Dropout is training-time only; a spec with other rates still exports to the same weights.
    return _strip(d, re.compile(r"dropout"))


def _strip(d: Any, pat: re.Pattern[str]) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v, pat) for k, v in d.items() if not pat.search(k)}
    if isinstance(d, list):
        return [_strip(v, pat) for v in d]
    return d


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}.{k}" if prefix else k).items()}
    if isinstance(d, list):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}[{i}]").items()}
    return {prefix: d}


def find_family(spec: ModelSpec) -> tuple[str, str, Cfg]:
    """The (model_type, architecture, config) whose table reproduces `spec` exactly.

    Each family writes the spec as a config and reads it back; one that cannot write it
    (`ConversionError`: a value or a kind it has no field for) is skipped.  Any other error is
    a bug in a table and propagates.

    Raises:
        ConversionError: no supported Hugging Face class has this architecture (the message
            names the closest one and the spec fields it cannot reproduce).
    """
    want = _flat(_comparable(spec))
    closest: tuple[int, str, list[str]] | None = None
    # An architecture the spec's `source` names ("Hugging Face MistralForCausalLM", an import's; "HF
    # Phi3ForCausalLM", a zoo spec's) is tried first: a Mistral without a window is also a LLaMA, and
    # exports as the class it came from.
    pairs = [(mt, arch) for mt, fam in FAMILIES.items() for arch in fam.archs]
    named = set(re.findall(r"\w+", spec.source or ""))
    pairs.sort(key=lambda p: p[1] not in named)
    for mt, arch in pairs:
        fam = FAMILIES[mt]
        try:
            cfg = fam.to_config(spec, arch)
            back = _flat(_comparable(config_to_spec(cfg, spec.name)))
        except ConversionError:
            continue
        if back == want:
            return mt, arch, cfg
        diffs = [f"{k} ({want.get(k)!r} would become {back.get(k)!r})" for k in sorted(set(want) | set(back))
                 if want.get(k) != back.get(k)]
        if closest is None or len(diffs) < closest[0]:
            closest = (len(diffs), arch, diffs)
    hint = ""
    if closest is not None:
        hint = f"; closest is {closest[1]}, which cannot express: {', '.join(closest[2][:6])}"
    raise ConversionError(f"spec {spec.name!r} matches no supported Hugging Face architecture{hint}")


# ------------------------------------------------------------------------ weights


def plan(graph: ArchGraph, model_type: str, available: set[str] | None = None, arch: str | None = None) -> list[Item]:
    """For every parameter of `graph`, the HF tensors of `model_type` it is made of (see `weights.plan_for`).

    `arch` a bare base model of the family (``BertModel``): its checkpoint names drop the
    family's base-model prefix (``bert.embeddings...`` -> ``embeddings...``), as HF saves them.

    Raises:
        ConversionError: a parameter no rule of `model_type` covers.
    """
    fam = FAMILIES[model_type]
    if arch is not None and arch in fam.renamed:
        return _renamed(graph, fam, arch, available)
    if arch is None or arch not in fam.bare:
        return plan_for(graph, fam.names, model_type, available)
    pre = fam.base_prefix + "."
    if available is not None and any(n.startswith(pre) for n in available):
        return plan_for(graph, fam.names, model_type, available)  # saved from a head model: full names

    def strip(n: str) -> str:
        if not n.startswith(pre):  # a table bug: a bare model has only base-model tensors
            raise ConversionError(f"{model_type} {arch}: tensor {n!r} is outside the base model {fam.base_prefix!r}")
        return n[len(pre):]

    full = plan_for(graph, fam.names, model_type, None if available is None else {pre + n for n in available})
    return [dataclasses.replace(it, groups=tuple(tuple(strip(n) for n in g) for g in it.groups),
                                rule=dataclasses.replace(it.rule, also=tuple(strip(n) for n in it.rule.also)))
            for it in full]


def _renamed(graph: ArchGraph, fam: Family, arch: str, available: set[str] | None) -> list[Item]:
    """The plan of an architecture that keeps its base model under `Family.renamed` [arch]."""
    old, new = fam.base_prefix + ".", fam.renamed[arch] + "."
    if not fam.base_prefix:  # no base-model prefix (T5): every tensor but a head's or the pooler's moves under `new`
        full = plan_for(graph, fam.names, fam.model_type,
                        None if available is None else {n[len(new):] if n.startswith(new) else n for n in available})

        def move(it: Item) -> Item:
            if it.key.startswith(("heads.", "pooler.")):
                return it
            return dataclasses.replace(it, groups=tuple(tuple(new + n for n in g) for g in it.groups),
                                       rule=dataclasses.replace(it.rule, also=tuple(new + n for n in it.rule.also)))

        return [move(it) for it in full]

    def to_new(n: str) -> str:
        return new + n[len(old):] if n.startswith(old) else n

    def to_old(n: str) -> str:
        return old + n[len(new):] if n.startswith(new) else n

    full = plan_for(graph, fam.names, fam.model_type, None if available is None else {to_old(n) for n in available})
    return [dataclasses.replace(it, groups=tuple(tuple(to_new(n) for n in g) for g in it.groups),
                                rule=dataclasses.replace(it.rule, also=tuple(to_new(n) for n in it.rule.also)))
            for it in full]


def ignored(model_type: str, name: str) -> bool:
    """Whether a checkpoint tensor `name` is not a parameter (a saved buffer, a tied matrix's second name)."""
    return any(re.search(p, name) for p in ALWAYS_IGNORED + FAMILIES[model_type].ignored)


__all__ = ["FAMILIES", "Family", "Item", "config_to_dict", "config_to_spec", "family_of", "find_family", "ignored",
           "plan", "register", "spec_to_config"]
