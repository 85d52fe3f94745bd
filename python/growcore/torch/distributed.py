"""Structure that stays identical on every rank of a ``torch.distributed`` job.

Rank 0 decides every prune-and-regrow plan and broadcasts it; the other ranks apply it to their
graph through ``Graph.rewire``, which checks it. The initial graph is broadcast from rank 0 too,
so ranks agree even if they were given different seeds. (The other ranks' graph RNG is never
used for decisions, so it may differ from rank 0's.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist

import growcore

T = TypeVar("T")

KEYS = ("drop_rows", "drop_cols", "grow_rows", "grow_cols")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_plan(
    decide: Callable[[], dict[str, np.ndarray]], graph: growcore.Graph, block: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Runs ``decide`` on rank 0 (which changes rank 0's graph) and replays its plan on the
    other ranks' graphs. If ``decide`` raises on rank 0, every other rank raises too (rather
    than waiting for a plan that never comes), and no graph changes."""
    device = _device()
    if dist.get_rank() == 0:
        try:
            plan = decide()
        except BaseException:
            dist.broadcast(torch.tensor([_FAILED], dtype=torch.int64, device=device), src=0)
            raise
        n = len(plan["drop_rows"])
        packed = torch.as_tensor(np.concatenate([plan[k] for k in KEYS]), dtype=torch.int64, device=device)
        dist.broadcast(torch.tensor([n], dtype=torch.int64, device=device), src=0)
        dist.broadcast(packed, src=0)
        return plan
    size = torch.zeros(1, dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    n = int(size.item())
    if n == _FAILED:
        raise RuntimeError(f"rank 0 failed to decide the plan of block {block}; its error says why")
    packed = torch.empty(4 * n, dtype=torch.int64, device=device)
    dist.broadcast(packed, src=0)
    parts = packed.cpu().numpy().reshape(4, n)
    plan = dict(zip(KEYS, parts))
    _replay(graph, block, plan)
    return plan


#: Sent instead of a plan's size when rank 0's decision failed.
_FAILED = -1


def _replay(graph: growcore.Graph, block: tuple[int, int], plan: dict[str, np.ndarray]) -> None:
    """Applies rank 0's plan as ``Graph.prune_and_grow`` did there (an edge it dropped and grew
    again, with ``regrow_dropped``, is reborn at this step)."""
    graph.rewire(*block, *(plan[k] for k in KEYS), regrow_dropped=True)


def broadcast_graph(graph: growcore.Graph) -> growcore.Graph:
    """Rank 0's graph on every rank."""
    payload = [graph.to_bytes() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(payload, src=0)
    data = payload[0]
    assert isinstance(data, bytes)
    return growcore.Graph.from_bytes(data)


def broadcast_from_rank0(compute: Callable[[], T], what: str) -> T:
    """Rank 0's ``compute()`` on every rank (sent with ``broadcast_object_list``, so it must
    pickle); only rank 0 calls ``compute``. If it raises there, rank 0 broadcasts a failure
    flag before re-raising and every other rank raises a RuntimeError naming ``what``, so no
    rank waits for a result that never comes and the next collective pairs up."""
    if dist.get_rank() == 0:
        try:
            value = compute()
        except BaseException:
            dist.broadcast_object_list([(False, None)], src=0)
            raise
        dist.broadcast_object_list([(True, value)], src=0)
        return value
    payload: list[Any] = [None]
    dist.broadcast_object_list(payload, src=0)
    ok, value = payload[0]
    if not ok:
        raise RuntimeError(f"rank 0 failed to compute {what}; its error says why")
    return cast(T, value)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over the ranks, on the tensor's device."""
    total = t.to(_device(), copy=True)
    dist.all_reduce(total)
    return total.to(t.device)


def mean_summaries(summary: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-neuron summaries (float32 arrays of one length) averaged over the ranks, so that
    every rank's graph observes the same numbers."""
    names = sorted(summary)
    mean = all_reduce_mean(np.stack([summary[k] for k in names]))
    return {k: mean[i].astype(np.float32) for i, k in enumerate(names)}


def all_reduce_mean(values: np.ndarray) -> np.ndarray:
    """The mean of a float array over the ranks (so every rank decides from the same numbers)."""
    t = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64), device=_device())
    dist.all_reduce(t)
    out: np.ndarray = (t / dist.get_world_size()).cpu().numpy()
    return out

