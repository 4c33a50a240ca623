"""Rotary position parameters <-> a spec ``position: {kind: rope}``, shared by the rotary decoders.

transformers 5 writes ``rope_parameters`` (``rope_type``, ``rope_theta``, scaling knobs);
4.x wrote ``rope_theta`` and ``rope_scaling`` at the top level.  Both are read; the 5.x form
is written.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConversionError
from ...spec import ModelSpec
from .base import Cfg, Hook, Unhook, cfg_value, need

#: rope_type -> {HF parameter: spec scaling field} it takes.
SCALING: dict[str, dict[str, str]] = {
    "default": {},
    "linear": {"factor": "factor"},
    "dynamic": {"factor": "factor", "original_max_position_embeddings": "original_max_positions"},
    "llama3": {"factor": "factor", "low_freq_factor": "low_freq_factor", "high_freq_factor": "high_freq_factor",
               "original_max_position_embeddings": "original_max_positions"},
    "yarn": {"factor": "factor", "original_max_position_embeddings": "original_max_positions"},
}
# YaRN knobs plmgraph does not model are accepted only at HF's defaults.
YARN_DEFAULTS = {"beta_fast": 32.0, "beta_slow": 1.0, "mscale": None, "mscale_all_dim": None,
                 "attention_factor": None, "truncate": True}


def rope_hook(default_theta: float, default_fraction: float = 1.0, interleaved: bool = False) -> Hook:
    """rope_parameters (transformers 5) or rope_theta + rope_scaling (4.x) -> position."""

    def hook(cfg: Cfg, d: dict[str, Any]) -> None:
        rp = dict(cfg.get("rope_scaling") or {})
        rp.update(cfg.get("rope_parameters") or {})
        theta = rp.pop("rope_theta", cfg.get("rope_theta", default_theta))
        fraction = rp.pop("partial_rotary_factor", cfg.get("partial_rotary_factor", default_fraction))
        kind = rp.pop("rope_type", None) or rp.pop("type", None) or "default"
        rp.pop("type", None)
        pos: dict[str, Any] = {"kind": "rope", "theta": float(theta), "fraction": float(fraction),
                               "interleaved": interleaved}
        if kind not in SCALING:
            raise ConversionError(
                f"config.json: rope type {kind!r} has no plmgraph equivalent; supported: {', '.join(SCALING)}"
            )
        unknown = {}
        for k, v in rp.items():
            if k in SCALING[kind]:
                continue
            if kind == "yarn" and k in YARN_DEFAULTS and v == YARN_DEFAULTS[k]:
                continue
            unknown[k] = v
        if unknown:
            raise ConversionError(
                f"config.json: rope ({kind}) parameters {unknown} have no plmgraph equivalent; "
                f"supported: {', '.join(['rope_theta', 'partial_rotary_factor', *SCALING[kind]])}"
            )
        if kind != "default":
            sc: dict[str, Any] = {"kind": kind}
            for k, s in SCALING[kind].items():
                if k in rp:
                    sc[s] = rp[k]
            if kind == "dynamic":
                # HF's dynamic NTK rescales beyond max_position_embeddings (its
                # original_max_position_embeddings is unused there), and accepts any length: the spec
                # keeps that as the original context and allows factor times more positions.
                mp = int(cfg_value(cfg, "max_position_embeddings"))
                sc["original_max_positions"] = mp
                d["sizes"]["max_positions"] = int(mp * sc["factor"])
            pos["scaling"] = sc
        d["position"] = pos

    return hook


def rope_unhook(fraction_key: bool) -> Unhook:
    """position -> ``rope_parameters``; `fraction_key`: always write ``partial_rotary_factor`` (GLM)."""

    def unhook(spec: ModelSpec, cfg: Cfg) -> None:
        pos = spec.position
        need(pos.kind == "rope", cfg["model_type"], f"position kind {pos.kind!r} (its positions are rotary)")
        rp: dict[str, Any] = {"rope_theta": pos.theta, "rope_type": "default"}
        if fraction_key or pos.fraction != 1.0:
            rp["partial_rotary_factor"] = pos.fraction
        if pos.scaling is not None:
            sc = pos.scaling
            rp["rope_type"] = sc.kind
            rp["factor"] = sc.factor
            for hf, name in (("original_max_position_embeddings", "original_max_positions"),
                             ("low_freq_factor", "low_freq_factor"), ("high_freq_factor", "high_freq_factor")):
                if getattr(sc, name) is not None:
                    rp[hf] = getattr(sc, name)
        if pos.scaling is not None and pos.scaling.kind == "dynamic":
            cfg["max_position_embeddings"] = pos.scaling.original_max_positions
            rp.pop("original_max_position_embeddings", None)
        cfg["rope_parameters"] = rp

    return unhook
