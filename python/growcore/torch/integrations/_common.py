"""What both framework callbacks share: the engine they build and its checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growcore.errors import InvalidArgumentError
from growcore.torch.engine import Plasticity
from growcore.torch.rules import Rule


def inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a framework's wrapper (accelerate's ``AcceleratedOptimizer``,
    Lightning's ``LightningOptimizer``): the engine hooks the one whose ``step`` really runs."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidArgumentError(f"optimizer: the framework's optimizer is not a torch optimizer: {optimizer!r}")
    return optimizer


class CallbackBase:
    """What both callbacks share: the rules and options they build the engine with."""

    def __init__(self, rules: Sequence[Rule], **options: Any) -> None:
        self._holder = EngineHolder(rules, options)

    @property
    def engine(self) -> Plasticity | None:
        """The engine, once training has started."""
        return self._holder.engine


class EngineHolder:
    """Builds the engine once training starts, and carries its state across a checkpoint."""

    def __init__(self, rules: Sequence[Rule], options: dict[str, Any]) -> None:
        if "total_steps" in options:
            raise InvalidArgumentError("total_steps: the callback takes it from the trainer; leave it out")
        self.rules = list(rules)
        self.options = options
        self.engine: Plasticity | None = None
        self._pending_state: dict[str, Any] | None = None

    def start(self, model: nn.Module, optimizer: Any, total_steps: int) -> Plasticity:
        if self.engine is None:
            # (Resuming, the framework has restored the weights already: the engine's
            # load_state_dict takes care of that order.)
            self.engine = Plasticity(model, inner_optimizer(optimizer), self.rules, total_steps=int(total_steps), **self.options)
            if self._pending_state is not None:
                self.engine.load_state_dict(self._pending_state)
                self._pending_state = None
        return self.engine

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.remove()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.engine is None else self.engine.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.engine is not None:
            self.engine.load_state_dict(state)
        else:  # applied once the engine exists
            self._pending_state = state
