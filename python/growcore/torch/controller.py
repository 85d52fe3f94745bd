"""The sparse-training controller: keeps a growcore Graph in sync with a model's weights.

One training step with a controller::

    loss.backward()
    optimizer.step()
    controller.step()      # re-mask, feed statistics, and on schedule prune and regrow

The Graph is the source of truth for the structure. Each sparsified module ``i`` is block
``(2i, 2i + 1)`` of one graph: layer ``2i`` holds the module's inputs (``in_features``, or
``in_channels * kh * kw`` for a convolution) and layer ``2i + 1`` its outputs, so a convolution is
an ``out x in*kh*kw`` block. A dense boolean mask per module lives on the weight's device as a
cache of the block, changed only at the coordinates a plan touches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

import growcore
from growcore.errors import InvalidArgumentError, NonFiniteError, StateDictError, is_int, is_real
from growcore.torch.checkpoint import check_state, load_graph
from growcore.torch.distributed import broadcast_graph, broadcast_plan, is_distributed
from growcore.torch.masking import mask_in_place
from growcore.torch.rewire import apply_rewire, decide_rewire
from growcore.torch.policies import Policy, RigL
from growcore.torch.stats import ActivationStats

STATE_VERSION = 1
SPARSIFIABLE = (nn.Linear, nn.Conv2d)

Event = dict[str, Any]


@dataclass
class SparseLayer:
    """One sparsified module and its block."""

    name: str
    module: nn.Module
    block: tuple[int, int]
    mask: torch.Tensor  # bool, (out, in * kh * kw), on the weight's device

    @property
    def weight(self) -> torch.Tensor:
        return _weight(self.module)

    def matrix(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (weight-shaped) as the block's (out, in * kh * kw) matrix: a view when the
        memory layout allows (a copy for e.g. a channels_last convolution)."""
        return t.reshape(t.shape[0], -1)


class SparseController:
    """Dynamic sparse training of a model's ``nn.Linear`` and ``nn.Conv2d`` layers.

    Args:
        model: the model; its weights are masked in place at construction.
        optimizer: the optimizer of the model's parameters; its state of changed coordinates is
            zeroed at every update (it is never rebuilt).
        density: the fraction of the sparsified weights kept, in (0, 1], spread over the layers
            by ``distribution``. Under ``"uniform"`` each layer keeps ``round(density * its
            weights)``; under ``"erk"`` (the default) the layers' densities differ and only
            their total is fixed: the layers keep ``round(density * their weights)`` between
            them. Layers named in ``layer_density`` are left out of this (each keeps its own
            fraction); layers given a mask share in the spread, then keep their mask's weights
            instead, so the overall density (:attr:`actual_density`) is then not ``density``.
        policy: :class:`Static`, :class:`SET` or :class:`RigL` (default ``RigL()``).
        total_steps: the number of optimizer steps of the run (the schedule's clock).
        distribution: ``"erk"`` or ``"uniform"``, how ``density`` is spread over the layers
            (ERK: a layer's density is proportional to ``(out + in*kh*kw) / (out * in*kh*kw)``,
            capped at 1 with the excess given to the other layers, the total exact).
        layers: which modules to sparsify: ``None`` (every Linear and Conv2d), a list of
            ``fnmatch`` patterns of module names, or a list of modules.
        dense: name patterns of modules to keep dense even though ``layers`` selects them.
            Every pattern (of ``layers`` and ``dense``) must match a Linear or Conv2d module.
        layer_density: per-module densities (by exact module name) that override the rest.
        masks: per-module starting masks, a mapping from exact module name to a bool tensor
            (or numpy array, or nested lists of bools) of the weight's shape or of its
            ``(out, in*kh*kw)`` matrix shape, e.g. from a pruned model; they replace the random
            structure of those modules and fix their density.
        seed: fixes the initial structure and SET's random growth.
        stats: feed per-neuron statistics to the graph every step (see :class:`ActivationStats`).
        saturation: (low, high) thresholds of the statistics' saturation fractions, applied to
            each module's output (before its activation function).
        on_event: called with every structural event (a dict) at the end of the step that made
            it; an exception it raises propagates, with the step already complete.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        density: float,
        total_steps: int,
        policy: Policy | None = None,
        distribution: str = "erk",
        layers: Iterable[str] | Iterable[nn.Module] | None = None,
        dense: Iterable[str] = (),
        layer_density: Mapping[str, float] | None = None,
        masks: Mapping[str, torch.Tensor | np.ndarray | Sequence[Any]] | None = None,
        seed: int = 0,
        stats: bool = True,
        saturation: tuple[float, float] = (0.0, 2.0),
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if not is_real(density) or not 0.0 < density <= 1.0:
            raise InvalidArgumentError(f"density: must be in (0, 1], got {density!r}")
        if not is_int(total_steps) or total_steps < 1:
            raise InvalidArgumentError(f"total_steps: must be a positive integer, got {total_steps!r}")
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy: expected a policy object such as RigL() or SET(), got {policy!r}")
        self.model = model
        self.optimizer = optimizer
        self.policy = policy if policy is not None else RigL()
        self.total_steps = int(total_steps)
        self.density = float(density)
        self.distribution = distribution
        self.on_event = on_event
        #: Reduce RigL's candidates on the device even on CPU (always done on accelerators).
        self.reduce_on_device = False
        self._step = 0
        self.events: list[Event] = []

        chosen = _select(model, layers, dense)
        overrides = dict(layer_density or {})
        unknown = sorted(set(overrides) - {name for name, _ in chosen})
        if unknown:
            raise InvalidArgumentError(
                f"layer_density: {unknown} are not sparsified modules; they are {[n for n, _ in chosen]}"
            )
        sizes: list[int] = []
        for _, module in chosen:
            w = _weight(module)
            sizes += [int(w[0].numel()), int(w.shape[0])]
        blocks = [(2 * i, 2 * i + 1) for i in range(len(chosen))]
        block_density = {blocks[i]: overrides[name] for i, (name, _) in enumerate(chosen) if name in overrides}
        for name, d in overrides.items():
            if not is_real(d) or not 0.0 < d <= 1.0:
                raise InvalidArgumentError(f"layer_density[{name!r}]: must be in (0, 1], got {d!r}")
        given = _check_masks({} if masks is None else masks, chosen)
        self.graph = growcore.Graph(
            sizes,
            self.density,
            seed=seed,
            distribution=distribution,  # type: ignore[arg-type]  # checked by the core
            block_density=block_density,
            blocks=blocks,
        )
        for i, (name, _) in enumerate(chosen):
            if name in given:
                current = self.graph.to_dense(*blocks[i])
                drop_r, drop_c = np.nonzero(current & ~given[name])
                grow_r, grow_c = np.nonzero(given[name] & ~current)
                self.graph.rewire(*blocks[i], drop_r, drop_c, grow_r, grow_c)
        # An empty block stays empty (an update moves a fraction of its edges): a density that
        # rounds a layer's edges to 0 would leave it untrained, its output only its bias.
        empty = [(i, name) for i, (name, _) in enumerate(chosen) if self.graph.block_nnz(*blocks[i]) == 0]
        by_density = [(i, name) for i, name in empty if name not in overrides]
        if by_density:
            named = ", ".join(f"{name!r} ({sizes[2 * i + 1]} x {sizes[2 * i]})" for i, name in by_density)
            raise InvalidArgumentError(
                f"density: {density!r} leaves no weight in module(s) {named} with the {distribution} "
                "distribution, so they would train nothing; raise it, give them a layer_density, or "
                "keep them dense with dense=[...]"
            )
        if empty:  # only layers with a layer_density of their own
            i, name = empty[0]
            raise InvalidArgumentError(
                f"layer_density[{name!r}]: {overrides[name]!r} leaves module {name!r} "
                f"({sizes[2 * i + 1]} x {sizes[2 * i]}) no weight, so it would train nothing; raise it"
            )
        if is_distributed():
            self.graph = broadcast_graph(self.graph)
        self.layers = [
            SparseLayer(name, module, blocks[i], self._mask_of(blocks[i], _weight(module)))
            for i, (name, module) in enumerate(chosen)
        ]
        self.stats = ActivationStats([(l.name, l.module) for l in self.layers], saturation) if stats else None
        self.apply_masks()

    # ------------------------------------------------------------------ the training-loop call

    @property
    def step_count(self) -> int:
        """Optimizer steps seen so far."""
        return self._step

    def step(self) -> list[Event]:
        """Call once after every ``optimizer.step()``, before gradients are zeroed.

        Advances the clock, prunes and regrows on the policy's schedule (RigL reads the
        gradients still held by the weights), re-applies the masks so that every weight outside
        them is exactly zero, and feeds the step's statistics to the graph. Returns the
        structural events of this step.
        """
        fraction = self.policy.fraction(self._step + 1, self.total_steps)
        if fraction > 0.0:
            self._check_gradients()
            before = self.graph.copy()
        self._step += 1
        self.graph.advance(1)
        events: list[Event] = []
        if fraction > 0.0:
            # An update decides every layer before applying any plan; if a decision fails
            # (e.g. non-finite weights after a diverged step) the graph and clock are put back.
            try:
                plans = self._decide_all(fraction)
            except BaseException:
                # Put back in place: a caller may hold a reference to this graph object.
                self.graph.load_state_dict(before.state_dict())
                self._step -= 1
                self.apply_masks()  # the optimizer step still needs its re-masking
                raise
            events = self._apply_all(fraction, plans)
        self.apply_masks()
        if self.stats is not None:
            self._observe()
        # Last, so that an exception from the callback leaves a complete step behind.
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return events

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zeroes every weight outside its mask."""
        for layer in self.layers:
            mask_in_place(layer.weight, layer.mask)

    # ------------------------------------------------------------------ structural updates

    def _check_gradients(self) -> None:
        if self.policy.grow != "gradient":
            return
        for layer in self.layers:
            if not layer.weight.requires_grad:
                raise InvalidArgumentError(
                    f"{self.policy.name}: layer {layer.name!r} is frozen (requires_grad=False), so it has "
                    f"no gradient to grow by; keep it dense with dense=[{layer.name!r}] or use SET"
                )
            if layer.weight.grad is None:
                raise RuntimeError(
                    f"{self.policy.name}: layer {layer.name!r} has no gradient; call "
                    "controller.step() after loss.backward() and optimizer.step(), before zero_grad()"
                )

    @torch.no_grad()
    def _decide_all(self, fraction: float) -> list[tuple[SparseLayer, dict[str, np.ndarray]]]:
        """Every layer's plan (the graph is updated as each is decided)."""
        plans = []
        for layer in self.layers:
            count = round(fraction * self.graph.block_nnz(*layer.block))
            if count > 0:
                plans.append((layer, self._decide(layer, count)))
        return plans

    @torch.no_grad()
    def _apply_all(self, fraction: float, plans: list[tuple[SparseLayer, dict[str, np.ndarray]]]) -> list[Event]:
        events = []
        for layer, plan in plans:
            self._apply(layer, plan)
            event = {
                "kind": "rewire",
                "step": self._step,
                "layer": layer.name,
                "policy": self.policy.name,
                "fraction": fraction,
                "dropped": int(len(plan["drop_rows"])),
                "grown": int(len(plan["grow_rows"])),
                "nnz": self.graph.block_nnz(*layer.block),
            }
            events.append(event)
        self.events.extend(events)
        return events

    def _decide(self, layer: SparseLayer, count: int) -> dict[str, np.ndarray]:
        """The core's plan for one layer; rank 0's plan on every rank when distributed."""
        if is_distributed():
            return broadcast_plan(lambda: self._decide_here(layer, count), self.graph, layer.block)
        return self._decide_here(layer, count)

    def _decide_here(self, layer: SparseLayer, count: int) -> dict[str, np.ndarray]:
        w = layer.matrix(layer.weight.detach())
        grad = layer.weight.grad
        g = None if grad is None else layer.matrix(grad.detach())
        try:
            return decide_rewire(self.graph, layer.block, w, g, layer.mask, count, self.policy, self.reduce_on_device)
        except NonFiniteError as e:
            # The core names the score's position in the block; say which layer it is.
            raise NonFiniteError(f"layer {layer.name!r}: {e}") from e

    def _apply(self, layer: SparseLayer, plan: Mapping[str, np.ndarray]) -> None:
        apply_rewire(plan, layer.mask, layer.weight, self.optimizer)

    # ------------------------------------------------------------------ statistics

    def _observe(self) -> None:
        assert self.stats is not None
        grads, norms = {}, {}
        for layer in self.layers:
            grad = layer.weight.grad
            if grad is None:
                continue
            if grad.device.type == "cpu":
                # The core reads the kept weights' gradients in place, one read per edge.
                g = layer.matrix(grad.detach()).to(torch.float32)
                norms[layer.name] = self.graph.row_norms(*layer.block, g.numpy())
            else:
                grads[layer.name] = layer.matrix(grad)
        summaries = self.stats.collect(grads, {l.name: l.mask for l in self.layers}, grad_norms=norms)
        for layer in self.layers:
            summary = summaries.get(layer.name)
            if summary is not None:
                self.graph.observe(layer.block[1], **summary)

    # ------------------------------------------------------------------ queries

    def masks(self) -> dict[str, torch.Tensor]:
        """Each sparsified module's mask, weight-shaped, by module name."""
        return {l.name: l.mask.view_as(l.weight) for l in self.layers}

    def density_report(self) -> dict[str, float]:
        """Actual density per sparsified module, from the graph."""
        return {l.name: self.graph.density(*l.block) for l in self.layers}

    @property
    def actual_density(self) -> float:
        """Kept weights over all sparsified weights."""
        return self.graph.nnz / sum(l.mask.numel() for l in self.layers)

    def active_params(self) -> int:
        """Parameters that can be nonzero: kept weights, plus every parameter not sparsified."""
        sparse = {id(l.weight) for l in self.layers}
        others = sum(p.numel() for p in self.model.parameters() if id(p) not in sparse)
        return self.graph.nnz + others

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: graph (structure, statistics, RNG), step, policy."""
        return {
            "version": STATE_VERSION,
            "graph": self.graph.to_bytes(),
            "step": self._step,
            "total_steps": self.total_steps,
            "policy": self.policy.to_dict(),
            "layers": [l.name for l in self.layers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict`; strict: anything missing, extra or inconsistent with
        this controller's model raises :class:`growcore.StateDictError` and changes nothing."""
        step = check_state(state, {"version", "graph", "step", "total_steps", "policy", "layers"}, STATE_VERSION)
        names = [l.name for l in self.layers]
        saved = state["layers"]
        if not isinstance(saved, (list, tuple)) or not all(isinstance(n, str) for n in saved):
            # (a string would compare as the list of its characters: "024" as ['0', '2', '4'])
            raise StateDictError(f"state['layers']: expected a list of module names (str), got {saved!r}")
        if list(saved) != names:
            raise StateDictError(f"state['layers']: saved for {list(saved)}, this controller has {names}")
        if state["policy"] != self.policy.to_dict():
            raise StateDictError(f"state['policy']: saved {state['policy']}, this controller has {self.policy.to_dict()}")
        if not is_int(state["total_steps"]):
            raise StateDictError(f"state['total_steps']: expected an integer, got {state['total_steps']!r}")
        if state["total_steps"] != self.total_steps:
            raise StateDictError(
                f"state['total_steps']: saved {state['total_steps']!r}, this controller has {self.total_steps} "
                "(the schedule depends on it, so a resumed run would not continue the saved one)"
            )
        graph = load_graph(state["graph"], self.graph)
        if graph.step != step:
            raise StateDictError(f"state['step']: {step}, but the saved graph is at step {graph.step}")
        masks = [self._mask_of(l.block, l.weight, graph) for l in self.layers]
        # Everything checked: swap in.
        self.graph = graph
        self._step = step
        for layer, mask in zip(self.layers, masks):
            layer.mask = mask
        self.apply_masks()

    def remove(self) -> None:
        """Detaches the statistics hooks."""
        if self.stats is not None:
            self.stats.remove()

    # ------------------------------------------------------------------ helpers

    def _mask_of(self, block: tuple[int, int], weight: torch.Tensor, graph: growcore.Graph | None = None) -> torch.Tensor:
        dense = (graph or self.graph).to_dense(*block)
        return torch.from_numpy(dense).to(weight.device).view(weight.shape[0], -1)


def _select(
    model: nn.Module, layers: Iterable[str] | Iterable[nn.Module] | None, dense: Iterable[str]
) -> list[tuple[str, nn.Module]]:
    candidates: list[tuple[str, nn.Module]] = [
        (n, m) for n, m in model.named_modules() if isinstance(m, SPARSIFIABLE)
    ]
    if isinstance(layers, str) or isinstance(dense, str):
        which, value = ("layers", layers) if isinstance(layers, str) else ("dense", dense)
        raise TypeError(f"{which}: expected a list of name patterns, got the string {value!r}; write [{value!r}]")
    if layers is None:
        chosen = candidates
    else:
        wanted = list(layers)
        if all(isinstance(x, nn.Module) for x in wanted):
            ids = {id(x) for x in wanted}
            chosen = [(n, m) for n, m in candidates if id(m) in ids]
            if len(chosen) != len(ids):
                raise InvalidArgumentError("layers: some modules are not nn.Linear or nn.Conv2d modules of the model")
        elif all(isinstance(x, str) for x in wanted):
            patterns = _patterns("layers", wanted, candidates)
            chosen = [(n, m) for n, m in candidates if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        else:
            odd = [x for x in wanted if not isinstance(x, (str, nn.Module))]
            if odd:
                raise TypeError(f"layers: expected name patterns (str) or modules, got {odd[0]!r}")
            raise TypeError("layers: expected name patterns or modules, not a mix")
    skip = _patterns("dense", list(dense), candidates)
    chosen = [(n, m) for n, m in chosen if not any(fnmatch.fnmatchcase(n, p) for p in skip)]
    if not chosen:
        raise InvalidArgumentError(
            f"layers: no nn.Linear or nn.Conv2d module matches {layers!r} (dense={skip!r}); "
            f"the model has {[n for n, _ in candidates]}"
        )
    owner: dict[int, str] = {}
    for name, module in chosen:
        if parametrize.is_parametrized(module, "weight"):
            raise InvalidArgumentError(
                f"layers: module {name!r} has a parametrized weight (e.g. weight_norm), which the "
                "controller cannot mask in place; leave it out with dense=[...]"
            )
        w = _weight(module)
        if w.numel() == 0:
            raise InvalidArgumentError(f"layers: module {name!r} has an empty weight of shape {tuple(w.shape)}")
        if id(w) in owner:
            raise InvalidArgumentError(
                f"layers: modules {owner[id(w)]!r} and {name!r} share one weight; sparsify one of them "
                "(layers=[...] or dense=[...])"
            )
        owner[id(w)] = name
    return chosen


def _patterns(which: str, patterns: list[Any], candidates: list[tuple[str, nn.Module]]) -> list[str]:
    """``patterns``, each a string that matches the name of at least one of ``candidates`` (a
    pattern that matches nothing is most likely a typo, which would silently change the run)."""
    names = [n for n, _ in candidates]
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{which}: expected name patterns (str), got {p!r}")
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InvalidArgumentError(
                f"{which}: the pattern {p!r} matches no nn.Linear or nn.Conv2d module; the model has {names}"
            )
    return patterns


def _check_masks(masks: Any, chosen: list[tuple[str, nn.Module]]) -> dict[str, np.ndarray]:
    """The given masks as (out, in*kh*kw) bool arrays, all checked before any is used."""
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks: expected a mapping of module name to bool mask, e.g. {{'0': mask}}, got {type(masks).__name__}"
        )
    modules = dict(chosen)
    out = {}
    for name, mask in masks.items():
        if name not in modules:
            raise InvalidArgumentError(f"masks: {name!r} is not a sparsified module; they are {list(modules)}")
        w = _weight(modules[name])
        matrix = (w.shape[0], w[0].numel())
        try:
            # A tensor, a numpy array or nested lists of bools.
            t = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"masks[{name!r}]: expected a bool tensor or array, got {type(mask).__name__} ({e})"
            ) from None
        if t.dtype != torch.bool:
            raise TypeError(f"masks[{name!r}]: expected a bool tensor, got dtype {t.dtype}")
        if tuple(t.shape) not in (tuple(w.shape), matrix):
            raise InvalidArgumentError(
                f"masks[{name!r}]: shape {tuple(t.shape)} fits neither the weight {tuple(w.shape)} nor its matrix {matrix}"
            )
        if not bool(t.any()):
            # An empty block stays empty: an update moves a fraction of its edges, i.e. none.
            raise InvalidArgumentError(
                f"masks[{name!r}]: the mask is all False, so module {name!r} would have no weight to "
                "train (an update moves a fraction of a layer's edges, so none would ever grow); "
                f"give it at least one True, or leave {name!r} out of the controller with dense=[{name!r}]"
            )
        out[name] = t.detach().cpu().reshape(matrix).numpy()
    return out


def _weight(module: nn.Module) -> torch.Tensor:
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w
