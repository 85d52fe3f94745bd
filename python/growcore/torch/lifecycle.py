"""Neuron lifecycle for a chain of ``nn.Linear`` layers: apoptosis of unfit hidden neurons and
their replacement in place, decided in the core (``Graph.apoptosis``) and applied here.

The chain ``Linear_0, ..., Linear_{N-1}`` becomes a graph with layers ``[in_0, out_0, ...,
out_{N-1}]``: graph layer ``l`` for ``1 <= l < N`` is a hidden layer, fed by ``Linear_{l-1}``
(its incoming weights are that module's rows) and read by ``Linear_l`` (its outgoing weights are
that module's columns). Statistics are taken on each hidden layer's activations (the input of
``Linear_l``, after the activation function), so ``mean`` is the neuron's mean activation.

Replacing the neuron in slot ``s`` of hidden layer ``l``, by strategy:

- ``random``: fresh incoming weights and bias from ``nn.Linear``'s own initialisation
  (uniform in ``+-1/sqrt(fan_in)``), zero outgoing weights;
- ``mutation``: a parent's incoming weights and bias plus Gaussian noise of standard deviation
  ``noise * std(parent's incoming weights)``, zero outgoing weights;
- ``crossover``: ``alpha * p1 + (1 - alpha) * p2`` (weights and bias) plus the same noise, zero
  outgoing weights; ``alpha`` is recorded in the event;
- ``function_preserving``: fresh incoming weights, zero outgoing weights, and the dying neuron's
  mean contribution ``W_out[:, s] * mean_activation[s]`` added to the next layer's bias, so the
  output does not move for inputs at which the neuron sat at its mean activation.

The optimizer state (every tensor shaped like its parameter) of the touched rows of
``Linear_{l-1}`` (weight rows and bias entries) and columns of ``Linear_l`` is zeroed in place;
the next layer's bias is shifted but keeps its state. Noise and fresh weights come from a
``torch.Generator`` seeded with the core's per-replacement ``noise_seed``: the same seed gives the
same replacements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import growcore
from growcore import lineage
from growcore.errors import InvalidArgumentError
from growcore.torch.checkpoint import check_state, load_graph
from growcore.torch.optim import zero_state
from growcore.torch.stats import ActivationStats

STRATEGIES = ("random", "mutation", "crossover", "function_preserving")
FITNESS = ("default", "utility", "dormancy")
STATE_VERSION = 1
Event = dict[str, Any]


class Lifecycle:
    """Apoptosis and regrowth of the hidden neurons of a chain of linear layers.

    Args:
        layers: the chain, in forward order (an ``nn.Sequential`` or a list of modules; only its
            ``nn.Linear`` modules are used, and each one's ``in_features`` must equal the
            previous one's ``out_features``).
        optimizer: the optimizer of those layers' parameters (state zeroed in place, never rebuilt).
        interval: optimizer steps between apoptosis events.
        fraction: at most this fraction of each hidden layer's mature neurons dies per event.
        strategy: ``"random"``, ``"mutation"``, ``"crossover"`` or ``"function_preserving"``.
        maturity_age: neurons younger than this many steps never die (default: ``interval``).
        threshold: if set, only neurons whose normalised fitness (z-score within the layer) is
            below it die, still at most ``fraction``.
        alpha: a crossover's ``(low, high)`` range for the first parent's weight, or ``"fitness"``.
        noise: mutation and crossover noise, relative to the parent's weight standard deviation.
        end: no apoptosis from this step on (``None``: never stops).
        fitness: what apoptosis ranks by: ``"default"`` (the accumulated statistics' fitness),
            ``"utility"`` (Continual Backprop: activation magnitude x mean |outgoing weight|) or
            ``"dormancy"`` (ReDo: activation magnitude over the layer's mean).
        layer_options: per hidden layer (``"hidden1"``, ...: graph layer ``l`` is fed by the
            ``l``-th linear), overrides of ``strategy``, ``fraction``, ``maturity_age``,
            ``threshold``, ``alpha``, ``noise`` and ``fitness``: for example high turnover with
            crossover in shallow layers, function-preserving and low turnover in deep ones.
        seed: seeds the core's decisions.
        saturation: thresholds of the activation statistics (see :class:`ActivationStats`).
        on_event: called with every event.
    """

    def __init__(
        self,
        layers: nn.Sequential | Sequence[nn.Module],
        optimizer: torch.optim.Optimizer,
        *,
        interval: int = 100,
        fraction: float = 0.05,
        strategy: str = "function_preserving",
        maturity_age: int | None = None,
        threshold: float | None = None,
        alpha: tuple[float, float] | str | None = None,
        noise: float = 0.1,
        end: int | None = None,
        fitness: str = "default",
        layer_options: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        saturation: tuple[float, float] = (0.0, 2.0),
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        if len(linears) < 2:
            raise InvalidArgumentError(
                f"layers: need at least two nn.Linear modules (one hidden layer), got {len(linears)}"
            )
        for i in range(1, len(linears)):
            if linears[i].in_features != linears[i - 1].out_features:
                raise InvalidArgumentError(
                    f"layers: not a chain: linear {i} has in_features={linears[i].in_features} but "
                    f"linear {i - 1} has out_features={linears[i - 1].out_features}"
                )
        if not isinstance(interval, int) or interval < 1:
            raise InvalidArgumentError(f"interval: must be a positive integer, got {interval!r}")
        defaults = {
            "strategy": strategy,
            "fraction": fraction,
            "maturity_age": interval if maturity_age is None else maturity_age,
            "threshold": threshold,
            "alpha": alpha,
            "noise": noise,
            "fitness": fitness,
        }
        _check_options("", defaults)
        self.hidden = list(range(1, len(linears)))
        names = {f"hidden{l}": l for l in self.hidden}
        self.options: dict[int, dict[str, Any]] = {l: dict(defaults) for l in self.hidden}
        for name, overrides in (layer_options or {}).items():
            if name not in names:
                raise InvalidArgumentError(f"layer_options: unknown layer {name!r}; the hidden layers are {list(names)}")
            unknown = sorted(set(overrides) - set(defaults))
            if unknown:
                raise InvalidArgumentError(f"layer_options[{name!r}]: unknown options {unknown}; expected some of {sorted(defaults)}")
            merged = {**defaults, **overrides}
            _check_options(f"layer_options[{name!r}].", merged)
            self.options[names[name]] = merged
        self.linears = linears
        self.optimizer = optimizer
        self.interval = interval
        self.end = end
        self.on_event = on_event
        self.events: list[Event] = []
        self._step = 0
        sizes = [linears[0].in_features] + [m.out_features for m in linears]
        self.graph = growcore.Graph(sizes, 1.0, seed=seed)
        self.stats = ActivationStats([(str(l), linears[l]) for l in self.hidden], saturation, on="input")

    # ------------------------------------------------------------------ the training-loop call

    @property
    def step_count(self) -> int:
        return self._step

    def step(self) -> list[Event]:
        """Call once after every ``optimizer.step()``: feeds the step's statistics to the graph
        and, every ``interval`` steps, replaces the least fit mature hidden neurons. Returns
        this step's events."""
        self._step += 1
        self.graph.advance(1)
        self._observe()
        if self._step % self.interval != 0 or (self.end is not None and self._step >= self.end):
            return []
        events: list[Event] = []
        for layer in self.hidden:
            events += self._apoptosis(layer)
        self.events += events
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return events

    def _observe(self) -> None:
        grads = {
            str(l): self.linears[l - 1].weight.grad
            for l in self.hidden
            if self.linears[l - 1].weight.grad is not None
        }
        summaries = self.stats.collect(grads)  # type: ignore[arg-type]
        for layer in self.hidden:
            summary = summaries.get(str(layer))
            if summary:
                self.graph.observe(layer, **summary)

    @torch.no_grad()
    def _apoptosis(self, layer: int) -> list[Event]:
        options = self.options[layer]
        mean_activation = self.graph.stats(layer)["mean"]  # read before the dead lose their statistics
        incoming, outgoing = self.linears[layer - 1], self.linears[layer]
        kwargs: dict[str, Any] = {}
        if options["alpha"] is not None:
            kwargs["alpha"] = options["alpha"]
        if options["fitness"] == "utility":
            out_weight = outgoing.weight.detach().abs().mean(dim=0).double().cpu().numpy()
            kwargs["fitness"] = self.graph.fitness_scores(layer, "utility", out_weight)
        elif options["fitness"] == "dormancy":
            kwargs["fitness"] = self.graph.fitness_scores(layer, "dormancy")
        plan = self.graph.apoptosis(
            layer,
            options["fraction"],
            strategy=options["strategy"],
            threshold=options["threshold"],
            maturity_age=options["maturity_age"],
            **kwargs,
        )
        if len(plan["slot"]) == 0:
            return []
        w_in, w_out = incoming.weight, outgoing.weight
        slots = torch.as_tensor(plan["slot"], device=w_in.device)
        table = self.graph.lineage()  # ids index its rows
        # Parents are survivors, whose rows this event never writes: read them in place.
        old_in = w_in.detach()
        old_bias = incoming.bias.detach() if incoming.bias is not None else None
        events = []
        for k in range(len(plan["slot"])):
            slot, strategy = int(plan["slot"][k]), str(plan["strategy"][k])
            gen = torch.Generator().manual_seed(int(plan["noise_seed"][k]))
            row, bias = self._newborn_row(strategy, plan, k, old_in, old_bias, gen, options["noise"])
            w_in[slot] = row.to(w_in.device, w_in.dtype)
            if incoming.bias is not None and bias is not None:
                incoming.bias[slot] = bias
            if strategy == "function_preserving" and outgoing.bias is not None:
                outgoing.bias.add_(w_out[:, slot] * float(mean_activation[slot]))
            w_out[:, slot] = 0.0
            born = int(plan["born"][k])
            events.append({
                "kind": "apoptosis",
                "step": self._step,
                "layer": f"hidden{layer}",
                "slot": slot,
                "dead": int(plan["dead"][k]),
                "born": born,
                "strategy": strategy,
                "parents": [int(p) for p in (table["parent_a"][born], table["parent_b"][born]) if p >= 0],
                "parent_slots": [int(p) for p in (plan["parent_a"][k], plan["parent_b"][k]) if p >= 0],
                "alpha": None if math.isnan(plan["alpha"][k]) else float(plan["alpha"][k]),
                "fitness": float(plan["fitness"][k]),
                "mean_activation": float(mean_activation[slot]),
            })
        n_in = w_in.shape[1]
        rows = (slots[:, None] * n_in + torch.arange(n_in, device=slots.device)).reshape(-1)
        zero_state(self.optimizer, w_in, rows)
        if incoming.bias is not None:
            zero_state(self.optimizer, incoming.bias, slots)
        n_out = w_out.shape[1]
        cols = (torch.arange(w_out.shape[0], device=slots.device)[:, None] * n_out + slots).reshape(-1)
        zero_state(self.optimizer, w_out, cols)
        return events

    def _newborn_row(
        self,
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

    # ------------------------------------------------------------------ reports

    def turnover(self) -> float:
        """Replacements so far over the number of hidden neurons (can exceed 1)."""
        hidden = sum(self.graph.layer_sizes[l] for l in self.hidden)
        return sum(1 for e in self.events if e["kind"] == "apoptosis") / hidden

    def lineage_summary(self) -> dict[str, Any]:
        """Generations and descendants over the hidden neurons' lineage.

        ``neurons_ever``, ``max_generation``, ``mean_generation_alive``, and from
        :meth:`descent_summary` ``max_descendants``, ``mean_descendants`` and
        ``fitness_correlation``.
        """
        table = self.graph.lineage()
        hidden = np.isin(table["layer"], self.hidden)
        alive = hidden & (table["cause"] == "alive")
        return {
            "neurons_ever": int(hidden.sum()),
            "max_generation": int(table["generation"][hidden].max()),
            "mean_generation_alive": float(table["generation"][alive].mean()),
            **self.descent_summary(table),
        }

    def descent_summary(self, table: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Descendants through breeding and their correlation with fitness, hidden neurons only.

        ``max_descendants`` and ``mean_descendants`` are over every hidden neuron ever, counted
        by :func:`growcore.lineage.descendants` without succession links (a random or
        function-preserving newborn names the neuron it replaced as its parent but inherits
        nothing from it, so those strategies leave 0 descendants). ``fitness_correlation`` is
        :func:`growcore.lineage.evolutionary_fitness` (``n``, ``pearson``, ``spearman``; ``None``
        where undefined) over the hidden neurons with a known normalised fitness: each one killed
        by apoptosis at its death (the event's ``fitness``), each living one now.
        """
        table = self.graph.lineage() if table is None else table
        hidden = np.isin(table["layer"], self.hidden)
        fitness = lineage.death_fitness(self.events)
        for layer in self.hidden:
            fitness.update(zip(self.graph.ids(layer).tolist(), self.graph.normalized_fitness(layer).tolist()))
        counts = lineage.descendants(table, succession=False)[hidden]
        corr = lineage.evolutionary_fitness(table, fitness, succession=False)
        return {
            "max_descendants": int(counts.max()),
            "mean_descendants": float(counts.mean()),
            "fitness_correlation": {
                k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in corr.items()
            },
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "graph": self.graph.to_bytes(), "step": self._step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Strict: a missing or extra key, a wrong version or a graph that does not fit the
        layers raises :class:`growcore.StateDictError` and changes nothing."""
        step = check_state(state, {"version", "graph", "step"}, STATE_VERSION)
        graph = load_graph(state["graph"], self.graph)
        self.graph, self._step = graph, step

    def remove(self) -> None:
        self.stats.remove()


def _check_options(prefix: str, o: Mapping[str, Any]) -> None:
    """Checks one layer's apoptosis options; ``prefix`` names where they came from."""
    if o["strategy"] not in STRATEGIES:
        raise InvalidArgumentError(f"{prefix}strategy: unknown strategy {o['strategy']!r}; expected one of {list(STRATEGIES)}")
    if not isinstance(o["fraction"], (int, float)) or not 0.0 <= o["fraction"] <= 1.0:
        raise InvalidArgumentError(f"{prefix}fraction: must be in [0, 1], got {o['fraction']!r}")
    if not isinstance(o["maturity_age"], int) or o["maturity_age"] < 0:
        raise InvalidArgumentError(f"{prefix}maturity_age: must be a non-negative integer, got {o['maturity_age']!r}")
    if o["alpha"] is not None and o["strategy"] != "crossover":
        raise InvalidArgumentError(f"{prefix}alpha: only applies to the crossover strategy, not {o['strategy']!r}")
    if not isinstance(o["noise"], (int, float)) or not o["noise"] >= 0.0:
        raise InvalidArgumentError(f"{prefix}noise: must be non-negative, got {o['noise']!r}")
    if o["fitness"] not in FITNESS:
        raise InvalidArgumentError(f"{prefix}fitness: unknown fitness {o['fitness']!r}; expected one of {list(FITNESS)}")
