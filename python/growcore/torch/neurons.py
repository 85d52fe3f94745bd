"""Neuron replacement on the torch side: the options of apoptosis and senescence, a newborn's
incoming weights by strategy, and a replacement plan applied to a producer -> consumer pair.

Replacing the neuron in slot ``s`` (a row of the producer, ``kernel`` columns of the consumer),
by the strategy the core applied:

- ``random``: fresh incoming weights and bias, uniform in ``+-1/sqrt(fan_in)`` (as ``nn.Linear``
  and the convolutions initialise), zero outgoing weights;
- ``mutation``: a parent's incoming weights plus Gaussian noise of standard deviation
  ``noise * std(parent's incoming weights)``, the parent's bias, zero outgoing weights;
- ``crossover``: ``alpha * p1 + (1 - alpha) * p2`` (weights and bias) plus the same noise on the
  weights, zero outgoing weights;
- ``function_preserving``: fresh incoming weights, zero outgoing weights, and the dying neuron's
  mean contribution (its outgoing weights times its mean activation, summed over a kernel's
  columns) added to the consumer's bias, so the output does not move for inputs at which the
  neuron sat at its mean activation.

The optimizer state of the touched rows and columns is zeroed in place; a ``BatchNorm`` or
``LayerNorm`` between the pair has the touched units reset as in a fresh module. Noise and fresh
weights come from a ``torch.Generator`` seeded with the core's per-replacement ``noise_seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from growcore.errors import InvalidArgumentError, is_real

if TYPE_CHECKING:
    from growcore.torch.journal import Journal
    from growcore.torch.sites import NeuronGroup

STRATEGIES = ("random", "mutation", "crossover", "function_preserving")
FITNESS = ("default", "utility", "dormancy", "multi")
#: Senescence options and their defaults (``None``: a multiple of ``interval``, see below).
SENESCENCE = {
    "window": 5,
    "epsilon": 0.1,
    "flat_steps": None,  # 5 * interval
    "escalate_after": None,  # 5 * interval
    "max_fraction": 0.05,
    "lr_scale": 1.0,
}
Event = dict[str, Any]


def check_apoptosis_options(prefix: str, o: Mapping[str, Any]) -> None:
    """Checks one layer's apoptosis options; ``prefix`` names where they came from."""
    if o["strategy"] not in STRATEGIES:
        raise InvalidArgumentError(f"{prefix}strategy: unknown strategy {o['strategy']!r}; expected one of {list(STRATEGIES)}")
    if not isinstance(o["fraction"], (int, float)) or not 0.0 <= o["fraction"] <= 1.0:
        raise InvalidArgumentError(f"{prefix}fraction: must be in [0, 1], got {o['fraction']!r}")
    for age in ("maturity_age", "senior_age"):
        if not isinstance(o[age], int) or isinstance(o[age], bool) or not 0 <= o[age] < 2**31:
            raise InvalidArgumentError(f"{prefix}{age}: must be an integer in [0, 2**31), got {o[age]!r}")
    alpha = o["alpha"]
    if alpha is not None and o["strategy"] != "crossover":
        raise InvalidArgumentError(f"{prefix}alpha: only applies to the crossover strategy, not {o['strategy']!r}")
    if alpha is not None and alpha != "fitness" and not (
        isinstance(alpha, (tuple, list))
        and len(alpha) == 2
        and all(is_real(a) for a in alpha)
        and 0.0 <= alpha[0] <= alpha[1] <= 1.0
    ):
        raise InvalidArgumentError(f'{prefix}alpha: expected "fitness" or (low, high) with 0 <= low <= high <= 1, got {alpha!r}')
    if not is_real(o["noise"]) or not 0.0 <= o["noise"] < math.inf:
        raise InvalidArgumentError(f"{prefix}noise: must be a finite non-negative number, got {o['noise']!r}")
    if o["threshold"] is not None and (not is_real(o["threshold"]) or math.isnan(o["threshold"])):
        raise InvalidArgumentError(f"{prefix}threshold: must be a number or None, got {o['threshold']!r}")
    if o["fitness"] not in FITNESS:
        raise InvalidArgumentError(f"{prefix}fitness: unknown fitness {o['fitness']!r}; expected one of {list(FITNESS)}")


def senescence_options(value: bool | Mapping[str, Any], interval: int) -> dict[str, Any] | None:
    """The senescence options with defaults filled in, or None when senescence is off."""
    if value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"senescence: expected True, False or a mapping of options, got {value!r}")
    unknown = sorted(set(value) - set(SENESCENCE))
    if unknown:
        raise InvalidArgumentError(f"senescence: unknown options {unknown}; expected some of {sorted(SENESCENCE)}")
    o = {**SENESCENCE, **value}
    for key in ("flat_steps", "escalate_after"):
        if o[key] is None:
            o[key] = 5 * interval
    if not isinstance(o["window"], int) or isinstance(o["window"], bool) or o["window"] < 2:
        raise InvalidArgumentError(f"senescence['window']: a slope needs at least 2 samples, got {o['window']!r}")
    for key in ("flat_steps", "escalate_after"):
        if not isinstance(o[key], int) or isinstance(o[key], bool) or not 0 <= o[key] < 2**31:
            raise InvalidArgumentError(f"senescence[{key!r}]: must be an integer in [0, 2**31), got {o[key]!r}")
    for key, low, high in (("epsilon", 0.0, 1e300), ("max_fraction", 0.0, 1.0), ("lr_scale", 0.0, 1.0)):
        x = o[key]
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not low <= x <= high or math.isnan(x):
            raise InvalidArgumentError(f"senescence[{key!r}]: must be in [{low}, {high}], got {x!r}")
    return o


def newborn_row(
    strategy: str,
    plan: Mapping[str, Any],
    k: int,
    old_in: torch.Tensor,
    old_bias: torch.Tensor | None,
    gen: torch.Generator,
    noise: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    fan_in = old_in.shape[1]
    if strategy in ("random", "function_preserving"):
        bound = 1.0 / math.sqrt(fan_in)
        row = (torch.rand(fan_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        fresh = (torch.rand((), generator=gen, dtype=torch.float64) * 2 - 1) * bound
        return row, (fresh if old_bias is not None else None)
    p1 = int(plan["parent_a"][k])
    bias: torch.Tensor | None = None
    if strategy == "mutation":
        row = old_in[p1].double().cpu()
        if old_bias is not None:
            bias = old_bias[p1].double().cpu()
    else:
        a = float(plan["alpha"][k])
        p2 = int(plan["parent_b"][k])
        row = a * old_in[p1].double().cpu() + (1 - a) * old_in[p2].double().cpu()
        if old_bias is not None:
            bias = a * old_bias[p1].double().cpu() + (1 - a) * old_bias[p2].double().cpu()
    scale = noise * float(row.std()) if fan_in > 1 else 0.0
    if scale > 0.0:
        row = row + scale * torch.randn(fan_in, generator=gen, dtype=torch.float64)
    return row, bias


@torch.no_grad()
def reset_norm_units(
    norm: nn.Module, slots: torch.Tensor, optimizer: torch.optim.Optimizer, journal: Journal | None = None
) -> None:
    """A newborn's units of a BatchNorm or LayerNorm start as a fresh module's: running mean 0
    and variance 1, affine weight 1 and bias 0, their optimizer state zeroed (through
    ``journal`` when given, so a failed step can undo it)."""
    from growcore.torch.journal import Journal

    journal = journal if journal is not None else Journal()
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        if norm.running_mean is not None and norm.running_var is not None:
            journal.write(norm.running_mean, slots, 0.0)
            journal.write(norm.running_var, slots, 1.0)
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    for param, fresh in ((weight, 1.0), (bias, 0.0)):
        if isinstance(param, torch.Tensor):
            journal.write(param, slots, fresh)
            journal.forget(optimizer, param, slots)


@torch.no_grad()
def replace(
    group: NeuronGroup,
    plan: Mapping[str, np.ndarray],
    mean_activation: np.ndarray,
    lineage: Mapping[str, np.ndarray],
    noise: float,
    optimizer: torch.optim.Optimizer,
    journal: Journal,
    step: int,
) -> list[Event]:
    """Applies a core apoptosis plan to a neuron group through ``journal``; returns one
    ``apoptosis`` event per replaced neuron. A newborn's incoming weights are one row over every
    producer (fan-in: all of them), split back into each producer's row and masked by its edges."""
    if len(plan["slot"]) == 0:
        return []
    producers, consumers = group.producers, group.consumers
    # Parents are survivors, whose rows this event never writes: read them in place.
    parts = [p.matrix(p.weight.detach()) for p in producers]
    in_matrix = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    widths = [m.shape[1] for m in parts]
    bias_in = group.bias
    old_bias = bias_in.detach() if bias_in is not None else None
    device = producers[0].weight.device
    events: list[Event] = []
    for j in range(len(plan["slot"])):
        slot, strategy = int(plan["slot"][j]), str(plan["strategy"][j])
        gen = torch.Generator().manual_seed(int(plan["noise_seed"][j]))
        row, bias = newborn_row(strategy, plan, j, in_matrix, old_bias, gen, noise)
        for producer, part in zip(producers, torch.split(row, widths)):
            w_in = producer.weight
            part = part.to(device, w_in.dtype)
            if producer.mask is not None:
                part = part * producer.mask[slot]  # only the neuron's edges carry weights
            journal.write(w_in, slot * part.numel() + torch.arange(part.numel(), device=device), part)
        if bias_in is not None and bias is not None:
            journal.write(bias_in, torch.tensor([slot], device=device), bias.reshape(1))
        for consumer, bias_out in zip(consumers, group.consumer_biases):
            w_out = consumer.weight
            n_out, k = consumer.shape[1], consumer.kernel
            out_rows = torch.arange(w_out.shape[0], device=device)
            cols = (out_rows[:, None] * n_out + slot * k + torch.arange(k, device=device)).reshape(-1)
            if strategy == "function_preserving" and bias_out is not None:
                contribution = consumer.matrix(w_out.detach())[:, slot * k : (slot + 1) * k].sum(dim=1)
                journal.add(bias_out, out_rows, contribution * float(mean_activation[slot]))
            journal.write(w_out, cols, 0.0)
            journal.forget(optimizer, w_out, cols)
        born = int(plan["born"][j])
        events.append({
            "kind": "apoptosis",
            "step": step,
            "layer": group.name,
            "slot": slot,
            "dead": int(plan["dead"][j]),
            "born": born,
            "strategy": strategy,
            "parents": [int(p) for p in (lineage["parent_a"][born], lineage["parent_b"][born]) if p >= 0],
            "parent_slots": [int(p) for p in (plan["parent_a"][j], plan["parent_b"][j]) if p >= 0],
            "alpha": None if math.isnan(plan["alpha"][j]) else float(plan["alpha"][j]),
            "fitness": float(plan["fitness"][j]),
            "mean_activation": float(mean_activation[slot]),
            "cause": "senescence" if plan["escalated"][j] else "fitness",
        })
    slots = torch.as_tensor(plan["slot"], device=device)
    for producer, width in zip(producers, widths):
        rows = (slots[:, None] * width + torch.arange(width, device=device)).reshape(-1)
        journal.forget(optimizer, producer.weight, rows)
    if bias_in is not None:
        journal.forget(optimizer, bias_in, slots)
    for norm in group.norms:  # the newborns' normalisation starts afresh
        reset_norm_units(norm, slots, optimizer, journal)
    return events
