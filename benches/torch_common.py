"""Shared pieces of the torch benchmarks: a plain-torch re-implementation of rigl-torch's dense-mask
RigL update (the peer), and the workloads both sides run.

The peer is written from reading rigl-torch (github.com/McCrearyD/rigl-torch, file
``rigl_torch/RigL.py``: ``RigLScheduler._rigl_step``, ``reset_momentum``,
``apply_mask_to_weights`` and ``apply_mask_to_gradients``); no code is copied. Per layer it does
what rigl-torch does, with the same tensor operations:

1. drop scores ``|W|`` over the whole dense tensor; a full top-k (``k = numel``, i.e. a sort) ranks
   every position and the ``n_keep = n_ones - int(n_ones * fraction)`` largest are kept (absent
   weights are zero, so they rank last);
2. grow scores ``|grad|`` of the dense gradient, with the kept positions lifted to
   ``min(score) - 1`` so that they rank last, and a second full top-k picks the ``n_prune`` largest;
3. the new mask is kept + grown; newly grown weights are set to zero (``torch.where`` over the
   dense tensor), and the weights, gradients and optimizer state are multiplied by the new mask.

Two deliberate differences, both noted where the numbers are reported:

- rigl-torch's ``reset_momentum`` masks only SGD's ``momentum_buffer``; here every optimizer state
  tensor of the weight's shape is masked (Adam's ``exp_avg`` and ``exp_avg_sq``), which is the work
  growcore does (zeroing the state of every changed coordinate).
- rigl-torch lets a just-dropped edge grow back in the same update (and keeps its old weight);
  growcore's default does not (``regrow_dropped=False``). The amount of work is the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def rigl_torch_update(
    weight: torch.Tensor, mask: torch.Tensor, dense_grad: torch.Tensor, fraction: float, optimizer: torch.optim.Optimizer
) -> None:
    """One rigl-torch-style RigL update of one layer, in place (``mask`` is a bool tensor of the
    weight's shape)."""
    n = weight.numel()
    device = weight.device
    n_ones = int(mask.sum().item())
    n_prune = int(n_ones * fraction)
    n_keep = n_ones - n_prune

    # Drop: rank every position by |W| and keep the n_keep largest.
    _, order = torch.topk(weight.abs().view(-1), k=n)
    first = (torch.arange(n, device=device) < n_keep).long()
    kept = first.scatter(0, order, first)

    # Grow: rank by |grad|, kept positions below everything, take the n_prune largest.
    score = dense_grad.abs().view(-1)
    lifted = torch.where(kept == 1, torch.ones_like(kept) * (score.min() - 1), score)
    _, order = torch.topk(lifted, k=n)
    first = (torch.arange(n, device=device) < n_prune).long()
    grown = first.scatter(0, order, first)

    new_connections = (grown.view_as(mask) == 1) & ~mask
    weight.data = torch.where(new_connections, torch.zeros_like(weight), weight)
    mask.data = (kept + grown).view_as(mask).bool()

    # reset_momentum (here for every per-coordinate state tensor), apply_mask_to_weights,
    # apply_mask_to_gradients.
    for value in optimizer.state[weight].values():
        if isinstance(value, torch.Tensor) and value.shape == weight.shape:
            value.mul_(mask)
    weight.mul_(mask)
    if weight.grad is not None:
        weight.grad.mul_(mask)


@torch.no_grad()
def topk_dense_update(
    weight: torch.Tensor, mask: torch.Tensor, dense_grad: torch.Tensor, fraction: float, optimizer: torch.optim.Optimizer
) -> None:
    """A leaner dense-mask update than rigl-torch's, for reference: the same decision as
    growcore's default (drop the ``int(nnz * fraction)`` smallest present ``|W|``, grow as many
    absent positions with the largest ``|grad|``, a just-dropped edge may not regrow), with top-k
    passes of only that count, unsorted, and index writes of the changed coordinates (mask,
    weights, every per-coordinate optimizer state tensor)."""
    k = int(int(mask.sum().item()) * fraction)
    flat = mask.view(-1)
    inf = torch.full((), float("inf"), dtype=weight.dtype, device=weight.device)
    _, dropped = torch.topk(torch.where(mask, weight.abs(), inf).view(-1), k, largest=False, sorted=False)
    _, grown = torch.topk(torch.where(mask, -inf, dense_grad.abs()).view(-1), k, sorted=False)
    flat[dropped] = False
    flat[grown] = True
    changed = torch.cat([dropped, grown])
    weight.view(-1)[changed] = 0.0
    for value in optimizer.state[weight].values():
        if isinstance(value, torch.Tensor) and value.shape == weight.shape:
            value.view(-1)[changed] = 0.0
    weight.mul_(mask)


def median_time(fn: Callable[[], Any], setup: Callable[[], Any] | None = None, repeats: int = 5) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` (``setup`` runs before each, untimed)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times
