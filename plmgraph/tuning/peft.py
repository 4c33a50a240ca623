"""Hugging Face PEFT interop: a tuned model's adapter in PEFT's layout, and PEFT adapters into plmgraph.

`save_peft(model, folder)` writes ``adapter_config.json`` + ``adapter_model.safetensors`` with PEFT's key
names relative to the Hugging Face model that `compile.hf.to_hf` writes for the same spec, so
``peft.PeftModel.from_pretrained(hf_model, folder)`` computes what the plmgraph model computes.
`load_peft(spec, weights, folder)` does the reverse. PEFT itself is not needed for either.

How plmgraph's projection targets map to PEFT modules (Hugging Face's weight-name tables,
plmgraph/compile/hf_types/, say which HF tensors make up each fused plmgraph projection):

* one plmgraph slice == one HF module (LLaMA ``attn.q`` <-> ``q_proj``, ``mlp.gate`` <-> ``gate_proj``,
  GPT-2 ``attn.qkv`` <-> ``c_attn``): ``lora_A = A``, ``lora_B = B``;
* a fused plmgraph target over several HF modules (``attn.qkv`` on LLaMA): each module gets a copy of
  ``A`` and its rows of ``B`` (exact: ``B_q A`` are the q rows of ``B A``);
* several plmgraph slices in one HF module (``attn.q`` + ``attn.v`` on GPT-2's fused ``c_attn``): one PEFT
  LoRA of rank ``k·r`` with ``lora_A = [A_q; A_v]`` and a block-diagonal ``lora_B`` (zero rows for k), its
  ``rank_pattern`` / ``alpha_pattern`` keeping the scale ``alpha / r`` (exact as well). On import such
  a module becomes the fused target (``attn.qkv``) only when it is a plain rank-r LoRA.
* IA³: a vector per HF module; rows plmgraph does not scale are 1 (GPT-2's ``c_attn`` with k and v).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from . import TuningError

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PEFT_FILES = (CONFIG, WEIGHTS)
PREFIX = "base_model.model."


def _hf(spec: Any) -> tuple[str, str, Any]:
    from ..compile.hf_types import find_family

    model_type, arch, _ = find_family(spec)
    return model_type, arch, None


def _task(arch: str) -> str | None:
    if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
        return "CAUSAL_LM"
    if arch.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if arch.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    if arch.endswith("ForConditionalGeneration"):
        return "SEQ_2_SEQ_LM"
    return None


def hf_parts(graph: Any, spec: Any) -> tuple[str, str, dict[str, list[tuple[str, int, int, bool]]]]:
    """(model_type, arch, {plmgraph linear path: [(HF module path, first row, end row, transposed)]})."""
    from ..compile.hf_types import find_family, plan

    model_type, arch, _ = find_family(spec)
    parts: dict[str, list[tuple[str, int, int, bool]]] = {}
    for it in plan(graph, model_type, arch=arch):
        if not it.key.endswith(".weight") or len(it.shape) != 2 or it.rule.experts:
            continue
        host = it.key.removesuffix(".weight")
        if it.per_head is not None or getattr(it.rule, "qkv_grouped", False):
            parts[host] = []  # rows reordered per head: no row slice maps to one HF module
            continue
        sizes = it.sizes or (it.shape[0],)
        at, out = 0, []
        for name, size in zip(it.groups[0], sizes, strict=True):
            out.append((name.removesuffix(".weight"), at, at + size, it.rule.t))
            at += size
        parts[host] = out
    return model_type, arch, parts


def _parts_of(parts: dict[str, Any], host: str, what: str) -> list[tuple[str, int, int, bool]]:
    ps = parts.get(host)
    if not ps:
        raise TuningError(f"{what} on {host}: its Hugging Face weights are laid out per head (or not a linear), "
                          "so PEFT has no module for it")
    return ps


# ----------------------------------------------------------------------------- export


def to_peft(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """PEFT's adapter_config (a dict) and tensors for a tuned model (LoRA, IA³, prompt tuning).

    Raises:
        TuningError: a tuning kind PEFT has no layout for here, or a target PEFT cannot express.
        ConversionError: no Hugging Face architecture expresses the spec.
    """
    p = getattr(model, "tuning", None)
    if p is None or p.kind == "full":
        raise TuningError("the model has no adapter to save (tuning: full)")
    model_type, arch, parts = hf_parts(model.graph, model.spec)
    params = dict(model.named_parameters())
    base = {"base_model_name_or_path": None, "revision": None, "inference_mode": True, "task_type": _task(arch),
            "modules_to_save": None, "auto_mapping": None}
    if p.kind == "lora":
        return _lora_out(p, parts, params, base)
    if p.kind == "ia3":
        return _ia3_out(p, parts, params, base)
    if p.kind == "prompt":
        spec = model.spec
        cfg = {**base, "peft_type": "PROMPT_TUNING", "task_type": _task(arch) or "CAUSAL_LM",
               "num_virtual_tokens": p.attrs["length"], "token_dim": p.added["prompt.weight"][1],
               "num_transformer_submodules": 2 if spec.family == "encoder-decoder" else 1,
               "num_attention_heads": spec.sizes.heads, "num_layers": list(spec.stacks.values())[0].layers,
               "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None, "tokenizer_name_or_path": None,
               "tokenizer_kwargs": None}
        if spec.family == "encoder-decoder":
            raise TuningError("prompt tuning of an encoder-decoder: PEFT puts soft tokens in front of both stacks; "
                              "plmgraph only the encoder, so the adapter would differ")
        return cfg, {"prompt_embeddings": params["prompt.weight"].detach().cpu().contiguous()}
    from ..kinds import kind as block_kind

    k = block_kind(f"tuning/{p.kind}")
    if hasattr(k, "to_peft"):  # another kind's own PEFT layout (prefix tuning)
        cfg, tensors = k.to_peft(model, p)
        return {**base, **cfg}, tensors
    raise TuningError(f"tuning kind {p.kind!r} has no PEFT layout here (LoRA, IA³ and prompt tuning do)")


def _by_module(sites: list[dict[str, Any]], parts: dict[str, Any], what: str) -> dict[str, list[tuple]]:
    """HF module -> [(site, first row of the overlap, end row, module's first row)]."""
    out: dict[str, list[tuple]] = {}
    for s in sites:
        for name, h0, h1, t in _parts_of(parts, s["host"], what):
            lo, hi = max(h0, s["start"]), min(h1, s["stop"])
            if lo < hi:
                out.setdefault(name, []).append((s, lo, hi, h0, h1, t))
    return out


def _lora_out(p: Any, parts: dict[str, Any], params: dict[str, Any], base: dict[str, Any]) -> tuple[dict, dict]:
    a = p.attrs
    r, alpha = a["rank"], a["alpha"]
    tensors: dict[str, torch.Tensor] = {}
    rank_pattern, alpha_pattern = {}, {}
    fan_in_fan_out = False
    for name, hits in _by_module(p.sites["projections"], parts, "LoRA").items():
        As, cols = [], []
        rows = hits[0][4] - hits[0][3]
        for s, lo, hi, h0, _h1, t in hits:
            fan_in_fan_out |= t
            key = f"{s['host']}.lora.{s['key']}"
            As.append(params[f"{key}.A"].detach().cpu())
            cols.append((params[f"{key}.B"].detach().cpu(), lo - s["start"], hi - s["start"], lo - h0, hi - h0))
        k = len(hits)
        A = torch.cat(As, 0)
        B = torch.zeros(rows, k * r, dtype=A.dtype)
        for i, (b, s0, s1, m0, m1) in enumerate(cols):
            B[m0:m1, i * r:(i + 1) * r] = b[s0:s1]
        tensors[f"{PREFIX}{name}.lora_A.weight"] = A.contiguous()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = B.contiguous()
        if k > 1:  # same scale with rank k·r: alpha' / (k r) = alpha / r  (rsLoRA: / sqrt)
            rank_pattern[name] = k * r
            alpha_pattern[name] = alpha * (math.sqrt(k) if a["rslora"] else k)
    cfg = {**base, "peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": a["dropout"],
           "target_modules": sorted({k.removeprefix(PREFIX).rsplit(".lora_", 1)[0] for k in tensors}),
           "fan_in_fan_out": fan_in_fan_out, "bias": "none", "use_rslora": a["rslora"], "init_lora_weights": True,
           "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern, "use_dora": False,
           "layers_to_transform": None, "layers_pattern": None}
    return cfg, tensors


def _ia3_out(p: Any, parts: dict[str, Any], params: dict[str, Any], base: dict[str, Any]) -> tuple[dict, dict]:
    tensors: dict[str, torch.Tensor] = {}
    ff, fan_in_fan_out = [], False
    for name, hits in _by_module(p.sites["projections"], parts, "IA³").items():
        s0 = hits[0][0]
        fan_in_fan_out |= hits[0][5]
        if s0["target"] == "mlp.down":
            ff.append(name)
            tensors[f"{PREFIX}{name}.ia3_l"] = params[f"{s0['host']}.ia3.{s0['key']}"].detach().cpu()[None, :].clone()
            continue
        h0, h1 = hits[0][3], hits[0][4]
        v = torch.ones(h1 - h0, dtype=params[f"{s0['host']}.ia3.{s0['key']}"].dtype)
        for s, lo, hi, *_ in hits:
            vec = params[f"{s['host']}.ia3.{s['key']}"].detach().cpu()
            v[lo - h0:hi - h0] = vec[lo - s["start"]:hi - s["start"]]
        tensors[f"{PREFIX}{name}.ia3_l"] = v[:, None].contiguous()
    cfg = {**base, "peft_type": "IA3", "target_modules": sorted(k.removeprefix(PREFIX).removesuffix(".ia3_l")
                                                                 for k in tensors),
           "feedforward_modules": sorted(ff), "fan_in_fan_out": fan_in_fan_out, "init_ia3_weights": True}
    return cfg, tensors


def save_peft(model: Any, folder: str | Path) -> Path:
    """Write the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) into `folder` (which
    must exist; `compile.io.write_folder` makes the write atomic for the CLI)."""
    from safetensors.torch import save_file

    cfg, tensors = to_peft(model)
    out = Path(folder)
    (out / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(out / WEIGHTS))
    return out


# ----------------------------------------------------------------------------- import


def read_peft(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The adapter_config and tensors of a PEFT adapter folder (safetensors only: no pickle).

    Raises:
        TuningError: missing files, a config that is not a JSON object, unreadable tensors.
    """
    from ..compile.io import read_tensors
    from ..errors import CheckpointError

    d = Path(folder)
    f = d / CONFIG
    if not f.is_file():
        raise TuningError(f"{d}: no {CONFIG}; a PEFT adapter folder holds {CONFIG} and {WEIGHTS}")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as e:
        raise TuningError(f"{f}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("peft_type"), str):
        raise TuningError(f"{f}: a PEFT adapter config is a JSON object with a peft_type")
    if not (d / WEIGHTS).is_file():
        pickle = (d / "adapter_model.bin").is_file()
        extra = " (adapter_model.bin is a pickle, which plmgraph does not read)" if pickle else ""
        raise TuningError(f"{d}: no {WEIGHTS}{extra}")
    try:
        tensors = read_tensors(d / WEIGHTS)
    except CheckpointError as e:
        raise TuningError(str(e)) from None
    return cfg, tensors


def tuning_from_peft(graph: Any, spec: Any, cfg: dict[str, Any], tensors: dict[str, torch.Tensor],
                     source: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(the spec's ``tuning`` as a dict, plmgraph-named adapter tensors) for a PEFT adapter on `spec`.

    Raises:
        TuningError: an adapter PEFT type plmgraph does not read, options it does not compile, or
            tensors that do not fit this base model (unknown modules, wrong shapes, layers left out).
    """
    from ..kinds.tuning._shared import _slices, layer_sites

    kind = cfg["peft_type"]
    if kind == "PROMPT_TUNING":
        t = tensors.get("prompt_embeddings")
        if t is None or t.dim() != 2 or set(tensors) != {"prompt_embeddings"}:
            raise TuningError(f"{source}: a prompt-tuning adapter holds one 2-D prompt_embeddings tensor; got "
                              f"{sorted(tensors)[:4]}")
        n = cfg.get("num_virtual_tokens")
        if cfg.get("num_transformer_submodules", 1) != 1 or n != t.shape[0]:
            raise TuningError(f"{source}: {cfg.get('num_transformer_submodules')} transformer submodules / "
                              f"{n} virtual tokens for a [{t.shape[0]}, {t.shape[1]}] prompt; plmgraph reads "
                              "one prompt for the first stack")
        return {"kind": "prompt", "length": int(t.shape[0])}, {"prompt.weight": t}
    if kind not in ("LORA", "IA3"):
        from ..kinds import KINDS

        for k in KINDS.values():  # another kind's own PEFT layout (prefix tuning): `peft_type` + `from_peft`
            if k.name.startswith("tuning/") and getattr(k, "peft_type", None) == kind and hasattr(k, "from_peft"):
                return k.from_peft(graph, spec, cfg, tensors, source)
        raise TuningError(f"{source}: PEFT type {kind} is not read by plmgraph (LORA, IA3 and PROMPT_TUNING are)")
    if kind == "LORA" and (cfg.get("use_dora") or cfg.get("rank_pattern") or cfg.get("alpha_pattern")
                           or cfg.get("bias", "none") != "none" or cfg.get("lora_bias")):
        raise TuningError(f"{source}: DoRA, per-module ranks or alphas and trained biases are not compiled; "
                          "plmgraph's LoRA has one rank and alpha")
    _, _, parts = hf_parts(graph, spec)
    # HF module -> (plmgraph host, rows, target name)
    where: dict[str, tuple[str, int, int, str, str]] = {}
    for site in layer_sites(graph):
        for role in ("attn", "cross", "mlp"):
            if role not in site:
                continue
            for target, (proj, key, s0, s1, _fan) in _slices(graph.node(site[role])).items():
                host = f"{site[role]}.{proj}"
                for name, h0, h1, _t in parts.get(host, []):
                    if (h0, h1) == (s0, s1):
                        where[name] = (host, s0, s1, target, key)
    suffix = ".lora_A.weight" if kind == "LORA" else ".ia3_l"
    modules = sorted({k.removeprefix(PREFIX).rsplit(".lora_", 1)[0] if kind == "LORA" else
                      k.removeprefix(PREFIX).removesuffix(".ia3_l") for k in tensors})
    unknown = [m for m in modules if m not in where]
    if unknown:
        raise TuningError(f"{source}: the adapter is not for this base model, or targets modules plmgraph's "
                          f"{kind.lower()} does not cover: {', '.join(unknown[:5])} (the base model's projections: "
                          f"{', '.join(sorted(where)[:6])} ...)")
    bad_keys = [k for k in tensors if not k.startswith(PREFIX) or not (k.endswith(suffix) or k.endswith(
        ".lora_B.weight"))]
    if bad_keys:
        raise TuningError(f"{source}: unexpected tensors {bad_keys[:4]} for a {kind} adapter")
    targets: list[str] = []
    for m in modules:
        if where[m][3] not in targets:
            targets.append(where[m][3])
    hosts = {where[m][0] for m in modules}
    out: dict[str, torch.Tensor] = {}
    if kind == "LORA":
        r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
        for m in modules:
            host, s0, s1, _target, key = where[m]
            A, B = tensors.get(f"{PREFIX}{m}.lora_A.weight"), tensors.get(f"{PREFIX}{m}.lora_B.weight")
            fan_in = graph.param_shapes()[f"{host}.weight"][1]
            if A is None or B is None or tuple(A.shape) != (r, fan_in) or tuple(B.shape) != (s1 - s0, r):
                raise TuningError(f"{source}: {m}: lora_A {_shape(A)} / lora_B {_shape(B)} do not fit this base model "
                                  f"(expected [{r}, {fan_in}] and [{s1 - s0}, {r}])")
            out[f"{host}.lora.{key}.A"], out[f"{host}.lora.{key}.B"] = A, B
        tuning = {"kind": "lora", "rank": r, "alpha": alpha, "dropout": float(cfg.get("lora_dropout", 0.0)),
                  "targets": targets, "rslora": bool(cfg.get("use_rslora", False))}
    else:
        ff = set(cfg.get("feedforward_modules") or [])
        for m in modules:
            host, s0, s1, target, key = where[m]
            v = tensors[f"{PREFIX}{m}.ia3_l"]
            is_ff = any(m == f or m.endswith("." + f) for f in ff)
            if is_ff != (target == "mlp.down"):
                raise TuningError(f"{source}: {m} is {'' if is_ff else 'not '}a feed-forward module in the adapter; "
                                  "plmgraph's IA³ scales the input of the MLP's down projection only")
            fan_in = graph.param_shapes()[f"{host}.weight"][1]
            want = (1, fan_in) if is_ff else (s1 - s0, 1)
            if tuple(v.shape) != want:
                raise TuningError(f"{source}: {m}.ia3_l is {list(v.shape)}, this base model needs {list(want)}")
            out[f"{host}.ia3.{key}"] = v.reshape(-1)
        tuning = {"kind": "ia3", "targets": targets}
    # every layer must carry the adapter: plmgraph's targets apply to all layers
    from ..kinds.tuning._shared import projections

    expected = {pr.host for pr in projections(graph, targets, kind)}
    if expected != hosts:
        raise TuningError(f"{source}: the adapter covers {len(hosts)} of the {len(expected)} projections its targets "
                          f"name ({', '.join(targets)}); plmgraph applies a target to every layer")
    return tuning, out


def _shape(t: Any) -> str:
    return "missing" if t is None else str(list(t.shape))


def load_peft(spec: Any, base: dict[str, torch.Tensor], folder: str | Path, device: Any = None) -> Any:
    """A tuned plmgraph model: `spec` with the tuning of the PEFT adapter in `folder`, base weights `base`
    (plmgraph names), the adapter's tensors loaded. In eval mode.

    Raises:
        TuningError: the adapter does not fit the base model (see `tuning_from_peft`).
    """
    from ..compile import build
    from ..graph import resolve
    from .core import check_base

    graph = resolve(spec)
    cfg, tensors = read_peft(folder)
    tuning, adapter = tuning_from_peft(graph, spec, cfg, tensors, str(folder))
    data = spec.model_dump(mode="json", exclude_unset=True)
    data["tuning"] = tuning
    from ..spec.model import CrossFieldError

    try:
        tuned = type(spec).model_validate(data)
    except CrossFieldError as e:  # the adapter's options do not fit this model (a tuning kind's `check`)
        raise TuningError(f"{folder}: " + "; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in e.errors)) from None
    from . import plan

    p = plan(tuned)
    check_base(p, base, "base weights", spec.name)
    wrong = [f"{k} {list(v.shape)} != {list(p.added[k])}" for k, v in adapter.items() if tuple(v.shape) != p.added[k]]
    if wrong or set(adapter) != set(p.added):
        odd = sorted(set(p.added) ^ set(adapter))[:4]
        raise TuningError(f"{folder}: adapter tensors do not fit: {wrong[:4]} {odd}")
    dtype = next(iter(base.values())).dtype
    model = build(tuned, device="meta", dtype=dtype)
    state = {**base, **{k: v.to(dtype) for k, v in adapter.items()}}
    from ..compile.io import load_weights

    load_weights(model, state, str(folder))
    if device is not None:
        model.to(device)
    return model.eval()


__all__ = ["PEFT_FILES", "load_peft", "read_peft", "save_peft", "to_peft", "tuning_from_peft"]
