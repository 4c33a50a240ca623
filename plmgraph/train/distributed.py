"""Scale-out on PyTorch's own engine: DDP and FSDP2 under ``torchrun``, sharded checkpoints with
``torch.distributed.checkpoint`` (DCP).

    torchrun --nproc-per-node 2 -m plmgraph train gpt2 -O ... --data corpus.txt -o runs/x --strategy fsdp

A `Parallel` is what the trainer asks whenever one process is not the whole run:

* ``wrap``: the module the loop calls: the model itself (one process), ``DistributedDataParallel``
  (``ddp``), or the model after ``fully_shard`` on every block and then on the root (``fsdp``:
  FSDP2, parameters are ``DTensor`` shards; an optional ``MixedPrecisionPolicy`` and
  ``CPUOffloadPolicy``).  A block used by several layers (ALBERT's sharing) is sharded with the root.
* ``local``: which examples of the global micro-batch this rank computes: rank r of W takes the
  r-th contiguous slice of ``batch_size / W`` examples, so the global batch, its order and its
  masking are the single-process ones (``--batch-size`` is the global micro-batch).
* ``reduce``: the logged loss is the mean of the ranks' losses (what DDP's gradient averaging
  optimises), tokens are summed, the gradient norm is the global one.
* checkpoints: a distributed run writes ``step-N/shards/``: every rank writes its own shards of
  the weights, of the AdamW moments and its RNG state through DCP's Hugging Face storage writer:
  safetensors files whose header records where each shard sits in the full tensor
  (``DCP_SHARDING_INFO``); DCP's reader rebuilds its plan from those headers, so no pickle is written
  or read (DCP's default ``FileSystemWriter`` pickles its ``.metadata``; this one is not used).
  ``spec.yaml`` and ``state.json`` (step, data position, AdamW param groups) sit beside it, as in a
  one-process checkpoint.  Either kind of checkpoint resumes on any number of processes: DCP
  reshards on load (2 processes -> 1, 1 -> 2), and a ``model.safetensors`` checkpoint is loaded whole
  on every rank before sharding.

Exactness: with dropout off, the loss trajectory equals the one-process run on the same global
batch up to float reduction order, when every rank's slice has the same number of loss tokens
(CLM on packed sequences: always); with a loss whose token count varies per rank (MLM) the
distributed loss is the mean of per-rank means, as in every DDP trainer.

Only rank 0 writes files (``train.json``, ``metrics.jsonl``, ``loss.png``, the run folder) and
prints; the tokenizer trained on rank 0 is sent to the others, so every rank encodes alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, InputError, UsageError

STRATEGIES = ("none", "ddp", "fsdp")
MIXED = ("bf16", "fp16")
SHARDS = "shards"
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher that sets its variables)."""
    return all(v in os.environ for v in TORCHRUN_VARS)


def is_sharded(ck: Path) -> bool:
    """Whether checkpoint folder `ck` holds DCP shards (a distributed run's) rather than model.safetensors."""
    return (ck / SHARDS).is_dir()


@dataclass
class Parallel:
    """One process: the model is its own engine; checkpoints are the trainer's safetensors files."""

    strategy: str = "none"
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return False

    def check(self, collator: Any) -> None:
        """Refuse, before anything is written, what this strategy cannot train."""

    def wrap(self, model: torch.nn.Module, collator: Any = None, cfg: Any = None) -> torch.nn.Module:
        self.check(collator)
        return model

    def local(self, n: int) -> range:
        """Indices (0..n-1) of the global micro-batch that this rank computes."""
        return range(n)

    def sync(self, engine: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Context of one micro-batch's backward: gradients are synchronised only on the `last` one."""
        return contextlib.nullcontext()

    def reduce(self, loss: float, tokens: int, norm: Any) -> tuple[float, int, float]:
        """(loss, tokens, gradient norm) of the whole step, from this rank's."""
        return loss, tokens, _item(norm)

    def share_tokenizer(self, tok: Any) -> Any:
        return tok

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, trainer: Any) -> Path | None:
        """Write a checkpoint; None: the trainer writes its own (one process)."""
        return None

    def load_model(self, ck: Path, device: str) -> torch.nn.Module:
        """The model of checkpoint `ck`, in train mode; a sharded one's weights arrive in `load_checkpoint`."""
        from ..compile import build
        from ..compile.io import SPEC_FILE, load
        from ..spec import load_spec

        if is_sharded(ck):
            return build(load_spec(ck / SPEC_FILE), device=device).train()
        return load(ck, device=device).train()

    def load_checkpoint(self, trainer: Any, ck: Path) -> None:
        """Put weights (sharded checkpoints), optimizer state, step, data position and RNG into `trainer`."""
        if is_sharded(ck):
            _load_sharded(trainer, ck, self.rank)
            return
        from ..compile.io import read_tensors

        state = json.loads((ck / "state.json").read_text(encoding="utf-8"))
        trainer._load_state(state, read_tensors(ck / "optimizer.safetensors"))


@dataclass
class Distributed(Parallel):
    """One of `world` processes started by torchrun (``ddp`` or ``fsdp``)."""

    cpu_offload: bool = False
    mixed_precision: str | None = None
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return True

    def check(self, collator: Any) -> None:
        if getattr(collator, "recurrent", False):
            raise UsageError(f"--strategy {self.strategy}: segment-recurrent training (Transformer-XL's memory) "
                             "carries state along each batch row, which this trainer does not split across "
                             "processes yet; train it in one process")

    def wrap(self, model: torch.nn.Module, collator: Any = None, cfg: Any = None) -> torch.nn.Module:
        self.check(collator)
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.local_rank] if self.device.startswith("cuda") else None
            # A head no objective trains (a pooler without NSP) never gets a gradient: a static graph finds
            # that out on the first step.  Mixture-of-experts routing changes which experts get one from step
            # to step, and no_sync (gradient accumulation) needs the dynamic search.
            moe = any(st.block.mlp.kind == "moe" for st in model.spec.stacks.values())  # type: ignore[union-attr]
            static = not moe and (cfg is None or cfg.accumulate == 1)
            return DDP(model, device_ids=ids, static_graph=static, find_unused_parameters=not static)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh("cuda" if self.device.startswith("cuda") else "cpu", (self.world,))
        kw: dict[str, Any] = {"mesh": mesh}
        if self.mixed_precision is not None:
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=getattr(torch, _DTYPES[self.mixed_precision]),
                                                   reduce_dtype=torch.float32)
        if self.cpu_offload:
            kw["offload_policy"] = CPUOffloadPolicy(pin_memory=self.device.startswith("cuda"))
        # FSDP2 warns that a block returns a view (the KV of the cache); nothing writes into a block's output
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        for block in _blocks(model):
            fully_shard(block, **kw)
        fully_shard(model, **kw)
        return model

    def local(self, n: int) -> range:
        if n % self.world:
            raise UsageError(f"--batch-size {n} (the global micro-batch) must be divisible by the number of "
                             f"processes ({self.world})")
        k = n // self.world
        return range(self.rank * k, (self.rank + 1) * k)

    def sync(self, engine: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager[Any]:
        if self.strategy == "ddp":
            return contextlib.nullcontext() if last else engine.no_sync()  # type: ignore[operator]
        engine.set_requires_gradient_sync(last)  # type: ignore[operator]
        return contextlib.nullcontext()

    def reduce(self, loss: float, tokens: int, norm: Any) -> tuple[float, int, float]:
        import torch.distributed as dist

        t = torch.tensor([loss, float(tokens)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return float(t[0]) / self.world, int(t[1]), _item(norm)

    @property
    def _comm_device(self) -> str:
        return f"cuda:{self.local_rank}" if self.device.startswith("cuda") else "cpu"

    def share_tokenizer(self, tok: Any) -> Any:
        """Rank 0's tokenizer on every rank (sent as its JSON bytes); also a barrier."""
        import torch.distributed as dist
        from tokenizers import Tokenizer as HF

        from .tokenizer import Tokenizer

        data = tok.hf.to_str().encode("utf-8") if self.is_main else b""
        n = torch.tensor([len(data)], dtype=torch.int64, device=self._comm_device)
        dist.broadcast(n, 0)
        buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self._comm_device) if self.is_main
               else torch.empty(int(n), dtype=torch.uint8, device=self._comm_device))
        dist.broadcast(buf, 0)
        if self.is_main:
            return tok
        return Tokenizer(HF.from_str(bytes(buf.cpu().tolist()).decode("utf-8")))

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, trainer: Any) -> Path:
        """Every rank writes its shards into ``step-N/shards``; rank 0 the spec and state, then renames."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import HuggingFaceStorageWriter
        from torch.distributed.checkpoint.state_dict import get_state_dict

        from ..compile.io import SPEC_FILE, spec_yaml
        from .trainer import CKPTS, LATEST, _write_json, _write_text_atomic

        root = trainer.run / CKPTS
        name = f"step-{trainer.step:06d}"
        final, tmp = root / name, root / f".tmp-{name}"
        if self.is_main:
            root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        self.barrier()
        ok = False
        try:
            msd, osd = get_state_dict(trainer.model, trainer.opt)
            sd = {"model": msd, "optim": osd["state"], "rng": {f"rank{self.rank}": torch.get_rng_state()}}
            dcp.save(sd, storage_writer=HuggingFaceStorageWriter(str(tmp / SHARDS), save_distributed=True))
            if self.is_main:
                (tmp / SPEC_FILE).write_text(spec_yaml(trainer.model.spec), encoding="utf-8")
                groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                          for g in osd["param_groups"]]
                _write_json(tmp / "state.json", {
                    "step": trainer.step, "position": trainer.position, "param_groups": groups,
                    "param_names": _trainable(trainer.model), "format": "dcp", "strategy": self.strategy,
                    "world_size": self.world})
            ok = True
        finally:
            self.barrier()
            if self.is_main:
                if ok:
                    tmp.chmod(0o755)
                    if final.exists():
                        shutil.rmtree(final)
                    tmp.rename(final)
                    _write_text_atomic(trainer.run / LATEST, name + "\n")
                    done = sorted(p for p in root.iterdir() if p.name.startswith("step-"))
                    for old in done[:-trainer.cfg.keep]:
                        shutil.rmtree(old, ignore_errors=True)
                elif tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            self.barrier()
        return final

    def load_checkpoint(self, trainer: Any, ck: Path) -> None:
        if is_sharded(ck) or self.strategy == "ddp":  # DDP's parameters are plain tensors: the trainer's own path
            super().load_checkpoint(trainer, ck)
            return
        # fsdp from a one-process checkpoint: the weights were loaded whole before sharding; the AdamW
        # moments go in as a full (unsharded) optimizer state dict, keyed by parameter name
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        from ..compile.io import read_tensors

        state = json.loads((ck / "state.json").read_text(encoding="utf-8"))
        names = _trainable(trainer.model)
        if state.get("param_names") != names:
            raise CheckpointError(f"{ck}: the optimizer state was written for other parameters than the model's")
        tensors = read_tensors(ck / "optimizer.safetensors")
        # torch numbers a parameter by its place in the param groups (decay, then no decay)
        name_of = {id(p): n for n, p in trainer.model.named_parameters()}
        order = [name_of[id(p)] for g in trainer.opt.param_groups for p in g["params"]]
        per: dict[str, dict[str, torch.Tensor]] = {}
        for key, t in tensors.items():
            if key.startswith("state."):
                _, i, k = key.split(".", 2)
                per.setdefault(order[int(i)], {})[k] = t
        if per:
            groups = []
            for g in state["param_groups"]:
                g = {k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
                g["params"] = [order[i] for i in g["params"]]
                groups.append(g)
            set_optimizer_state_dict(trainer.model, trainer.opt, {"state": per, "param_groups": groups},
                                     options=StateDictOptions(full_state_dict=True))
        _set_rng(tensors.get("rng.torch") if self.is_main else None, trainer, self.rank)
        trainer.step, trainer.position = int(state["step"]), int(state["position"])


# ------------------------------------------------------------------ setup

def setup(strategy: str = "none", *, cpu_offload: bool = False, mixed_precision: str | None = None,
          device: str = "cpu") -> Parallel:
    """The `Parallel` of this process: checks the options, joins the process group under torchrun.

    Raises:
        UsageError: an unknown strategy, FSDP options without FSDP, ``ddp``/``fsdp`` without torchrun,
            or several processes without a strategy.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy {strategy!r} is not one of: {', '.join(STRATEGIES)}")
    if mixed_precision is not None and mixed_precision not in MIXED:
        raise UsageError(f"--mixed-precision {mixed_precision!r} is not one of: {', '.join(MIXED)}")
    if strategy != "fsdp" and (cpu_offload or mixed_precision):
        opt = "--cpu-offload" if cpu_offload else "--mixed-precision"
        raise UsageError(f"{opt} is an FSDP option; use it with --strategy fsdp"
                         + (" (for autocast in one process or DDP, use --bf16)" if mixed_precision else ""))
    launched = launched_by_torchrun()
    if strategy == "none":
        if launched and int(os.environ["WORLD_SIZE"]) > 1:
            raise UsageError(f"launched by torchrun with {os.environ['WORLD_SIZE']} processes but --strategy is none:"
                             " every process would train alone into the same folder; pass --strategy ddp or fsdp")
        return Parallel()
    if not launched:
        missing = ", ".join(v for v in TORCHRUN_VARS if v not in os.environ)
        raise InputError(f"--strategy {strategy} runs one process per device under torchrun (no {missing} in the "
                         f"environment); launch it as `torchrun --nproc-per-node 2 -m plmgraph train ... "
                         f"--strategy {strategy}`")
    import torch.distributed as dist

    rank, world, local = (int(os.environ[v]) for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Distributed(strategy=strategy, rank=rank, world=world, local_rank=local, cpu_offload=cpu_offload,
                       mixed_precision=mixed_precision, device=device)


# ------------------------------------------------------------------ loading

def load_checkpoint_model(ck: Path, device: str = "cpu") -> torch.nn.Module:
    """The model of checkpoint folder `ck` with its weights (eval mode): model.safetensors, or DCP shards
    from any number of processes gathered into whole tensors in this one."""
    from ..compile.io import load

    if not is_sharded(ck):
        return load(ck, device=device)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    from ..compile import build
    from ..compile.io import SPEC_FILE, load_weights
    from ..spec import load_spec

    model = build(load_spec(ck / SPEC_FILE), device="meta")
    meta = _read_metadata(ck)
    params = {n for n, _ in model.named_parameters()}
    sd = {"model": {k[len("model."):]: torch.empty(tuple(md.size), dtype=md.properties.dtype)
                    for k, md in meta.items() if k.startswith("model.") and k[len("model."):] in params}}
    with _quiet_single_process():
        dcp.load(sd, storage_reader=HuggingFaceStorageReader(str(ck / SHARDS)),
                 planner=DefaultLoadPlanner(allow_partial_load=True))
    load_weights(model, {k: v.to(device) for k, v in sd["model"].items()}, str(ck / SHARDS))
    return model.eval()


def _read_metadata(ck: Path) -> dict[str, Any]:
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    try:
        return dict(HuggingFaceStorageReader(str(ck / SHARDS)).read_metadata().state_dict_metadata)
    except Exception as e:  # safetensors / json errors for a damaged shard
        raise CheckpointError(f"{ck / SHARDS}: not readable DCP shards ({type(e).__name__}: {e})") from None


def _load_sharded(trainer: Any, ck: Path, rank: int) -> None:
    """Weights, AdamW state and RNG from DCP shards, resharded to this run's processes (or one)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    state = json.loads((ck / "state.json").read_text(encoding="utf-8"))
    if state.get("param_names") != _trainable(trainer.model):
        raise CheckpointError(f"{ck}: the optimizer state was written for other parameters than the model's "
                              "(a checkpoint from another spec?)")
    meta = _read_metadata(ck)
    msd, osd = get_state_dict(trainer.model, trainer.opt)
    missing = [k for k in msd if f"model.{k}" not in meta]
    if missing:
        raise CheckpointError(f"{ck / SHARDS}: the shards lack {len(missing)} of the model's tensors "
                              f"({', '.join(missing[:5])})")
    key = f"rank{rank}"
    sd = {"model": msd, "optim": osd["state"], "rng": {key: torch.get_rng_state()}}
    with _quiet_single_process():
        dcp.load(sd, storage_reader=HuggingFaceStorageReader(str(ck / SHARDS)),
                 planner=DefaultLoadPlanner(allow_partial_load=True))
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["param_groups"]]
    set_state_dict(trainer.model, trainer.opt, model_state_dict=sd["model"],
                   optim_state_dict={"state": sd["optim"], "param_groups": groups})
    _set_rng(sd["rng"][key] if f"rng.{key}" in meta else None, trainer, rank)
    trainer.step, trainer.position = int(state["step"]), int(state["position"])


def _set_rng(saved: torch.Tensor | None, trainer: Any, rank: int) -> None:
    """This rank's saved torch RNG state; a rank the checkpoint had not gets a seed of its own."""
    if saved is not None:
        torch.set_rng_state(saved)
    else:
        torch.manual_seed(trainer.cfg.seed * 1_000_003 + 7919 * rank + 1)


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns that it loads in one process when no process group exists: that is what we want."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        yield


# ------------------------------------------------------------------ helpers

_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks FSDP shards one by one: each used once in its stack's schedule."""
    out = []
    for stack in model.modules():
        layers, schedule = getattr(stack, "layers", None), getattr(stack, "schedule", None)
        if isinstance(layers, torch.nn.ModuleDict) and schedule is not None:
            out += [layers[k] for k in layers if list(schedule).count(k) == 1]
    return out


def _trainable(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _item(x: Any) -> float:
    if hasattr(x, "full_tensor"):
        x = x.full_tensor()
    return float(x)


__all__ = ["Distributed", "Parallel", "STRATEGIES", "is_sharded", "launched_by_torchrun", "load_checkpoint_model",
           "setup"]
