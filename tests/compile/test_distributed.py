"""DDP and FSDP (per block) with real ``torch.distributed``: 2 processes, gloo, CPU, no mocks.

Every case takes one SGD step on 2 ranks, each with its own micro-batch, and must end with
the parameters a single process gets from the same step on the concatenated batch (mean
loss).  That equality, together with the single-rank step giving something else, shows the
gradients were really all-reduced (DDP) or reduce-scattered (FSDP).  All cases run in one
pair of spawned processes (see `dist_worker`), bounded by a timeout so a hang fails.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.distributed as dist

import dist_worker as w  # isort: skip  (tests/compile is on sys.path under pytest)

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

DDP_CASES = [c for c in w.CASES if w.CASES[c]["wrap"] == "ddp"]
FSDP_CASES = [c for c in w.CASES if w.CASES[c]["wrap"] == "fsdp"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return w.spawn_and_collect(tmp_path_factory.mktemp("dist"), list(w.CASES), timeout=180)


def ranks(runs: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    for r, res in enumerate(runs):
        if "error" in res[case]:
            pytest.fail(f"rank {r} failed in {case}:\n{res[case]['error']}")
    return [res[case] for res in runs]


def assert_state_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)


@pytest.mark.parametrize("case", DDP_CASES)
def test_ddp_step_equals_single_process_step_on_full_batch(runs, case):
    r0, r1 = ranks(runs, case)
    assert not torch.equal(r0["loss"], r1["loss"]), "both ranks saw the same data"
    for k in r0["state"]:  # one all-reduced gradient, one identical step on every rank
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    ref = w.reference_step(case)
    assert_state_close(r0["state"], ref["state"])
    torch.testing.assert_close(r0["logits"], ref["logits"], rtol=1e-5, atol=1e-5)
    # ... and not what rank 0 alone would have done: the other rank's gradient was averaged in
    assert differs(w.reference_step(case, local_rank=0)["state"], ref["state"])


@pytest.mark.parametrize("case", FSDP_CASES)
def test_fsdp_per_block_step_equals_single_process_step_on_full_batch(runs, case):
    r0, r1 = ranks(runs, case)
    ref = w.reference_step(case)
    full = {k: tuple(v.shape) for k, v in ref["state"].items()}
    # Module paths survive fully_shard: the same names as the graph, the tied matrix once.
    assert set(r0["local_shapes"]) == set(full) == ref["names"]
    for k, shape in full.items():  # really sharded along dim 0, half a tensor per rank
        assert r0["local_shapes"][k][0] == -(-shape[0] // w.WORLD), (k, r0["local_shapes"][k], shape)
    for k in full:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert_state_close(r0["state"], ref["state"])
    assert differs(w.reference_step(case, local_rank=0)["state"], ref["state"])


@pytest.mark.parametrize("case", FSDP_CASES)
def test_fsdp_keeps_the_lm_head_tied_to_the_trained_embedding(runs, case):
    r0, _ = ranks(runs, case)
    assert r0["tied"], "the LM head no longer reads the token-embedding parameter"
    # After the step, the FSDP model's logits (head through the *updated* shared matrix) are the reference's.
    torch.testing.assert_close(r0["logits"], w.reference_step(case)["logits"], rtol=1e-5, atol=1e-5)
