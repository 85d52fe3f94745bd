"""Prune-and-regrow of one block: the core's decision from a site's weight and gradient, and the
plan applied to its mask, its weight and the optimizer state of every changed coordinate.

On the CPU the core reads the weight and gradient in place; on an accelerator only candidates
cross to the host (the smallest present magnitudes, the largest absent gradients), reduced on the
device with the core's tie-breaking, so the structure does not depend on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import growcore
from growcore.errors import NonFiniteError
from growcore.torch.journal import Journal
from growcore.torch.policies import Policy


def decide_rewire(
    graph: growcore.Graph,
    block: tuple[int, int],
    w: torch.Tensor,
    g: torch.Tensor | None,
    mask: torch.Tensor,
    count: int,
    policy: Policy,
    reduce_on_device: bool = False,
) -> dict[str, np.ndarray]:
    """The core's prune-and-regrow plan for one block, from its (out, in) weight matrix ``w``,
    its gradient ``g`` (for gradient growth) and its mask; the graph is updated."""
    a, b = block
    regrow = policy.regrow_dropped
    if not (reduce_on_device or w.device.type != "cpu"):
        # The core reads CPU tensors in place: no copy when they are float32 and contiguous.
        drop: Any = _numpy(w)
        grow: Any = "random" if policy.grow == "random" else _numpy(g)
    else:
        # On an accelerator only candidates cross: the smallest present magnitudes and the
        # largest absent gradients, reduced on the device.
        # The core checks only the candidates it gets, and topk never picks a NaN or inf as a
        # smallest magnitude: check the whole matrices here, as the core does on the CPU path.
        _check_finite("drop_scores", w)
        if policy.grow != "random":
            _check_finite("grow_scores", g)
        frozen = int(graph.edge_frozen(a, b).sum())
        drop = _smallest_present(w, mask, count + frozen)
        grow = "random" if policy.grow == "random" else _largest(g, mask, count, regrow, drop)
    return graph.prune_and_grow(a, b, drop, grow, count, regrow_dropped=regrow)


@torch.no_grad()
def apply_rewire(
    plan: Mapping[str, np.ndarray],
    mask: torch.Tensor,
    weight: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    journal: Journal | None = None,
    gradient: bool = False,
) -> None:
    """Applies a plan to a block's mask (its (out, in) matrix shape), its weight (grown ones
    start at zero) and the optimizer state of every changed coordinate, through ``journal`` so
    a failed step can undo it (None: not undoable). ``gradient``: zero the changed coordinates'
    gradient too (its optimizer step is still to come)."""
    journal = journal if journal is not None else Journal()
    cols = mask.shape[1]
    device = mask.device
    # The two index sets are written apart rather than concatenated (a copy of 1M indices
    # for a 30% update of a 4096 x 4096 layer costs as much as a write).
    dropped = torch.as_tensor(plan["drop_rows"] * cols + plan["drop_cols"], device=device)
    grown = torch.as_tensor(plan["grow_rows"] * cols + plan["grow_cols"], device=device)
    # What a grown (absent) coordinate holds is known: mask False, weight and state zero (the
    # engine keeps them so), so only the dropped ones' values are read for the undo.
    journal.write(mask, dropped, False, was=True)
    journal.write(mask, grown, True, was=False)
    journal.write(weight, dropped, 0.0)
    journal.forget(optimizer, weight, dropped, gradient=gradient)
    journal.write(weight, grown, 0.0, was=0.0)
    journal.forget(optimizer, weight, grown, was_zero=True, gradient=gradient)


def _numpy(t: torch.Tensor | None) -> np.ndarray:
    assert t is not None
    if t.dtype != torch.float32:
        t = t.float()
    return t.contiguous().numpy()


def _check_finite(arg: str, t: torch.Tensor | None) -> None:
    """Raises the core's NonFiniteError for the first NaN or inf of ``t`` in row-major order, as
    the core reads it on the CPU path (in float32: a float64 beyond its range is inf there)."""
    assert t is not None
    flat = t.reshape(-1) if t.dtype == torch.float32 else t.reshape(-1).float()
    if not bool(torch.isfinite(flat).all()):  # one pass and one sync; the index only on failure
        i = int((~torch.isfinite(flat)).nonzero()[0])
        raise NonFiniteError(f"{arg}[{i}]: non-finite value {_core_float(float(flat[i]))}")


def _core_float(x: float) -> str:
    """A non-finite float as the core writes it (Rust's NaN, inf, -inf)."""
    return "NaN" if x != x else ("inf" if x > 0 else "-inf")


def _smallest_present(w: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[np.ndarray, ...]:
    """The k present positions with the smallest |W|, as (rows, cols, values) on the host."""
    scores = torch.where(mask, w.abs().float(), torch.full_like(w, float("inf"), dtype=torch.float32))
    k = min(k, int(mask.sum()))
    return _listed(*_top(scores.view(-1), k, largest=False), w.shape[1])


def _largest(
    g: torch.Tensor | None, mask: torch.Tensor, k: int, regrow: bool, drop: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """The absent positions (plus the drop candidates when they may regrow) with the largest
    |gradient|, as (rows, cols, values) on the host; a margin of candidates covers the ones the
    core turns down."""
    assert g is not None
    eligible = ~mask
    if regrow:
        eligible = eligible.clone()
        rows, cols = (torch.as_tensor(x, device=mask.device) for x in drop[:2])
        eligible[rows, cols] = True
    scores = torch.where(eligible, g.abs().float(), torch.full_like(g, -1.0, dtype=torch.float32))
    k = min(k + (len(drop[0]) if regrow else 0), int(eligible.sum()))
    return _listed(*_top(scores.view(-1), k, largest=True), g.shape[1])


def _top(scores: torch.Tensor, k: int, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best (flat index, score) pairs; of the scores tied at the cut, the first in
    index (row-major) order, as the core breaks ties. ``torch.topk`` keeps any of them, so the
    structure would depend on the device."""
    values, flat = torch.topk(scores, k, largest=largest, sorted=False)
    if k == 0 or bool(values.isnan().any()):
        return flat, values  # the core refuses a non-finite score and names it
    cut = values.min() if largest else values.max()
    better = (scores > cut if largest else scores < cut).nonzero().view(-1)
    tied = (scores == cut).nonzero().view(-1)[: k - len(better)]
    flat = torch.cat([better, tied])
    return flat, scores[flat]


def _listed(flat: torch.Tensor, values: torch.Tensor, cols: int) -> tuple[np.ndarray, ...]:
    host = flat.cpu().numpy()
    return host // cols, host % cols, values.float().cpu().numpy()
