"""Two processes with the gloo backend on CPU: every rank ends every update with the same masks,
even when the ranks start from different seeds and train on different data (rank 0 decides and
broadcasts)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402

import growcore  # noqa: E402
from growcore.torch import SET, RigL, SparseController  # noqa: E402

WORLD = 2


def _worker(rank: int, init_file: str, out: str, policy_name: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # different weights and data on each rank
        model = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        policy = SET(interval=3) if policy_name == "set" else RigL(interval=3)
        ctl = SparseController(model, opt, density=0.3, total_steps=30, policy=policy, seed=rank)
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
        history = []
        for _ in range(20):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            if ctl.step():
                history.append([layer.mask.clone() for layer in ctl.layers])
        torch.save({"history": history, "events": ctl.events}, os.path.join(out, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears down while another still talks to it (gloo can abort)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("policy", ["set", "rigl"])
def test_two_ranks_keep_identical_masks(tmp_path: Path, policy: str) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), policy), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    h0, h1 = (r["history"] for r in results)
    assert len(h0) == len(h1) == 6  # updates at steps 3, 6, ..., 18
    for masks0, masks1 in zip(h0, h1):
        assert all(torch.equal(a, b) for a, b in zip(masks0, masks1))
    assert results[0]["events"] == results[1]["events"]
    assert h0[0][0].sum() == h0[-1][0].sum()  # density kept


def _attempt(step: Callable[[], object], rank: int) -> dict[str, object]:
    """Runs a step that fails on some ranks: the error each rank saw, and the sum of one more
    collective, which pairs up only if the ranks are still in step."""
    error = None
    try:
        step()
    except Exception as e:  # noqa: BLE001 - the test records which error each rank saw
        error = f"{type(e).__name__}: {e}"
    total = torch.tensor([rank + 1.0])
    dist.all_reduce(total)
    return {"error": error, "total": total.item()}


def _failing_worker(rank: int, init_file: str, out: str) -> None:
    # A bounded timeout turns a hang (a rank waiting for a plan that never comes) into a failure.
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        torch.manual_seed(100 + rank)
        model = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ctl = SparseController(model, opt, density=0.3, total_steps=30, policy=RigL(interval=2))
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ctl.step()
        before = ctl.graph.to_bytes()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if rank == 0:
            with torch.no_grad():
                model[2].weight[ctl.masks()["2"]] = float("nan")  # rank 0's decision fails there
        result = {**_attempt(ctl.step, rank), "same": ctl.graph.to_bytes() == before, "step": ctl.step_count}
        torch.save(result, os.path.join(out, f"fail{rank}.pt"))
        dist.barrier()  # no rank tears down while another still talks to it (gloo can abort)
    finally:
        dist.destroy_process_group()


def test_a_failed_decision_on_rank_0_fails_every_rank_and_changes_no_graph(tmp_path: Path) -> None:
    mp.spawn(_failing_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"fail{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["error"].startswith("NonFiniteError")
    assert r1["error"].startswith("RuntimeError: rank 0 failed to decide the plan of block (2, 3)")
    assert r0["total"] == r1["total"] == 3.0
    assert r0["same"] and r1["same"]  # layer "0" was decided and replayed, then put back
    assert r0["step"] == r1["step"] == 1


def test_a_plan_that_regrows_a_dropped_edge_replays_on_another_rank() -> None:
    # rank 0's prune_and_grow with regrow_dropped may drop and grow the same edge; another
    # rank's replay must accept it and give the same graph (Graph.rewire alone refuses it).
    from growcore.torch.distributed import _replay

    g = growcore.Graph([6, 5], 0.5, seed=3)
    other = g.copy()
    present = g.to_dense(0, 1)
    w = np.where(present, 1.0, 0.0).astype(np.float32)
    r, c = np.argwhere(present)[0]
    w[r, c] = 0.01  # the weakest edge ...
    grad = np.zeros((5, 6), dtype=np.float32)
    grad[r, c] = 5.0  # ... has the largest gradient, so it is dropped and grown again
    g.advance(1)
    other.advance(1)
    plan = g.prune_and_grow(0, 1, w, grad, 1, regrow_dropped=True)
    assert (plan["drop_rows"][0], plan["drop_cols"][0]) == (plan["grow_rows"][0], plan["grow_cols"][0]) == (r, c)
    _replay(other, (0, 1), plan)
    assert other == g


def _grow_worker(rank: int, init_file: str, out: str) -> None:
    from growcore.torch import Grower, GrowingMLP, Interval

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # different weights and data on each rank
        model = GrowingMLP([12, 6, 6, 3], activation="relu", seed=rank)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        grower = Grower(model, opt, trigger=Interval(4), extrema={"fraction": 0.3, "high_z": 0.0})
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
        for _ in range(13):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            grower.step(loss)
        structure = {k: model.graph.to_dense(*k) for k in model.blocks()}
        torch.save({"structure": structure, "events": grower.events}, os.path.join(out, f"grow{rank}.pt"))
        dist.barrier()  # no rank tears down while another still talks to it (gloo can abort)
    finally:
        dist.destroy_process_group()


def test_two_ranks_grow_the_same_structure(tmp_path: Path) -> None:
    """Statistics and losses are averaged over the ranks, so every rank decides the same growth."""
    mp.spawn(_grow_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"grow{r}.pt", weights_only=False) for r in range(WORLD))
    assert any(e["kind"] == "clone" for e in r0["events"])
    assert r0["events"] == r1["events"]
    assert r0["structure"].keys() == r1["structure"].keys()
    for key, mask in r0["structure"].items():
        assert (mask == r1["structure"][key]).all(), key


def _lifecycle_worker(rank: int, init_file: str, out: str) -> None:
    from growcore.torch import Lifecycle

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)  # DDP: the same weights on every rank ...
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)
        lc = Lifecycle(
            model, opt, interval=4, fraction=0.25, maturity_age=0, strategy="mutation", seed=rank,
            senescence={"window": 2, "flat_steps": 0}, specialization=3,
            layer_options={"hidden2": {"fitness": "multi", "strategy": "crossover"}},
        )
        torch.manual_seed(100 + rank)  # ... and different data
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
        for _ in range(13):
            opt.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
            lc.step(labels=y)
        torch.save({"events": lc.events, "graph": lc.graph.to_bytes(), "params": model.state_dict()}, os.path.join(out, f"life{rank}.pt"))
        dist.barrier()  # no rank tears down while another still talks to it (gloo can abort)
    finally:
        dist.destroy_process_group()


def test_two_ranks_replace_the_same_neurons(tmp_path: Path) -> None:
    """Statistics, class counts and profiles are shared, so every rank decides the same events
    and, under DDP, ends with the same weights."""
    mp.spawn(_lifecycle_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"life{r}.pt", weights_only=False) for r in range(WORLD))
    assert sum(e["kind"] == "apoptosis" for e in r0["events"]) >= 6
    assert {e["layer"] for e in r0["events"]} == {"hidden1", "hidden2"}
    assert r0["events"] == r1["events"]
    assert r0["graph"] == r1["graph"]
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name


class _Unreadable:
    """Stands in for rank 0's last batch of activations: reading it fails."""

    def double(self) -> None:
        raise MemoryError("rank 0 cannot copy its batch")


def _failing_profiles_worker(rank: int, init_file: str, out: str) -> None:
    from growcore.torch import Lifecycle

    # A bounded timeout turns a hang (a rank waiting for profiles that never come) into a failure.
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        torch.manual_seed(0)  # DDP: the same weights on every rank ...
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        lc = Lifecycle(
            model, opt, interval=2, fraction=0.25, maturity_age=0, strategy="mutation",
            layer_options={"hidden2": {"fitness": "multi"}},  # scored on rank 0's batch profiles
        )
        torch.manual_seed(100 + rank)  # ... and different data
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))

        def train_step() -> None:
            opt.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()

        train_step()
        lc.step()
        held, before = lc.graph, lc.graph.to_bytes()
        train_step()
        if rank == 0:
            lc._last[2] = _Unreadable()  # read after hidden1 is decided
        result = {**_attempt(lc.step, rank), "same": held.to_bytes() == before, "step": lc.step_count}
        train_step()  # and the next event is decided alike on every rank
        result["events"] = lc.step()
        result["graph"] = lc.graph.to_bytes()
        torch.save(result, os.path.join(out, f"profiles{rank}.pt"))
        dist.barrier()  # no rank tears down while another still talks to it (gloo can abort)
    finally:
        dist.destroy_process_group()


def test_failed_batch_profiles_on_rank_0_fail_every_rank_and_change_no_graph(tmp_path: Path) -> None:
    mp.spawn(_failing_profiles_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"profiles{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["error"] == "MemoryError: rank 0 cannot copy its batch"
    assert r1["error"] == "RuntimeError: rank 0 failed to compute the batch profiles of hidden2; its error says why"
    assert r0["total"] == r1["total"] == 3.0
    assert r0["same"] and r1["same"]  # hidden1's apoptosis was decided, then put back
    assert r0["step"] == r1["step"] == 1
    assert any(e["kind"] == "apoptosis" for e in r0["events"])
    assert r0["events"] == r1["events"] and r0["graph"] == r1["graph"]
