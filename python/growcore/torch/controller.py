"""The sparse-training controller: dynamic sparse training (static, SET, RigL) of a model's
``nn.Linear`` and ``nn.Conv2d`` layers, a preset of the plasticity engine
(:class:`growcore.torch.Plasticity` with one connection rule).

One training step with a controller::

    loss.backward()
    optimizer.step()
    controller.step()      # feed statistics, and on schedule prune and regrow

The Graph is the source of truth for the structure. Each sparsified module ``i`` is block
``(2i, 2i + 1)`` of one graph: layer ``2i`` holds the module's inputs (``in_features``, or
``in_channels * kh * kw`` for a convolution) and layer ``2i + 1`` its outputs, so a convolution is
an ``out x in*kh*kw`` block. A dense boolean mask per module lives on the weight's device as a
cache of the block, changed only at the coordinates a plan touches. Masking is bound to the
optimizer (see :mod:`growcore.torch.engine`): gradients outside the mask are zeroed as backward
accumulates them, and weights after every ``optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from growcore.errors import InvalidArgumentError, StateDictError, is_int, is_real
from growcore.torch.checkpoint import check_state, load_graph
from growcore.torch.engine import Plasticity
from growcore.torch.policies import Policy, RigL
from growcore.torch.rewire import apply_rewire, decide_rewire
from growcore.torch.rules import Event
from growcore.torch.sites import Site

__all__ = ["SparseController", "apply_rewire", "decide_rewire"]

STATE_VERSION = 1
SPARSIFIABLE = (nn.Linear, nn.Conv2d)
#: A sparsified module and its block (the engine's site).
SparseLayer = Site


class SparseController(Plasticity):
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

    site_kinds = SPARSIFIABLE
    attention_sites = False

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
        super().__init__(
            model,
            optimizer,
            [policy if policy is not None else RigL()],
            total_steps=total_steps,
            density=density,
            distribution=distribution,
            layers=layers,
            dense=dense,
            layer_density=layer_density,
            masks=masks,
            pairs=(),  # every module its own block, as documented
            seed=seed,
            stats=stats,
            saturation=saturation,
            on_event=on_event,
        )

    @property
    def policy(self) -> Policy:
        rule = self.rules[0]
        assert isinstance(rule, Policy)
        return rule

    @property
    def layers(self) -> list[Site]:
        """The sparsified modules (name, module, block, mask), in block order."""
        return self.sites

    @property
    def stats(self) -> Any:
        """The statistics hooks (None with ``stats=False``)."""
        return None if self.stats_feed is None else self.stats_feed[0]

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
        masks = [self._mask_of(l, graph) for l in self.layers]
        # Everything checked: swap in, in place (a caller may hold the graph).
        self.graph.restore(graph)
        self._step = step
        self._deferred = {}
        self._unmask(masks)
