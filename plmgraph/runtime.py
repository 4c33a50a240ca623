"""Run and generate with an exported model on ONNX Runtime, without PyTorch's model code.

    from plmgraph.runtime import OrtModel
    m = OrtModel("deploy/")                             # an export folder (or a bare .onnx file)
    ids = m.generate("The", max_new_tokens=50, top_p=0.9, seed=0)
    print(m.tokenizer.decode(ids[0]))
    out = m.forward({"input_ids": np.array([[1, 2, 3]])})   # one call; missing inputs are filled in

Generation follows `plmgraph.train.generate` step for step (the same logits processors, in
Hugging Face's order, the same seeded sampler), so greedy decoding gives PyTorch's tokens and a
seeded sample the same tokens as PyTorch's seeded sample on the same logits.  Batches are
left-padded: ``attention_mask`` hides the padding and ``position_ids`` count kept tokens only.

The cache stays where the session runs: every step binds the previous step's ``present.*``
`OrtValue`\\ s as the next step's ``past_key_values.*`` (I/O binding); only the logits come back
to the host.  A graph that shares its cache buffer (`share_buffer`: the fused export, whose
GroupQueryAttention writes in place, see `plmgraph.exporters.onnx_fuse.shares_buffer`) gets one
buffer per layer of the prompt + new tokens, allocated once on the device and bound as both
``past_key_values.*`` and ``present.*`` at every step: nothing is copied or reallocated.
Execution providers are taken in the order TensorRT, CUDA, CPU, as far as this
ONNX Runtime offers them (`providers`), or the one `provider` names (CPU stays the fallback).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

MODEL_FILE = "model.onnx"
#: An encoder-decoder folder (Optimum's seq2seq layout, `exporters.onnx_seq2seq`).
ENCODER_FILE, DECODER_FILE = "encoder_model.onnx", "decoder_model_merged.onnx"
#: Best first; a session gets the first of these that the installed ONNX Runtime offers, then CPU.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SHORT = {"tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
         "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
_NP = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
       "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(bool)": np.bool_}


def providers(provider: str | None = None) -> list[str]:
    """The execution providers a session should ask for, best first.

    Raises:
        InputError: `provider` is not one this ONNX Runtime offers (the message lists those it does).
    """
    from .exporters.runtime import import_onnxruntime

    have = import_onnxruntime().get_available_providers()
    if provider is None:
        return [p for p in PROVIDER_ORDER if p in have] or list(have)
    name = SHORT.get(provider.lower(), provider)
    if name not in have:
        offered = ", ".join(k for k, v in SHORT.items() if v in have and k != "trt")
        raise InputError(f"--provider {provider!r} is not available in this ONNX Runtime; available: {offered} "
                         f"({', '.join(have)})")
    return [name] + (["CPUExecutionProvider"] if name != "CPUExecutionProvider" else [])


def _device(provider: str) -> str:
    return "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as e:
        raise InputError(f"{path}: not readable JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


class OrtModel:
    """An ONNX Runtime session of an exported model, with what generation needs to know about it.

    Args:
        path: an export folder (``model.onnx`` + ``genai_config.json`` / ``config.json`` / tokenizer
            files, from ``plmgraph export -o FOLDER``) or a bare ``.onnx`` file.
        provider: ``cpu``, ``cuda``, ``tensorrt`` (or a full provider name); default the best offered.
        threads: intra-op threads (0: ONNX Runtime's default).
        spinning: let ORT's worker threads spin between runs (off when timing against something else).

    Raises:
        InputError: no such file, not an ONNX model (corrupt, truncated, empty), a folder whose files
            describe another model than its graph, or a provider that is not available.
    """

    def __init__(self, path: str | os.PathLike, provider: str | None = None, threads: int = 0,
                 spinning: bool = True) -> None:
        from .exporters.runtime import import_onnxruntime

        ort = import_onnxruntime()
        p = Path(path)
        if p.is_dir():
            self.folder: Path | None = p
            self.file = p / MODEL_FILE
            if not self.file.is_file() and (p / DECODER_FILE).is_file() and (p / ENCODER_FILE).is_file():
                self.file = p / DECODER_FILE  # an encoder-decoder: the merged decoder is the main session
            if not self.file.is_file():
                onnx_files = sorted(f.name for f in p.glob("*.onnx"))
                hint = f" (it holds {', '.join(onnx_files)}; pass the file itself)" if onnx_files else \
                    " (write one with `plmgraph export SPEC -o FOLDER --kv-cache`)"
                raise InputError(f"{p}: no {MODEL_FILE} in the folder{hint}")
        elif p.is_file():
            self.folder, self.file = None, p
        else:
            raise InputError(f"{p}: no such file or folder")
        self.providers = providers(provider)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = _session(ort, self.file, so, self.providers)
        self.encoder = _session(ort, self.file.with_name(ENCODER_FILE), so, self.providers) \
            if self.file.name == DECODER_FILE else None
        self.device = _device(self.session.get_providers()[0])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.past = [n for n in self.inputs if n.startswith("past_key_values.")]
        self.present = [n for n in self.outputs if n.startswith("present.")]
        meta = self.session.get_modelmeta().custom_metadata_map
        # the graph runs on one in-place cache buffer per layer (plmgraph's fused export marks it)
        self.share_buffer = bool(self.past) and meta.get("plmgraph.past_present_share_buffer") == "true"
        self.genai = _read_json(p / "genai_config.json") if self.folder else None
        self.config = _read_json(p / "config.json") if self.folder else None
        self.tokenizer = self._tokenizer()
        self._check_folder()
        if self.encoder is not None:
            want = ["input_ids", "encoder_attention_mask", "encoder_hidden_states", "use_cache_branch"]
            missing = [n for n in want if n not in self.inputs]
            enc = [i.name for i in self.encoder.get_inputs()]
            if missing or enc != ["input_ids", "attention_mask"] or not self.past:
                raise InputError(f"{self.folder}: {DECODER_FILE} / {ENCODER_FILE} are not Optimum's merged seq2seq "
                                 f"layout (decoder inputs {', '.join(self.inputs)}; encoder inputs {', '.join(enc)}); "
                                 "export the folder again with plmgraph export")

    # ------------------------------------------------------------ what the graph is

    @property
    def vocab(self) -> int | None:
        """The logits' last dimension when the graph fixes it."""
        if "logits" not in self.outputs:
            return None
        dim = self.session.get_outputs()[self.outputs.index("logits")].shape[-1]
        return dim if isinstance(dim, int) else None

    @property
    def layers(self) -> int:
        return len({n.split(".")[1] for n in self.past})  # past_key_values.{i}[.decoder|.encoder][.key|.value]

    def _cache_dims(self) -> tuple[int | None, int | None]:
        if not self.past:
            return None, None
        shape = self.inputs[self.past[0]].shape
        if len(shape) != 4:
            return None, None
        return tuple(d if isinstance(d, int) else None for d in (shape[1], shape[3]))  # type: ignore[return-value]

    @property
    def eos(self) -> list[int]:
        """Stop tokens: genai_config's eos_token_id (one or a list), else config.json's, else the tokenizer's."""
        for cfg in ((self.genai or {}).get("model"), self.config):
            e = (cfg or {}).get("eos_token_id")
            if e is not None:
                return [int(x) for x in (e if isinstance(e, list) else [e])]
        if self.tokenizer is not None and "eos" in self.tokenizer.roles:
            return [self.tokenizer.roles["eos"]]
        return []

    @property
    def pad(self) -> int:
        for cfg in ((self.genai or {}).get("model"), self.config):
            v = (cfg or {}).get("pad_token_id")
            if isinstance(v, int):
                return v
        if self.tokenizer is not None and "pad" in self.tokenizer.roles:
            return self.tokenizer.roles["pad"]
        return 0

    @property
    def context_length(self) -> int | None:
        v = ((self.genai or {}).get("model") or {}).get("context_length")
        return int(v) if isinstance(v, int) else None

    def _tokenizer(self) -> Any:
        if self.folder is None or not (self.folder / "tokenizer.json").is_file():
            return None
        from .train.tokenizer import load_tokenizer

        return load_tokenizer(self.folder / "tokenizer.json")

    def _check_folder(self) -> None:
        """The folder's config files and tokenizer must describe the graph beside them."""
        if self.folder is None:
            return
        kv_heads, head_dim = self._cache_dims()
        facts: list[tuple[str, Any, Any]] = []
        dec = ((self.genai or {}).get("model") or {}).get("decoder") or {}
        if self.genai is not None:
            facts += [("genai_config.json model.vocab_size", (self.genai.get("model") or {}).get("vocab_size"),
                       self.vocab),
                      ("genai_config.json num_hidden_layers", dec.get("num_hidden_layers"),
                       self.layers if self.past else None),
                      ("genai_config.json num_key_value_heads", dec.get("num_key_value_heads"), kv_heads),
                      ("genai_config.json head_size", dec.get("head_size"), head_dim)]
            fname = dec.get("filename")
            if fname is not None and fname != self.file.name:
                raise InputError(f"{self.folder}: genai_config.json names {fname!r}, the graph is {self.file.name}")
        if self.config is not None:
            cfg = self.config
            keys = ("num_hidden_layers", "n_layer", "num_layers")
            if self.encoder is not None:  # the decoder's layers (T5's num_layers is the encoder's)
                keys = ("num_decoder_layers", "decoder_layers")
            layers = next((cfg[k] for k in keys if k in cfg), None)
            facts += [("config.json vocab_size", cfg.get("vocab_size"), self.vocab),
                      ("config.json layers", layers, self.layers if self.past else None)]
        for what, said, graph in facts:
            if said is not None and graph is not None and said != graph:
                raise InputError(f"{self.folder}: {what} is {said} but {self.file.name} has {graph}: the folder's "
                                 "files come from another model; export the folder again")
        if self.tokenizer is not None and self.vocab is not None and self.tokenizer.vocab_size > self.vocab:
            raise InputError(f"{self.folder}: tokenizer.json has {self.tokenizer.vocab_size} ids but the model's "
                             f"vocabulary is {self.vocab}: the tokenizer belongs to another model")

    # ------------------------------------------------------------ one call

    def check_feed(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """`feed` as arrays of the graph's dtypes; a clear error for unknown, missing or misshapen inputs."""
        unknown = [k for k in feed if k not in self.inputs]
        if unknown:
            raise InputError(f"{self.file.name} has no input {', '.join(map(repr, unknown))}; its inputs are "
                             f"{', '.join(self.inputs)}")
        missing = [k for k in self.inputs if k not in feed]
        if missing:
            raise InputError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             f"(the graph takes {', '.join(self.inputs)})")
        arrays: dict[str, np.ndarray] = {}
        sizes: dict[str, tuple[int, str]] = {}
        for name, value in feed.items():
            meta = self.inputs[name]
            a = np.asarray(value)
            want = meta.shape
            if a.ndim != len(want):
                raise InputError(f"input {name} must have {len(want)} dimensions {_shape(want)}, got shape "
                                 f"{list(a.shape)}")
            for d, (got, w) in enumerate(zip(a.shape, want, strict=True)):
                if isinstance(w, int) and got != w:
                    raise InputError(f"input {name} must have shape {_shape(want)}, got {list(a.shape)} "
                                     f"(dimension {d} is {got}, not {w})")
                if isinstance(w, str) and w:
                    seen = sizes.setdefault(w, (got, name))
                    if seen[0] != got:
                        raise InputError(f"input {name} has {w} = {got} (dimension {d}) but {seen[1]} has "
                                         f"{w} = {seen[0]}")
            dtype = _NP.get(meta.type)
            if dtype is not None:
                if np.issubdtype(dtype, np.integer) and not np.issubdtype(a.dtype, np.integer) and a.size:
                    raise InputError(f"input {name} must hold integers ({meta.type}), got {a.dtype}")
                a = np.ascontiguousarray(a, dtype=dtype)
            arrays[name] = a
        return arrays

    def complete(self, input_ids: Any, attention_mask: Any = None) -> dict[str, np.ndarray]:
        """Every input the graph takes, for `input_ids` [batch, seq] and no past: a mask of ones (or
        `attention_mask`), positions from the mask, zero token types, empty caches, a start token."""
        ids = np.asarray(input_ids, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        b, t = ids.shape
        mask = np.ones((b, t), np.int64) if attention_mask is None else np.asarray(attention_mask, np.int64)
        feed: dict[str, np.ndarray] = {}
        if self.encoder is not None:  # the encoder on the ids, then the decoder's first step on the start token
            memory = self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            feed = {"input_ids": np.full((b, 1), self.pad, np.int64), "encoder_attention_mask": mask,
                    "encoder_hidden_states": memory, "use_cache_branch": np.array([False])}
            kv_heads, head_dim = self._cache_dims()
            feed.update({n: np.zeros((b, kv_heads or 0, 0, head_dim or 0), np.float32) for n in self.past})
            return feed
        for name, meta in self.inputs.items():
            if name == "input_ids":
                feed[name] = ids
            elif name == "attention_mask":
                feed[name] = mask
            elif name == "position_ids" and len(meta.shape) == 2:
                feed[name] = np.clip(mask.cumsum(1) - 1, 0, None)[:, -t:]
            elif name == "token_type_ids":
                feed[name] = np.zeros((b, t), np.int64)
            elif name == "decoder_input_ids":
                feed[name] = np.full((b, 1), self.pad, np.int64)
            elif name.startswith("past_key_values."):
                shape = [b if i == 0 else (d if isinstance(d, int) else 0) for i, d in enumerate(meta.shape)]
                feed[name] = np.zeros(shape, _NP.get(meta.type, np.float32))
            else:
                raise InputError(f"{self.file.name} takes {name} {_shape(meta.shape)}, which plmgraph cannot make "
                                 "up; call forward() with it")
        return feed

    def forward(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One session run: outputs by name (inputs checked first, see `check_feed`)."""
        arrays = self.check_feed(feed)
        try:
            got = self.session.run(None, arrays)
        except Exception as e:  # noqa: BLE001  (shape mismatches inside the graph surface here)
            raise InputError(f"ONNX Runtime refused the inputs: {str(e).strip().splitlines()[0][:300]}") from None
        return dict(zip(self.outputs, got, strict=True))

    # ------------------------------------------------------------ generation

    def generate(self, prompt: Any, max_new_tokens: int = 50, *, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, repetition_penalty: float = 1.0, do_sample: bool | None = None,
                 stop: Sequence[int | str] = (), seed: int | None = None, attention_mask: Any = None,
                 pad_token_id: int | None = None, eos_token_id: int | Sequence[int] | None = None,
                 ignore_eos: bool = False) -> np.ndarray:
        """Continue each prompt; [B, T + new] ids (left padding kept), as `plmgraph.train.generate.generate`.

        Args:
            prompt: a text, texts (needs the folder's tokenizer), token-id lists, or a [B, T] array
                (then `attention_mask` may mark left padding).
            stop: extra stop tokens (ids, or strings the tokenizer maps to one id).
            eos_token_id: stop tokens instead of the folder's eos; `ignore_eos` stops only at `stop`.

        Raises:
            InputError: bad arguments, a graph without ``logits``, or a prompt that fills the context.

        An encoder-decoder returns the decoder's ids, start token first (the pad id), as PyTorch's
        `generate`.  From a seq2seq folder (``encoder_model.onnx`` + ``decoder_model_merged.onnx``) the
        encoder runs once and every decoder step feeds one new token with both caches bound in place
        (`_seq2seq_cached`); a single encoder-decoder file (``input_ids``, ``attention_mask``,
        ``decoder_input_ids`` -> ``logits``) reruns the whole graph each step.
        """
        import torch

        from .train.generate import _encode

        if max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 0 or repetition_penalty <= 0:
            raise InputError("temperature must be >= 0, top_p in (0, 1], top_k >= 0 and repetition_penalty > 0")
        if "logits" not in self.outputs or "input_ids" not in self.inputs:
            raise InputError(f"{self.file.name} has no input_ids -> logits path to generate with (outputs: "
                             f"{', '.join(self.outputs)})")
        pad = self.pad if pad_token_id is None else pad_token_id
        if isinstance(prompt, np.ndarray):
            prompt = torch.from_numpy(prompt.astype(np.int64))
        ids, mask = _encode(self.tokenizer, prompt, pad)
        if attention_mask is not None:
            mask = torch.as_tensor(np.asarray(attention_mask)).long()
        stops: set[int] = set()
        if not ignore_eos:
            eos = self.eos if eos_token_id is None else ([eos_token_id] if isinstance(eos_token_id, int)
                                                         else list(eos_token_id))
            stops.update(int(e) for e in eos)
        for s in stop:
            if isinstance(s, str):
                got = self.tokenizer.encode(s) if self.tokenizer is not None else []
                if len(got) != 1:
                    raise InputError(f"stop string {s!r} is not one token ({len(got)} tokens)")
                s = got[0]
            stops.add(int(s))
        sample = do_sample if do_sample is not None else (temperature > 0 and (temperature != 1.0 or top_k > 0
                                                                              or top_p < 1.0))
        if temperature == 0:
            sample = False
        gen = torch.Generator()
        if seed is not None:
            gen.manual_seed(seed)
        else:  # its own nondeterministic seed: torch.seed() would reseed the global RNG (and every device)
            gen.seed()
        kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
        n = max_new_tokens
        limit = self.context_length
        if limit is not None and ids.shape[1] + n > limit:
            n = max(0, limit - ids.shape[1])
            if n == 0:
                raise InputError(f"the prompt ({ids.shape[1]} tokens) fills the model's {limit} positions")
        if self.vocab is not None and ids.numel() and int(ids.max()) >= self.vocab:
            raise InputError(f"token id {int(ids.max())} is outside the vocabulary (0..{self.vocab - 1})")
        stop_t = torch.tensor(sorted(stops), dtype=torch.long)
        if self.encoder is not None:
            return self._seq2seq_cached(ids, mask, n, pad, stop_t, sample, gen, kw)
        if "decoder_input_ids" in self.inputs:
            return self._seq2seq(ids, mask, n, pad, stop_t, sample, gen, kw)
        return self._decode(ids.numpy(), mask.numpy(), n, pad, stops, sample, gen, kw)

    def _decode(self, ids: np.ndarray, mask: np.ndarray, n: int, pad: int, stops: set[int], sample: bool, gen: Any,
                kw: dict[str, Any]) -> np.ndarray:
        """The decoder-only loop: ids and mask grow in place in [B, T + n] arrays, positions count
        each row's kept tokens, greedy picks are numpy's argmax (torch's `_pick` when sampling or
        penalising repeats: the same processors and seeded sampler as PyTorch's loop)."""
        import torch

        from .train.generate import _pick

        B, T = ids.shape
        all_ids, all_mask = np.zeros((B, T + n), np.int64), np.zeros((B, T + n), np.int64)
        all_ids[:, :T], all_mask[:, :T] = ids, mask
        kept = all_mask[:, :T].sum(1)
        greedy = not sample and kw["repetition_penalty"] == 1.0
        stop_ids = np.array(sorted(stops), np.int64)
        done = np.zeros(B, dtype=bool)
        step = _Stepper(self, B, T + n)
        width, positions = T, None
        for _ in range(n):
            t = T if width == T else 1
            logits = step(all_ids[:, width - t:width], all_mask[:, :width], all_ids[:, :width],
                          positions if step.cached else None)
            if greedy:
                nxt = logits.argmax(-1)
            else:
                nxt = _pick(torch.from_numpy(logits), torch.from_numpy(all_ids[:, :width]), sample, gen, kw).numpy()
            nxt = np.where(done, pad, nxt)
            all_ids[:, width], all_mask[:, width] = nxt, ~done
            kept += ~done
            positions = np.maximum(kept - 1, 0)[:, None]
            width += 1
            if stops:
                done |= np.isin(nxt, stop_ids)
            if done.all():
                break
        return all_ids[:, :width]

    def _seq2seq(self, ids: Any, mask: Any, n: int, pad: int, stop_t: Any, sample: bool, gen: Any,
                 kw: dict[str, Any]) -> np.ndarray:
        """Encoder-decoder graph (one file, no cache): the whole decoder prefix each step, behind the
        start token (pad), as `plmgraph.train.generate`'s seq2seq loop; the encoder reruns too."""
        import torch

        from .train.generate import _pick

        B = ids.shape[0]
        dec = torch.full((B, 1), pad, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        base = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        if "token_type_ids" in self.inputs:
            base["token_type_ids"] = np.zeros_like(base["input_ids"])
        for _ in range(n):
            logits = self.forward({**base, "decoder_input_ids": dec.numpy()})["logits"][:, -1]
            nxt = _pick(torch.from_numpy(logits), dec, sample, gen, kw)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            dec = torch.cat([dec, nxt[:, None]], 1)
            if stop_t.numel():
                done |= torch.isin(nxt, stop_t)
            if done.all():
                break
        return dec.numpy()


    def _seq2seq_cached(self, ids: Any, mask: Any, n: int, pad: int, stop_t: Any, sample: bool, gen: Any,
                        kw: dict[str, Any]) -> np.ndarray:
        """The seq2seq folder's loop: the encoder once, then one token per merged-decoder step.  The
        encoder output, its mask and both caches stay where the session runs (I/O binding): each step
        binds the last step's ``present.{i}.decoder.*`` as ``past_key_values.{i}.decoder.*`` and the
        first step's ``present.{i}.encoder.*`` (the cross-attention keys / values) as
        ``past_key_values.{i}.encoder.*``; only the logits come back to the host."""
        import torch

        from .exporters.runtime import import_onnxruntime
        from .train.generate import _pick

        ort = import_onnxruntime()
        dev = self.device

        def value(a: np.ndarray, dtype: Any = np.int64) -> Any:
            return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a, dtype=dtype), dev, 0)

        def run(session: Any, binding: Any) -> None:
            try:
                session.run_with_iobinding(binding)
            except Exception as e:  # noqa: BLE001
                raise InputError(f"ONNX Runtime refused the inputs: {str(e).strip().splitlines()[0][:300]}") \
                    from None

        B = ids.shape[0]
        eb = self.encoder.io_binding()
        eb.bind_ortvalue_input("input_ids", value(ids.numpy()))
        eb.bind_ortvalue_input("attention_mask", value(mask.numpy()))
        eb.bind_output("last_hidden_state", dev, 0)
        run(self.encoder, eb)
        memory = eb.get_outputs()[0]
        enc_mask = value(mask.numpy(), _NP.get(self.inputs["encoder_attention_mask"].type, np.int64))
        kv_heads, head_dim = self._cache_dims()
        empty = np.zeros((B, kv_heads or 0, 0, head_dim or 0), _NP.get(self.inputs[self.past[0]].type, np.float32))
        past = {name: value(empty, empty.dtype) for name in self.past}
        branch = {False: value(np.array([False]), np.bool_), True: value(np.array([True]), np.bool_)}
        dec = torch.full((B, 1), pad, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        step = dec
        for i in range(n):
            binding = self.session.io_binding()
            binding.bind_ortvalue_input("input_ids", value(step.numpy()))
            binding.bind_ortvalue_input("encoder_attention_mask", enc_mask)
            binding.bind_ortvalue_input("encoder_hidden_states", memory)
            for name in self.past:
                binding.bind_ortvalue_input(name, past[name])
            binding.bind_ortvalue_input("use_cache_branch", branch[i > 0])
            for name in self.outputs:
                binding.bind_output(name, "cpu" if name == "logits" else dev, 0)
            run(self.session, binding)
            outs = dict(zip(self.outputs, binding.get_outputs(), strict=True))
            for name in self.past:  # the cross-attention cache: the first step's, kept
                if i == 0 or ".encoder." not in name:
                    past[name] = outs["present" + name[len("past_key_values"):]]
            nxt = _pick(torch.from_numpy(outs["logits"].numpy()[:, -1]), dec, sample, gen, kw)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            dec = torch.cat([dec, nxt[:, None]], 1)
            if stop_t.numel():
                done |= torch.isin(nxt, stop_t)
            step = nxt[:, None]
            if done.all():
                break
        return dec.numpy()


class _Stepper:
    """One generation step on the session, on one I/O binding kept from step to step.

    Inputs are bound from host arrays; the cache stays on the session's device: one in-place
    buffer per layer (`OrtModel.share_buffer`), else the last step's ``present.*`` bound as the
    next step's ``past_key_values.*``.  On CPU the logits are written straight into a host array
    bound by address (one per step length), so nothing is copied out but the last row."""

    def __init__(self, model: OrtModel, batch: int, capacity: int = 0) -> None:
        from .exporters.runtime import import_onnxruntime

        self.m, self.ort = model, import_onnxruntime()
        self.cached = bool(model.past)
        self.presents: list[Any] | None = None
        self.batch = batch
        self.buffers: list[Any] | None = None
        self.binding = model.session.io_binding()
        self._bound_t: int | None = None  # the step length the outputs are bound for
        self._logits: np.ndarray | None = None  # the host array the logits are bound into, [B, t, V]
        meta = model.session.get_outputs()[model.outputs.index("logits")] if "logits" in model.outputs else None
        self._logits_dtype = _NP.get(meta.type, np.float32) if meta is not None else None
        if self.cached and model.share_buffer and capacity:  # one [B, kv, capacity, d] buffer per cache input
            self.buffers = []
            for name in model.past:
                meta = model.inputs[name]
                shape = [batch, meta.shape[1], capacity, meta.shape[3]]
                self.buffers.append(self.ort.OrtValue.ortvalue_from_numpy(
                    np.zeros(shape, _NP.get(meta.type, np.float32)), model.device, 0))
            for name, buf in zip(model.past, self.buffers, strict=True):
                self.binding.bind_ortvalue_input(name, buf)

    def _bind_outputs(self, t: int) -> None:
        """Bind every output for a step of `t` tokens (in the session's order: get_outputs()
        returns them in binding order); kept while the step length stays the same, since ONNX
        Runtime reuses a bound output of the same shape."""
        m, b = self.m, self.binding
        b.clear_binding_outputs()
        shared = {} if self.buffers is None else {
            "present." + name[len("past_key_values."):]: buf for name, buf in zip(m.past, self.buffers, strict=True)}
        for name in m.outputs:
            if name in shared:
                b.bind_ortvalue_output(name, shared[name])
            elif name == "logits" and m.device == "cpu" and m.vocab is not None and self._logits_dtype is not None:
                if self._logits is None or self._logits.shape[1] != t:  # (one array: an uncached graph's t grows)
                    self._logits = np.empty((self.batch, t, m.vocab), self._logits_dtype)
                out = self._logits
                b.bind_output(name, "cpu", 0, self._logits_dtype, list(out.shape), out.ctypes.data)
            else:
                b.bind_output(name, "cpu" if name == "logits" else m.device, 0)
        # a concatenated cache grows every step: its presents are bound anew each time
        self._bound_t = t if self.buffers is not None or not self.cached else None

    def __call__(self, step_ids: np.ndarray, mask: np.ndarray, all_ids: np.ndarray,
                 positions: np.ndarray | None = None) -> np.ndarray:
        """Logits [B, V] of the last position; `positions` ([B, t]) default to the mask's count of kept tokens."""
        m, b = self.m, self.binding
        ids = step_ids if self.cached else all_ids
        t = ids.shape[1]
        feed = {"input_ids": ids, "attention_mask": mask}
        if "position_ids" in m.inputs:
            feed["position_ids"] = positions if positions is not None else np.clip(mask.cumsum(1) - 1, 0, None)[:, -t:]
        if "token_type_ids" in m.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        other = [n for n in m.inputs if n not in feed and not n.startswith("past_key_values.")]
        if other:
            raise InputError(f"{m.file.name} takes {', '.join(other)}; generation feeds only input_ids, "
                             "attention_mask, position_ids, token_type_ids and the cache")
        self._alive = [np.ascontiguousarray(a, dtype=_NP.get(m.inputs[name].type, np.int64))
                       for name, a in feed.items()]
        for name, a in zip(feed, self._alive, strict=True):  # (kept alive until the next step: bound by address)
            if m.device == "cpu":
                b.bind_cpu_input(name, a)
            else:
                b.bind_ortvalue_input(name, self.ort.OrtValue.ortvalue_from_numpy(a, m.device, 0))
        if self.cached and self.buffers is None:
            if self.presents is None:  # prefill: empty caches of past length 0
                for name in m.past:
                    meta = m.inputs[name]
                    shape = [self.batch if i == 0 else (d if isinstance(d, int) else 0)
                             for i, d in enumerate(meta.shape)]
                    empty = np.zeros(shape, _NP.get(meta.type, np.float32))
                    b.bind_ortvalue_input(name, self.ort.OrtValue.ortvalue_from_numpy(empty, m.device, 0))
            else:
                for name, value in zip(m.past, self.presents, strict=True):
                    b.bind_ortvalue_input(name, value)
        if self._bound_t != t:
            self._bind_outputs(t)
        try:
            m.session.run_with_iobinding(b)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"ONNX Runtime refused the inputs: {str(e).strip().splitlines()[0][:300]}") from None
        if self.cached and self.buffers is None:
            outs = b.get_outputs()
            self.presents = [outs[m.outputs.index(n)] for n in m.present]
        logits = self._logits
        if logits is None or logits.shape[1] != t:  # not bound by address (a device, or no fixed vocabulary)
            logits = b.get_outputs()[m.outputs.index("logits")].numpy()
        return logits[:, -1].copy()


def _session(ort: Any, file: Path, so: Any, providers: list[str]) -> Any:
    try:
        return ort.InferenceSession(str(file), so, providers=providers)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own types for a corrupt or foreign file)
        first = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
        raise InputError(f"{file}: ONNX Runtime cannot load it: not a complete ONNX model "
                         f"(corrupt, truncated, or its .data file missing): {first}") from None


def _shape(dims: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) if d not in (None, "") else "?" for d in dims) + "]"


__all__ = ["MODEL_FILE", "PROVIDER_ORDER", "OrtModel", "providers"]
