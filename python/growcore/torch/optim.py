"""Optimizer-state transplant: after a structural change, the state of every changed coordinate
starts from zero, in place; the optimizer is never rebuilt.

Every state tensor with the parameter's shape is treated as per-coordinate state (SGD's
``momentum_buffer``, Adam's and AdamW's ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq``, and
the same for any optimizer that keeps such tensors). Scalars and tensors of other shapes are left
alone; in particular Adam's ``step`` is one count for the whole tensor and keeps running, so a
regrown coordinate's moments restart at zero under a bias correction that has already decayed to
about 1. Under a steady gradient its first update is about ``lr * (1 - beta1) / sqrt(1 - beta2)``
(3 ``lr`` with the defaults, where a fresh Adam moves by ``lr``), about 6 ``lr`` ten steps later,
and back near ``lr`` only after a few times ``1 / (1 - beta2)`` steps (measured after 2,000 steps
of Adam's defaults). This is the usual behaviour of sparse-training libraries.
"""

from __future__ import annotations

import torch


def per_coordinate_state(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> list[torch.Tensor]:
    """The optimizer's state tensors of ``param`` that hold one value per coordinate (those of
    its shape)."""
    state = optimizer.state.get(param) or {}
    return [v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == param.shape and v.dim() > 0]


@torch.no_grad()
def zero_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, flat_index: torch.Tensor) -> int:
    """Zeroes the optimizer state of ``param`` at the given flat (row-major) coordinates.
    Returns how many state tensors were touched."""
    tensors = per_coordinate_state(optimizer, param)
    for value in tensors:
        fill_at(value, flat_index.to(value.device), 0.0)
    return len(tensors)


@torch.no_grad()
def fill_at(t: torch.Tensor, flat_index: torch.Tensor, value: float) -> None:
    """Writes ``value`` at the flat (row-major) coordinates of ``t``, in place whatever its
    memory layout."""
    if t.is_contiguous():
        t.view(-1).index_fill_(0, flat_index, value)
    else:  # e.g. channels_last: index through the unravelled coordinates
        t[torch.unravel_index(flat_index, t.shape)] = value
