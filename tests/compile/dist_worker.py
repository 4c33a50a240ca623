"""The two-process side of `test_distributed.py`: real ``torch.distributed`` (gloo, CPU).

`spawn_and_collect` starts 2 processes with `torch.multiprocessing`; each joins a gloo process
group over TCP on 127.0.0.1, runs every case of `CASES` (one SGD step of a tiny zoo model
wrapped in DDP, or in FSDP2 ``fully_shard`` per block then the whole model) and saves what it
ends with to ``<out>/rank<r>.pt``.  The test compares those with `reference_step`, the same
step taken by one process on the concatenation of both ranks' micro-batches.

The model, batch, loss and step helpers live here so that the reference and the workers
share exactly one definition.
"""

from __future__ import annotations

import socket
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from helpers import tiny
from torch import Tensor, nn

import plmgraph as pg
from plmgraph.compile.model import PLMModel

WORLD = 2
LR = 0.5  # large, so a wrong gradient moves the parameters visibly
SIZES = dict(layers=2, hidden=32, heads=2, ffn=64, vocab=64, max_positions=32)
MICRO_BATCH, SEQ = 2, 8

#: case -> how it is wrapped; every case is one optimiser step.
CASES: dict[str, dict[str, Any]] = {
    "ddp-gpt2": dict(spec="gpt2", wrap="ddp"),
    "ddp-bert": dict(spec="bert-base", wrap="ddp"),
    "ddp-gpt2-checkpointing": dict(spec="gpt2", wrap="ddp", checkpointing=True),
    "fsdp-gpt2": dict(spec="gpt2", wrap="fsdp"),
    "fsdp-bert": dict(spec="bert-base", wrap="fsdp"),
    "fsdp-albert": dict(spec="albert-base", wrap="fsdp"),
    "fsdp-gpt2-meta": dict(spec="gpt2", wrap="fsdp", meta=True),
}


# ---------------------------------------------------------------- shared pieces


def make_model(spec: str, seed: int = 0, checkpointing: bool = False, device: str | None = None) -> PLMModel:
    """A tiny model of zoo `spec` in train mode with every dropout off (so steps are deterministic)."""
    model = pg.build(tiny(spec, **SIZES), seed=seed, device=device).train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0  # attention dropout, passed to SDPA
    return model.gradient_checkpointing(checkpointing)


def micro_batch(spec: str, rank: int) -> dict[str, Tensor]:
    """Rank `rank`'s micro-batch (different on every rank)."""
    g = torch.Generator().manual_seed(1000 + rank)
    ids = torch.randint(4, SIZES["vocab"], (MICRO_BATCH, SEQ), generator=g)
    if not spec.startswith(("bert", "albert")):
        return {"input_ids": ids}
    labels = ids.clone()  # MLM: every position is predicted, so each rank has the same token count
    ids[:, 1:3] = 3  # the [MASK] stand-in
    segments = torch.zeros_like(ids)
    segments[:, SEQ // 2:] = 1
    return {"input_ids": ids, "token_type_ids": segments, "labels": labels,
            "sentence_labels": torch.randint(0, 2, (MICRO_BATCH,), generator=g)}


def full_batch(spec: str) -> dict[str, Tensor]:
    """Both ranks' micro-batches concatenated: what one process trains on for the reference."""
    parts = [micro_batch(spec, r) for r in range(WORLD)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Mean loss: CLM for decoders; MLM + NSP/SOP for BERT-style encoders (every head is used,
    so DDP needs no ``find_unused_parameters``)."""
    if "labels" not in batch:
        logits = model(batch["input_ids"]).logits
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["input_ids"][:, 1:].flatten())
    out = model(batch["input_ids"], token_type_ids=batch["token_type_ids"])
    mlm, sentence = out.head_outputs.values()
    return (F.cross_entropy(mlm.flatten(0, 1), batch["labels"].flatten())
            + F.cross_entropy(sentence, batch["sentence_labels"]))


def train_step(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    opt.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    opt.step()
    return loss.detach()


def reference_step(case: str, local_rank: int | None = None) -> dict[str, Any]:
    """One process, one step, on the full batch (or, with `local_rank`, on that rank's micro-batch
    alone: what a rank would get if the gradients were *not* all-reduced).  Returns the trained
    ``state`` and the ``logits`` it then gives on the full batch."""
    c = CASES[case]
    model = make_model(c["spec"], seed=0, checkpointing=c.get("checkpointing", False))
    batch = full_batch(c["spec"]) if local_rank is None else micro_batch(c["spec"], local_rank)
    train_step(model, batch)
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "logits": eval_logits(model, c["spec"]), "names": set(model.graph.param_shapes())}


def eval_logits(model: nn.Module, spec: str) -> Tensor:
    """The primary head's logits on the full batch, without gradients."""
    batch = full_batch(spec)
    with torch.no_grad():
        return model(batch["input_ids"], token_type_ids=batch.get("token_type_ids")).logits


# ---------------------------------------------------------------- the workers


def run_case(case: str, rank: int) -> dict[str, Any]:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    c = CASES[case]
    spec = c["spec"]
    batch = micro_batch(spec, rank)
    if c["wrap"] == "ddp":
        # Different seeds per rank on purpose: DDP must broadcast rank 0's weights at wrap time.
        model = make_model(spec, seed=rank, checkpointing=c.get("checkpointing", False))
        wrapped = DDP(model)  # every parameter gets a gradient: find_unused_parameters stays False
        loss = train_step(wrapped, batch)
        return {"loss": loss, "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "logits": eval_logits(model, spec)}
    # FSDP2: each block its own unit (all-gathered just around its forward/backward), then the root
    # (embeddings, final norm, pooler, heads, and the token matrix the tied LM head reads).
    # fully_shard does not broadcast, so every rank builds the same initial weights; or ("meta")
    # the model is built without memory, sharded, and rank 0's full weights are scattered into it.
    meta = c.get("meta", False)
    model = make_model(spec, seed=0, checkpointing=c.get("checkpointing", False), device="meta" if meta else None)
    mesh = dist.device_mesh.init_device_mesh("cpu", (WORLD,))
    for block in model.blocks():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if meta:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        model.to_empty(device="cpu")
        full = make_model(spec, seed=0).state_dict() if rank == 0 else {}
        set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    sharded = {k: tuple(v.to_local().shape) for k, v in model.state_dict().items()}
    loss = train_step(model, batch)
    full = {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()}
    head = next(iter(model.heads.values()))
    tied = getattr(head, "weight", None) is model.embed.token.weight
    return {"loss": loss, "state": full, "local_shapes": sharded, "tied": tied,
            "logits": eval_logits(model, spec)}


def worker(rank: int, port: int, out: str, cases: list[str]) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    results: dict[str, Any] = {}
    try:
        for case in cases:
            t = time.perf_counter()
            try:
                results[case] = run_case(case, rank)
            except Exception:  # noqa: BLE001 - reported to the test, which fails with it
                results[case] = {"error": traceback.format_exc()}
            results[case]["seconds"] = time.perf_counter() - t
            dist.barrier()
    finally:
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_and_collect(out: Path, cases: list[str], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run `cases` on 2 real processes; return each rank's results.  Kills both and raises
    `TimeoutError` if they are not done within `timeout` seconds (a hang fails, never blocks)."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(worker, args=(free_port(), str(out), cases), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"distributed workers did not finish within {timeout:.0f} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join(5)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
