"""The training loop: AdamW, warmup then cosine (or linear) decay, clipping, accumulation, bf16
autocast or fp16 autocast with dynamic loss scaling (``torch.amp.GradScaler``, on the CPU too),
activation checkpointing per block, optional ``torch.compile``, layer-wise learning-rate decay,
checkpoints that resume exactly.

A run folder::

    run/train.json        the configuration and the data source (what `resume` rebuilds from)
    run/tokenizer.json    the tokenizer (trained on the corpus, or the one given)
    run/metrics.jsonl     one JSON object per step (loss, lr, grad_norm, tokens, tokens_per_s) and eval
    run/loss.png          the loss curve (matplotlib, Agg backend)
    run/LATEST            the name of the last complete checkpoint
    run/checkpoints/step-000200/
        spec.yaml, model.safetensors     the model (loadable with `plmgraph.load`)
        optimizer.safetensors            AdamW moments and steps, the torch RNG state
        state.json                       step, data position, AdamW param groups

No pickle anywhere: tensors are safetensors, everything else JSON.  A checkpoint is written
into a temporary folder and renamed into place; only then does ``LATEST`` (replaced with
``os.replace``) name it, so a crash or Ctrl-C mid-write leaves the previous one intact.

Exactness: the data order is a seeded permutation per epoch and the data position (samples
consumed) is saved; collator randomness is a function of (seed, epoch, example index); the
learning rate is a function of the step; dropout draws from the torch RNG, whose state is
saved.  So on the CPU the loss curve after resuming equals the uninterrupted one.  The schedule
spans ``steps``: resuming with a larger ``steps`` stretches the rest of the decay.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, InputError

RUN_FILE = "train.json"
LATEST = "LATEST"
METRICS = "metrics.jsonl"
CKPTS = "checkpoints"
FORMAT = 1


@dataclass
class TrainConfig:
    """Everything a run needs besides the spec and the corpus; saved in ``train.json``."""

    steps: int = 200
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 1e-3
    min_lr: float = 0.1
    """Final learning rate as a fraction of `lr`."""
    warmup: int | None = None
    """Warmup steps; default min(100, steps // 10)."""
    schedule: str = "cosine"
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    accumulate: int = 1
    bf16: bool = False
    fp16: bool = False
    """fp16 autocast with dynamic loss scaling (``torch.amp.GradScaler``; fp32 master weights)."""
    checkpointing: bool = False
    """Activation checkpointing per block: recompute each layer's activations in backward."""
    compile: bool = False
    """Run the model through ``torch.compile`` (the first steps pay for compilation)."""
    memmap: bool = False
    """Stream the corpus: tokenize it once into memory-mapped token files in the run folder
    (``tokens-train.bin``, ``tokens-held.bin``) instead of holding text and tokens in memory."""
    layer_decay: float = 1.0
    """Layer-wise learning-rate decay: block i of L (embeddings 0, blocks 1..L, heads L+1) trains at
    ``lr * layer_decay ** (L + 1 - i)``; 1.0 is off."""
    seed: int = 0
    held_out: float = 0.05
    eval_every: int = 0
    """Evaluate on the held-out split every this many steps (0: at the end only)."""
    eval_batches: int = 20
    checkpoint_every: int = 100
    keep: int = 2
    """Checkpoints kept (the newest)."""
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        for name in ("steps", "batch_size", "seq_len", "accumulate", "checkpoint_every", "keep"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise InputError(f"schedule {self.schedule!r} is not one of: cosine, linear, constant")
        if self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if self.bf16 and self.fp16:
            raise InputError("choose one of bf16 and fp16 autocast, not both")
        if not 0.0 < self.layer_decay <= 1.0:
            raise InputError(f"layer_decay must be in (0, 1] (1 is off), got {self.layer_decay}")

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else min(100, self.steps // 10)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based)."""
        w = self.warmup_steps
        if step < w:
            return self.lr * (step + 1) / w
        if self.schedule == "constant":
            return self.lr
        t = min(1.0, (step - w) / max(1, self.steps - w))
        decay = 0.5 * (1 + math.cos(math.pi * t)) if self.schedule == "cosine" else 1 - t
        return self.lr * (self.min_lr + (1 - self.min_lr) * decay)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunResult:
    step: int
    interrupted: bool = False
    last: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, float] | None = None
    checkpoint: Path | None = None


def estimate_memory(spec: Any, cfg: TrainConfig) -> tuple[int, dict[str, int]]:
    """Bytes training `spec` needs: fp32 weights, gradients, two AdamW moments, and activations
    (about 34 * hidden + 5 * heads * seq bytes per token per layer, Korthikanti et al. 2022, in fp32 x2)."""
    from ..graph import resolve

    params = resolve(spec).num_params()
    s = spec.sizes
    layers = sum(st.layers for st in spec.stacks.values())
    tokens = cfg.batch_size * cfg.seq_len
    act = 2 * tokens * layers * (34 * s.hidden + 5 * s.heads * cfg.seq_len) + 3 * tokens * (s.vocab or 0) * 4
    parts = {"weights": 4 * params, "gradients": 4 * params, "optimizer": 8 * params, "activations": act}
    return sum(parts.values()), parts


def check_memory(spec: Any, cfg: TrainConfig) -> None:
    """Refuse, with the numbers, a run that will not fit in this machine's memory."""
    if cfg.device != "cpu":
        return
    try:
        total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    need, parts = estimate_memory(spec, cfg)
    if need > 0.9 * total_mem:
        shown = ", ".join(f"{k} {v / 2**30:.1f} GiB" for k, v in parts.items())
        raise InputError(f"training {spec.name} needs about {need / 2**30:.1f} GiB ({shown}) but this machine has "
                         f"{total_mem / 2**30:.1f} GiB; shrink it (-O layers=...,hidden=...) or --batch-size/--seq-len")


class Trainer:
    """One training run in a folder (see the module docstring)."""

    def __init__(self, run: Path, model: Any, tokenizer: Any, collator: Any, examples: list[Any],
                 held: list[Any], cfg: TrainConfig, meta: dict[str, Any], parallel: Any = None) -> None:
        from .distributed import Parallel

        self.run, self.model, self.tok, self.collator = run, model, tokenizer, collator
        self.examples, self.held, self.cfg, self.meta = examples, held, cfg, meta
        self.step = 0
        self.position = 0  # samples consumed
        self.parallel = parallel or Parallel()  # one process, or DDP / FSDP under torchrun (distributed.py)
        if cfg.checkpointing:
            model.gradient_checkpointing(True)
        self.engine = self.parallel.wrap(model, collator, cfg)  # what the loop calls: model, DDP(model), FSDP's
        if cfg.compile:
            self.engine = torch.compile(self.engine)
        self.opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, foreach=True)
        dev_type = next(model.parameters()).device.type
        self.scaler = torch.amp.GradScaler(dev_type, enabled=cfg.fp16)
        self._perm: tuple[int, list[int]] | None = None
        self.mems: tuple[torch.Tensor, ...] | None = None  # Transformer-XL's carried memory

    # ---------------------------------------------------------------- setup

    @classmethod
    def create(cls, spec: Any, run: str | os.PathLike, data: str, cfg: TrainConfig,
               tokenizer: str | os.PathLike | None = None, force: bool = False, parallel: Any = None) -> Trainer:
        """A new run of `spec` on corpus `data` in folder `run` (tokenizer trained unless given)."""
        from ..compile import build
        from .data import load_corpus
        from .objectives import collator_for, plan
        from .tokenizer import check_vocab, load_tokenizer, train_tokenizer

        out = Path(run)
        if out.exists() and not out.is_dir():
            raise CheckpointError(f"{out}: is a file; choose a folder for the run")
        if out.is_dir() and any(out.iterdir()) and not force:
            what = "a training run" if (out / RUN_FILE).is_file() else "files"
            raise CheckpointError(f"{out}: the folder already holds {what}; resume it with `plmgraph train {out}`, "
                                  "or choose a new -o folder")
        plan(spec)  # an objective the spec cannot train fails before any work
        check_memory(spec, cfg)
        if spec.embeddings.patches is not None:  # images (ViT): no corpus, no tokenizer
            from .objectives import image_data

            tok = None
            collator, examples, held = image_data(spec, data, cfg.held_out, cfg.seed)
        elif cfg.memmap:  # larger than memory: documents streamed, token ids memory-mapped
            from .data import held_out_doc, iter_texts

            def texts(held: bool) -> Any:
                return (t for i, t in enumerate(iter_texts(data)) if held_out_doc(i, cfg.held_out, cfg.seed) == held)

            tok = load_tokenizer(tokenizer) if tokenizer is not None else train_tokenizer(texts(False), spec)
            check_vocab(tok, spec)
            _check_positions(spec, cfg)
            collator = collator_for(spec, tok, cfg.seed)
            created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            try:
                examples = collator.stream_examples(texts(False), cfg.seq_len, out / "tokens-train.bin")
                held = collator.stream_examples(texts(True), cfg.seq_len, out / "tokens-held.bin", allow_empty=True)
            except BaseException:
                if created:
                    shutil.rmtree(out, ignore_errors=True)
                raise
        else:
            corpus = load_corpus(data)
            train_c, held_c = corpus.split(cfg.held_out, cfg.seed)
            if tokenizer is not None:
                tok = load_tokenizer(tokenizer)
            elif parallel is None or parallel.is_main:
                tok = train_tokenizer(train_c.texts, spec)
            else:
                tok = None  # trained on rank 0 alone, sent here by share_tokenizer
            if parallel is not None:  # rank 0's on every rank, once every rank checked `out`
                tok = parallel.share_tokenizer(tok)
            check_vocab(tok, spec)
            _check_positions(spec, cfg)
            collator = collator_for(spec, tok, cfg.seed)
            examples = collator.examples(train_c, cfg.seq_len)
            held = collator.examples(held_c, cfg.seq_len) if held_c.docs else []
        torch.manual_seed(cfg.seed)
        model = build(spec, device=cfg.device, seed=cfg.seed)
        model.train()
        if parallel is not None:
            parallel.check(collator)
            parallel.barrier()  # every rank has checked `out` before rank 0 writes into it
        main = parallel is None or parallel.is_main
        if main:
            out.mkdir(parents=True, exist_ok=True)
        src = data if data in ("pydoc", "pydoc-tags", "digits") else str(Path(data).resolve())
        meta = {"plmgraph_run": FORMAT, "spec": spec.name, "data": src, "config": asdict(cfg),
                "examples": len(examples), "held_out_examples": len(held)}
        if getattr(collator, "label_ids", None):  # classes by name: the same ids in resume and eval
            meta["label_ids"] = [[k, v] for k, v in collator.label_ids.items()]
        if tok is not None and main:
            tok.save(out / "tokenizer.json")
        if main:
            _write_json(out / RUN_FILE, meta)
            (out / METRICS).write_text("", encoding="utf-8")
        return cls(out, model, tok, collator, examples, held, cfg, meta, parallel)

    @classmethod
    def resume(cls, run: str | os.PathLike, steps: int | None = None, data: str | None = None,
               parallel: Any = None) -> Trainer:
        """Continue the run in folder `run` from its last checkpoint (optionally to a new total `steps`)."""
        from .data import load_corpus
        from .distributed import Parallel
        from .objectives import collator_for
        from .tokenizer import load_tokenizer

        d = Path(run)
        parallel = parallel or Parallel()
        meta = read_run(d)
        cfg = TrainConfig.from_json(meta["config"])
        if steps is not None:
            cfg.steps = steps
            meta["config"]["steps"] = steps
        ck = latest_checkpoint(d)
        model = parallel.load_model(ck, cfg.device)  # a sharded checkpoint's weights come in load_checkpoint
        if model.spec.embeddings.patches is not None:
            from .objectives import image_data

            tok = None
            collator, examples, held = image_data(model.spec, data or meta["data"], cfg.held_out, cfg.seed)
        elif cfg.memmap:  # the token files written when the run started
            tok = load_tokenizer(d / "tokenizer.json")
            collator = collator_for(model.spec, tok, cfg.seed)
            examples = collator.open_stream(d / "tokens-train.bin", cfg.seq_len)
            held = collator.open_stream(d / "tokens-held.bin", cfg.seq_len, allow_empty=True)
        else:
            tok = load_tokenizer(d / "tokenizer.json")
            corpus = load_corpus(data or meta["data"])
            train_c, held_c = corpus.split(cfg.held_out, cfg.seed)
            collator = collator_for(model.spec, tok, cfg.seed)
            collator.restore_labels(meta)
            examples = collator.examples(train_c, cfg.seq_len)
            held = collator.examples(held_c, cfg.seq_len) if held_c.docs else []
        if len(examples) != meta.get("examples", len(examples)):
            raise CheckpointError(f"{d}: the corpus {meta['data']} now yields {len(examples)} examples, the run was "
                                  f"started on {meta['examples']}; it changed, so the run cannot resume exactly")
        self = cls(d, model, tok, collator, examples, held, cfg, meta, parallel)
        parallel.load_checkpoint(self, ck)  # safetensors or DCP shards, from any number of processes
        if parallel.is_main:
            _write_json(d / RUN_FILE, meta)
            _truncate_metrics(d / METRICS, self.step)
        parallel.barrier()
        return self

    # ---------------------------------------------------------------- data

    def _index(self, pos: int) -> tuple[int, int]:
        n = len(self.examples)
        epoch, i = divmod(pos, n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(n, generator=g).tolist())
        return epoch, self._perm[1][i]

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next `batch_size` examples (crossing epochs), collated; advances the data position."""
        if getattr(self.collator, "recurrent", False):  # Transformer-XL: B parallel streams of segments
            B = self.cfg.batch_size
            per = len(self.examples) // B
            if per == 0:
                raise InputError(f"segment-recurrent training needs at least {B} segments (one per row); the corpus "
                                 f"has {len(self.examples)}: pass a smaller --batch-size or --seq-len")
            epoch, s = divmod(self.position // B, per)
            if s == 0:
                self.mems = None  # a new pass over the streams starts without memory
            idx = [b * per + s for b in range(B)]
            self.position += B
            return self.collator([self.examples[i] for i in idx], idx, epoch)
        by_epoch: dict[int, list[int]] = {}
        for k in self.parallel.local(self.cfg.batch_size):  # this rank's slice of the global micro-batch
            epoch, i = self._index(self.position + k)
            by_epoch.setdefault(epoch, []).append(i)
        self.position += self.cfg.batch_size
        parts = [self.collator([self.examples[i] for i in idx], idx, epoch) for epoch, idx in by_epoch.items()]
        return parts[0] if len(parts) == 1 else _concat(parts, self.collator.pad_id)

    # ---------------------------------------------------------------- loop

    def run_steps(self, on_step: Callable[[dict[str, Any]], None] | None = None,
                  until: int | None = None) -> RunResult:
        """Train to ``cfg.steps`` (or `until`); Ctrl-C writes a last checkpoint and returns ``interrupted``."""
        cfg, model = self.cfg, self.engine
        end = min(cfg.steps, until) if until is not None else cfg.steps
        dev = next(model.parameters()).device
        last: dict[str, Any] = {}
        ev = None
        model.train()
        try:
            while self.step < end:
                t0 = time.perf_counter()
                lr = cfg.lr_at(self.step)
                for g in self.opt.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
                total, tokens = 0.0, 0
                for a in range(cfg.accumulate):
                    batch = {k: v.to(dev) for k, v in self.next_batch().items()}
                    with self.parallel.sync(model, last=a == cfg.accumulate - 1):  # all-reduce on the last only
                        with torch.autocast(dev.type, dtype=torch.float16 if cfg.fp16 else torch.bfloat16,
                                            enabled=cfg.bf16 or cfg.fp16):
                            loss = self.forward_loss(model, batch)
                        self.scaler.scale(loss / cfg.accumulate).backward()
                    total += float(loss.detach()) / cfg.accumulate
                    tokens += _tokens(batch)
                self.scaler.unscale_(self.opt)  # fp16: true gradients for clipping (a no-op otherwise)
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0
                                                      else float("inf"))
                total, tokens, norm = self.parallel.reduce(total, tokens, norm)  # the whole step's, on every rank
                self.scaler.step(self.opt)  # fp16: skipped when a gradient is inf/nan, then the scale drops
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.step += 1
                dt = time.perf_counter() - t0
                last = {"step": self.step, "loss": total, "lr": lr, "grad_norm": float(norm), "tokens": tokens,
                        "tokens_per_s": tokens / dt if dt > 0 else 0.0, "epoch": self.position / len(self.examples)}
                self._log(last)
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.held:
                    ev = self.evaluate()
                    self._log({"step": self.step, "eval": ev})
                if on_step is not None:
                    on_step(last)
                if self.step % cfg.checkpoint_every == 0 and self.step < end:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            ck = self.save_checkpoint()
            self.plot()
            return RunResult(self.step, True, last, None, ck)
        if self.held and not (cfg.eval_every and self.step % cfg.eval_every == 0):
            ev = self.evaluate()
            self._log({"step": self.step, "eval": ev})
        ck = self.save_checkpoint()
        self.plot()
        return RunResult(self.step, False, last, ev, ck)

    def forward_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of one micro-batch; a segment-recurrent model reads and updates the carried memory."""
        if getattr(self.collator, "recurrent", False):
            if self.mems is not None:  # the memory is always visible: the mask covers [memory; segment]
                m = batch["attention_mask"]
                batch = {**batch, "attention_mask": torch.cat([m.new_ones(m.shape[0], self.mems[0].shape[1]), m], 1)}
            out = model(**batch, past_key_values=self.mems, use_cache=True)
            self.mems = out.past_key_values  # detached by the stack: no gradient into earlier segments
            return out.loss
        return model(**batch).loss

    def evaluate(self) -> dict[str, float]:
        from .evaluate import evaluate

        return evaluate(self.model, self.collator, self.held, self.cfg.batch_size, self.cfg.eval_batches)

    def _log(self, row: dict[str, Any]) -> None:
        if not self.parallel.is_main:
            return
        with open(self.run / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    # ---------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write checkpoint ``step-NNNNNN`` atomically, point LATEST at it, drop the oldest."""
        from safetensors.torch import save_file

        sharded = self.parallel.save_checkpoint(self)  # DCP shards from every rank (distributed runs)
        if sharded is not None:
            return sharded

        from ..compile.io import SPEC_FILE, WEIGHTS_FILE, spec_yaml

        root = self.run / CKPTS
        root.mkdir(parents=True, exist_ok=True)
        name = f"step-{self.step:06d}"
        final = root / name
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            weights = {n: p.detach().to("cpu").contiguous() for n, p in self.model.named_parameters()}
            (tmp / SPEC_FILE).write_text(spec_yaml(self.model.spec), encoding="utf-8")
            save_file(weights, str(tmp / WEIGHTS_FILE),
                      metadata={"format": "pt", "plmgraph_spec": self.model.spec.name})
            tensors, groups = self._optimizer_state()
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            _write_json(tmp / "state.json", {"step": self.step, "position": self.position, "param_groups": groups,
                                             "param_names": [n for n, p in self.model.named_parameters()
                                                             if p.requires_grad],
                                             "scaler": self.scaler.state_dict() if self.cfg.fp16 else None})
            tmp.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _write_text_atomic(self.run / LATEST, name + "\n")
        done = sorted(p for p in root.iterdir() if p.name.startswith("step-"))
        for old in done[:-self.cfg.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _optimizer_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        sd = self.opt.state_dict()
        tensors = {f"state.{i}.{k}": v.detach().to("cpu").contiguous() for i, st in sd["state"].items()
                   for k, v in st.items()}
        tensors["rng.torch"] = torch.get_rng_state()
        for i, m in enumerate(self.mems or ()):
            tensors[f"mems.{i}"] = m.detach().to("cpu").contiguous()
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
        return tensors, groups

    def _load_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        if state.get("param_names") != names:
            raise CheckpointError(f"{self.run}: the optimizer state was written for other parameters than the "
                                  "model's (a checkpoint from another spec?)")
        per: dict[int, dict[str, torch.Tensor]] = {}
        for key, t in tensors.items():
            if key.startswith("state."):
                _, i, k = key.split(".", 2)
                per.setdefault(int(i), {})[k] = t
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["param_groups"]]
        self.opt.load_state_dict({"state": per, "param_groups": groups})
        torch.set_rng_state(tensors["rng.torch"])
        mems = [tensors[f"mems.{i}"] for i in range(len(tensors)) if f"mems.{i}" in tensors]
        dev = next(self.model.parameters()).device
        self.mems = tuple(m.to(dev) for m in mems) if mems else None
        self.step, self.position = int(state["step"]), int(state["position"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    # ---------------------------------------------------------------- plot

    def plot(self) -> Path | None:
        """Write ``loss.png`` from metrics.jsonl (training loss per step, held-out loss as points)."""
        return plot_metrics(self.run) if self.parallel.is_main else None


def plot_metrics(run: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run / METRICS).read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    held = [(r["step"], r["eval"]["loss"]) for r in rows if "eval" in r]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*train, strict=True), label="train loss", linewidth=1)
    if held:
        ax.plot(*zip(*held, strict=True), "o-", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(run.name)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = run / "loss.png"
    tmp = run / ".loss.png.tmp"
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------ run folders

def read_run(run: Path) -> dict[str, Any]:
    """``train.json`` of a run folder; a clear error for a folder that is not a run."""
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder")
    f = run / RUN_FILE
    if not f.is_file():
        raise CheckpointError(f"{run}: not a plmgraph training run (no {RUN_FILE}); start one with "
                              f"`plmgraph train SPEC --data ... -o {run}`")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("plmgraph_run") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{f}: not a plmgraph run file (format {FORMAT})")
    return meta


def latest_checkpoint(run: Path) -> Path:
    """The checkpoint folder LATEST names (the last complete one)."""
    f = run / LATEST
    if not f.is_file():
        raise CheckpointError(f"{run}: the run has no checkpoint yet (no {LATEST}); start it again")
    ck = run / CKPTS / f.read_text(encoding="utf-8").strip()
    if not (ck / "state.json").is_file():
        raise CheckpointError(f"{ck}: the checkpoint LATEST names is missing or incomplete")
    return ck


def _load_model(ck: Path, device: str) -> Any:
    from ..compile.io import load

    model = load(ck, device=device)
    return model.train()


def load_run_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) of a run folder (its last checkpoint) or a saved model folder with a tokenizer.json."""
    from ..compile.io import load
    from .tokenizer import load_tokenizer

    d = Path(path)
    if (d / RUN_FILE).is_file():
        from .distributed import load_checkpoint_model

        read_run(d)
        model = load_checkpoint_model(latest_checkpoint(d), device=device)  # safetensors or DCP shards
    elif (d / "spec.yaml").is_file():
        model = load(d, device=device)
    else:
        raise CheckpointError(f"{d}: neither a training run (no {RUN_FILE}) nor a saved model (no spec.yaml)")
    tok_dir = d if (d / "tokenizer.json").is_file() else None
    if tok_dir is None and model.spec.embeddings.patches is not None:
        return model, None  # an image model reads pixels, not tokens
    if tok_dir is None:
        raise CheckpointError(f"{d}: no tokenizer.json beside the model")
    return model, load_tokenizer(tok_dir / "tokenizer.json")


def param_groups(model: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norms; with ``layer_decay`` < 1 one group per depth,
    ``lr_scale = layer_decay ** (L + 1 - depth)`` (embeddings depth 0, block i depth i + 1, the rest L + 1)."""
    blocks = {id(b): i + 1 for i, b in enumerate(dict.fromkeys(model.blocks()))} if cfg.layer_decay < 1 else {}
    top = len(blocks) + 1
    depth_of: dict[str, int] = {}
    if blocks:
        for mname, mod in model.named_modules():
            if id(mod) in blocks:
                for pname, _ in mod.named_parameters(prefix=mname):
                    depth_of.setdefault(pname, blocks[id(mod)])
    groups: dict[tuple[bool, int], list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = depth_of.get(name, 0 if name.startswith("embed") or ".embed." in name else top) if blocks else top
        groups.setdefault((p.dim() < 2 or "norm" in name, depth), []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
             "lr_scale": cfg.layer_decay ** (top - depth)} for (no_decay, depth), ps in sorted(groups.items(),
                                                                                             key=lambda kv: kv[0])]


def _check_positions(spec: Any, cfg: TrainConfig) -> None:
    m = spec.sizes.max_positions
    if m is not None and cfg.seq_len > m:
        raise InputError(f"--seq-len {cfg.seq_len} is longer than {spec.name}'s max_positions ({m})")


def _concat(parts: list[dict[str, torch.Tensor]], pad: int) -> dict[str, torch.Tensor]:
    from .loss import IGNORE

    out = {}
    for k in parts[0]:
        vals = [p[k] for p in parts]
        if vals[0].dim() >= 2 and k != "pixel_values":
            shape = [max(v.shape[d] for v in vals) for d in range(1, vals[0].dim())]
            fill = IGNORE if k == "labels" else (pad if k.endswith("input_ids") else 0)
            padded = []
            for v in vals:
                widths: list[int] = []
                for d in reversed(range(1, v.dim())):
                    widths += [0, shape[d - 1] - v.shape[d]]
                padded.append(torch.nn.functional.pad(v, widths, value=fill))
            vals = padded
        out[k] = torch.cat(vals)
    return out


def _tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens a micro-batch trains on (images: patches, counted as their rows)."""
    if "attention_mask" in batch:
        n = int(batch["attention_mask"].sum())
        return n + (int(batch["decoder_attention_mask"].sum()) if "decoder_attention_mask" in batch else 0)
    return int(batch["pixel_values"].shape[0])


def _write_json(path: Path, data: Any) -> None:
    _write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    _write_text_atomic(path, "".join(line + "\n" for line in keep))


__all__ = ["RunResult", "TrainConfig", "Trainer", "check_memory", "estimate_memory", "latest_checkpoint",
           "load_run_model", "param_groups", "plot_metrics", "read_run"]
