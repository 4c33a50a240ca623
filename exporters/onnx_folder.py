"""Export folders that the deployment tools load as they are.

    pg.export_folder(model, "deploy/", tokenizer=tok)          # plmgraph export RUN -o deploy/ --kv-cache

A decoder exported with its KV cache becomes a folder::

    deploy/
      model.onnx (+ model.onnx.data)   the graph (`export_onnx`: optimized, verified against PyTorch)
      config.json                      Hugging Face's config, from the importer's tables (`to_hf`'s), use_cache
      generation_config.json           bos / eos / pad ids
      genai_config.json                ONNX Runtime GenAI's: decoder inputs / outputs, sizes, search options
      tokenizer.json, tokenizer_config.json, special_tokens_map.json   when the source has a tokenizer
      spec.yaml                        the plmgraph spec (`plmgraph bench` rebuilds PyTorch's model from it)

so that ``optimum.onnxruntime.ORTModelForCausalLM.from_pretrained("deploy/")``,
``onnxruntime_genai.Model("deploy/")`` and `plmgraph.runtime.OrtModel` load it.  GenAI's
``past_present_share_buffer`` is true when every layer's cache lives in GroupQueryAttention
(`onnx_fuse.shares_buffer`: GenAI then allocates past/present of ``max_length`` once and the
kernel writes in place); false for the plain graph (``--no-fuse``) or a model with a layer left
plain, whose cache grows by concatenation (``present`` is ``past`` + the new positions).

An encoder gets the same folder without the GenAI and generation configs (Optimum's
``ORTModelForFeatureExtraction`` loads it and reads ``last_hidden_state``; tested).
Encoder-decoders get Optimum's seq2seq layout (``encoder_model.onnx`` + ``decoder_model_merged.onnx``,
see `onnx_seq2seq`; ``ORTModelForSeq2SeqLM`` loads it, tested).

The folder is written like a checkpoint (`plmgraph.compile.io.write_folder`): into a temporary
folder beside it, then renamed; a failed export or verification leaves nothing behind, and an
existing folder holding other files is refused unless ``force`` (which still deletes nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plmgraph.errors import ExportError, ResourceError

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
FOLDER_FILES = (MODEL_FILE, MODEL_FILE + ".data", "config.json", "generation_config.json", "genai_config.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spec.yaml",
                "encoder_model.onnx", "encoder_model.onnx.data", "decoder_model_merged.onnx",
                "decoder_model_merged.onnx.data")  # the last four: encoder-decoders (onnx_seq2seq)
#: Model types whose ONNX Runtime GenAI (0.18) decoder path reads one ``past_key_values.{i}.key`` /
#: ``.value`` pair per layer, as plmgraph's graph has; genai_config.json names these as they are.
#: Any other decoder (GPT-2: GenAI's ``gpt2`` type expects its older combined ``past_{i}`` cache) is
#: written as ``llama``, GenAI's generic decoder-only path, which runs the graph as it is (tested).
GENAI_TYPES = ("gemma", "gemma2", "granite", "llama", "mistral", "nemotron", "olmo", "phi3", "qwen2", "qwen3")
#: Bytes an export holds per parameter byte at its peak: the model, torch.export's program, the
#: ONNX proto being serialised and ONNX Runtime's optimizing session (measured: ~3.2x on GPT-2 small).
EXPORT_FACTOR = 4
EXPORT_SLACK = 512 * 2**20


@dataclass
class FolderReport:
    """What `export_folder` wrote, and what it could not (each note says why)."""

    path: Path
    files: list[str]
    notes: list[str] = field(default_factory=list)
    verification: Any = None


def is_folder_target(path: str | Path) -> bool:
    """``-o`` names a folder (anything not ending in ``.onnx``)."""
    return Path(path).suffix.lower() != ".onnx"


def check_export_memory(params: int, bytes_per_param: int = 4, name: str = "the model") -> None:
    """Refuse, before anything is built, an export that cannot fit in the memory free now.

    Raises:
        ResourceError: ``EXPORT_FACTOR x`` the weights (plus slack) exceed the available memory.
    """
    import torch

    from plmgraph.compile.build import _gib, available_memory

    need = params * bytes_per_param * EXPORT_FACTOR + EXPORT_SLACK
    free = available_memory(torch.device("cpu"))
    if free is not None and need > free:
        raise ResourceError(f"{name}: exporting {params:,} parameters to ONNX needs about {_gib(need)} of memory "
                            f"({EXPORT_FACTOR}x the {_gib(params * bytes_per_param)} of weights: the model, the "
                            f"exported program, the ONNX file and ONNX Runtime's optimizer), but only {_gib(free)} "
                            "is free; export on a larger machine or a smaller model (nothing was written)")


def _token(tok: Any, role: str) -> tuple[int | None, str | None]:
    if tok is None or role not in tok.roles:
        return None, None
    i = tok.roles[role]
    return i, tok.hf.id_to_token(i)


def hf_config(model: Any, tok: Any = None, kv_cache: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """(config.json contents, None) or (None, why not): Hugging Face's config for ``model.spec``."""
    from plmgraph.compile.hf_types import find_family
    from plmgraph.errors import ConversionError

    try:
        model_type, _arch, cfg = find_family(model.spec)
    except ConversionError as e:
        return None, f"no config.json: {str(e).splitlines()[0]} (Optimum and GenAI need one)"
    cfg = dict(cfg)
    cfg["use_cache"] = kv_cache
    cfg["dtype"] = "float32"
    for role in ("bos", "eos", "pad"):
        i, _ = _token(tok, role)
        if i is not None:
            cfg[f"{role}_token_id"] = i
    cfg.setdefault("transformers_version", "4.57.0")
    return cfg, None


def genai_config(model: Any, sig: Any, cfg: dict[str, Any], tok: Any = None,
                 share_buffer: bool = False) -> dict[str, Any]:
    """ONNX Runtime GenAI's ``genai_config.json`` for a cached decoder graph (the schema its model builder writes);
    `share_buffer`: the graph runs on one preallocated cache buffer (`onnx_fuse.shares_buffer`)."""
    spec = model.spec
    kv_heads, head_dim = sig.kv_shape
    last = model.stacks()[-1]
    attn = next(b for b in last.layers.values()).attn
    inputs: dict[str, str] = {"input_ids": "input_ids"}
    if "attention_mask" in sig.inputs:
        inputs["attention_mask"] = "attention_mask"
    if "position_ids" in sig.inputs:
        inputs["position_ids"] = "position_ids"
    inputs.update(past_key_names="past_key_values.%d.key", past_value_names="past_key_values.%d.value")
    outputs = {"logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value"}
    eos, _ = _token(tok, "eos")
    bos, _ = _token(tok, "bos")
    pad, _ = _token(tok, "pad")
    context = spec.sizes.max_positions or 2048
    return {
        "model": {
            "bos_token_id": bos if bos is not None else cfg.get("bos_token_id", 0),
            "context_length": context,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": MODEL_FILE,
                "head_size": head_dim,
                "hidden_size": spec.sizes.hidden,
                "inputs": inputs,
                "outputs": outputs,
                "num_attention_heads": getattr(attn, "heads", None) or spec.sizes.heads,
                "num_hidden_layers": sig.layers,
                "num_key_value_heads": kv_heads,
            },
            "eos_token_id": eos if eos is not None else cfg.get("eos_token_id", 0),
            "pad_token_id": pad if pad is not None else cfg.get("pad_token_id", 0),
            "type": cfg["model_type"] if cfg["model_type"] in GENAI_TYPES else "llama",
            "vocab_size": spec.sizes.vocab,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
            "max_length": context, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": share_buffer,  # false: the graph concatenates past and new
            "repetition_penalty": 1.0, "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    }


def tokenizer_files(tok: Any, context: int | None) -> dict[str, str]:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json (transformers' fast-tokenizer layout)."""
    special: dict[str, str] = {}
    for role, key in (("bos", "bos_token"), ("eos", "eos_token"), ("pad", "pad_token"), ("unk", "unk_token"),
                      ("cls", "cls_token"), ("sep", "sep_token"), ("mask", "mask_token")):
        _, text = _token(tok, role)
        if text is not None:
            special[key] = text
    added = {str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                      "single_word": t.single_word, "special": t.special}
             for i, t in sorted(tok.hf.get_added_tokens_decoder().items())}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "model_max_length": context or 1_000_000, "added_tokens_decoder": added, **special}
    return {"tokenizer.json": tok.hf.to_str(), "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(special, indent=2) + "\n"}


def export_folder(model: Any, folder: str | Path, *, tokenizer: Any = None, kv_cache: bool = True,
                  optimize: bool = True, verify: bool = True, opset: int | None = None, force: bool = False,
                  fuse: bool = True, on_stage: Callable[[str], None] | None = None, precision: Any = "fp32",
                  eval_ids: list[int] | None = None) -> FolderReport:
    """Export `model` into `folder` (see the module docstring), atomically.

    Args:
        tokenizer: a `plmgraph.train.tokenizer.Tokenizer` (a run's), written beside the graph.
        fuse: ONNX Runtime's fused kernels (the default), or the plain ONNX graph (`export_onnx`'s ``fuse``).
        kv_cache: decoders need it (the cached graph Optimum and GenAI generate with); encoders must not
            set it (refused by `signature`, as for a single file).
        precision: ``"fp32"``, ``"fp16"``, ``"int8"``, ``"int4"`` or an `onnx_quant.Precision` (int4's block
            size and symmetry): the graph converted after export (see `onnx_quant`); decoders with ``kv_cache``
            only.  Its verification is `onnx_quant.verify_precision` (a perplexity ratio on `eval_ids`, default
            `onnx_quant.held_out_ids`, and a relative bound per output).

    Raises:
        ExportError: a decoder without ``kv_cache``, an encoder-decoder that Optimum's seq2seq layout
            cannot hold (`onnx_seq2seq.seq2seq_signature`), or any export / verification failure (nothing
            is left behind).
        CheckpointError: the folder holds other files (without `force`) or cannot be written.
    """
    from plmgraph.compile.io import check_folder, spec_yaml, write_folder

    from . import onnx as ox
    from . import onnx_quant

    spec = model.spec
    out = Path(folder)
    prec = precision if isinstance(precision, onnx_quant.Precision) else onnx_quant.precision(precision)
    onnx_quant.check_model(model, prec, kv_cache)  # a converted precision: cached decoders only
    if spec.family == "encoder-decoder":  # Optimum's seq2seq layout; the merged decoder always has its cache
        from .onnx_seq2seq import export_seq2seq_folder

        return export_seq2seq_folder(model, out, tokenizer=tokenizer, optimize=optimize, verify=verify, opset=opset,
                                     force=force, fuse=fuse, on_stage=on_stage)
    if spec.family == "decoder" and not kv_cache:
        raise ExportError(f"a deploy folder of the decoder {spec.name} holds the cached graph that Optimum and ONNX "
                          "Runtime GenAI generate with: add --kv-cache (in Python: kv_cache=True), or export one "
                          "file (-o model.onnx)")
    sig = ox.signature(model, kv_cache)
    if sig.memory:
        raise ExportError(f"{spec.name} caches segment memories, not keys and values; no deployment tool reads "
                          "that cache: export one file instead (-o model.onnx)")
    check_folder(out, FOLDER_FILES, force=force)
    notes: list[str] = []
    cfg, why = hf_config(model, tokenizer, kv_cache)
    if cfg is not None and prec.name != "fp32":
        cfg["dtype"] = "float16" if prec.name == "fp16" else "float32"
        cfg["onnx_precision"] = prec.to_dict()  # what the graph holds (model.onnx is not Hugging Face weights)
    if why:
        notes.append(why)
    if kv_cache and cfg is not None and cfg["model_type"] not in GENAI_TYPES:
        notes.append(f"genai_config.json: type 'llama' (ONNX Runtime GenAI's generic decoder path) for model type "
                     f"{cfg['model_type']!r}, which GenAI does not run with a key/value cache per layer")
    if tokenizer is None:
        notes.append("no tokenizer files: the source has no tokenizer.json (a run folder or a saved model with one "
                     "has); prompts must be token ids")
    written: list[str] = []
    report = FolderReport(out, written, notes)

    def write(tmp: Path) -> None:
        path = ox.export_onnx(model, tmp / MODEL_FILE, kv_cache=kv_cache, optimize=optimize, verify=False,
                              opset=opset, fuse=fuse, on_stage=on_stage)
        converted = {}
        if prec.name != "fp32":
            if on_stage:
                on_stage("convert")
            converted = onnx_quant.convert(path, prec)
        if verify and prec.name != "fp32":
            if on_stage:
                on_stage("verify")
            ids, text = (eval_ids, "the given text") if eval_ids else onnx_quant.held_out_ids(model, tokenizer)
            report.verification = onnx_quant.verify_precision(model, path, prec, ids, text, converted=converted)
        elif verify:
            if on_stage:
                on_stage("verify")
            report.verification = ox.verify_onnx(model, path, kv_cache=kv_cache)
        files: dict[str, str] = {"spec.yaml": spec_yaml(spec)}
        if cfg is not None:
            files["config.json"] = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
            if kv_cache:
                gen = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in cfg}
                files["generation_config.json"] = json.dumps(
                    {**gen, "transformers_version": cfg["transformers_version"]}, indent=2) + "\n"
                from .onnx_fuse import shares_buffer

                files["genai_config.json"] = json.dumps(
                    genai_config(model, sig, cfg, tokenizer, share_buffer=shares_buffer(path)), indent=4) + "\n"
        if tokenizer is not None:
            files.update(tokenizer_files(tokenizer, spec.sizes.max_positions))
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        written.extend(sorted(p.name for p in tmp.iterdir()))

    if on_stage:
        on_stage("export")
    write_folder(out, write, FOLDER_FILES, force=force)
    return report


__all__ = ["FOLDER_FILES", "FolderReport", "check_export_memory", "export_folder", "genai_config", "hf_config",
           "is_folder_target", "tokenizer_files"]
