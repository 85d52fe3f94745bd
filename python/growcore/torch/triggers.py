"""When a growing network grows: triggers fed once per optimizer step with the step's loss and
gradient norm, each answering "grow now?".

- :class:`Interval`: every ``every`` steps.
- :class:`GradVariance`: the variance of the gradient norm over consecutive windows of
  ``window`` steps; fires at the end of a window whose variance differs from the previous
  window's by more than ``change`` (relative: ``|v_k - v_{k-1}| / v_{k-1} > change``, 0.5 by
  default), the sign that training entered a new regime.
- :class:`Plateau`: the rule of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode "min",
  relative threshold) on the mean loss of consecutive windows of ``window`` steps: a window is
  an improvement when its mean is below ``best * (1 - threshold)``; after more than
  ``patience`` windows without one it fires and starts counting again.

Each is a small state machine with ``state_dict``/``load_state_dict`` for exact resume.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from growcore.errors import InvalidArgumentError, StateDictError, is_int, is_real


def _well_formed(like: Any, value: Any) -> bool:
    """Whether a saved running-state field has the kind of ``like`` (a list of numbers, a count,
    or a number or None)."""
    if isinstance(like, list):
        return isinstance(value, list) and all(is_real(v) for v in value)
    if isinstance(like, int) and not isinstance(like, bool):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value is None or is_real(value)


def _positive_int(name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        raise InvalidArgumentError(f"{name}: must be a positive integer, got {value!r}")


@dataclass
class Trigger:
    """Base of the triggers."""

    name = "trigger"
    #: Whether the trigger reads the step's loss (so a step without one is a mistake).
    needs_loss = False

    def update(self, step: int, loss: float | None, grad_norm: float | None) -> bool:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"trigger": self.name, **asdict(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Strict: the saved trigger must be this kind with these options (its ``every``,
        ``window``, ...), and its running state well formed; otherwise nothing changes."""
        mine = self.state_dict()
        if not isinstance(state, dict) or set(state) != set(mine) or state["trigger"] != self.name:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise StateDictError(f"state['trigger']: expected the fields of {self.name} {sorted(mine)}, got {got}")
        for key, value in state.items():
            if key == "trigger":
                continue
            if not key.startswith("_") and value != mine[key]:
                raise StateDictError(f"state[{key!r}]: saved {value!r}, this trigger has {mine[key]!r}")
            if key.startswith("_") and not _well_formed(mine[key], value):
                raise StateDictError(f"state[{key!r}]: malformed {value!r}")
        for key, value in state.items():
            if key != "trigger":
                setattr(self, key, list(value) if isinstance(value, list) else value)


@dataclass
class Interval(Trigger):
    """Every ``every`` optimizer steps."""

    name = "interval"
    every: int = 500

    def __post_init__(self) -> None:
        _positive_int("every", self.every)

    def update(self, step: int, loss: float | None, grad_norm: float | None) -> bool:
        return step > 0 and step % self.every == 0


@dataclass
class GradVariance(Trigger):
    """When the gradient norm's variance changes between consecutive windows by more than
    ``change`` (relative)."""

    name = "grad_variance"
    window: int = 100
    change: float = 0.5
    _values: list[float] = field(default_factory=list)
    _previous: float | None = None

    def __post_init__(self) -> None:
        _positive_int("window", self.window)
        if not (isinstance(self.change, (int, float)) and self.change > 0 and math.isfinite(self.change)):
            raise InvalidArgumentError(f"change: must be a positive number, got {self.change!r}")

    def update(self, step: int, loss: float | None, grad_norm: float | None) -> bool:
        if grad_norm is None or not math.isfinite(grad_norm):
            return False
        self._values.append(float(grad_norm))
        if len(self._values) < self.window:
            return False
        n = len(self._values)
        mean = sum(self._values) / n
        variance = sum((v - mean) ** 2 for v in self._values) / n
        self._values = []
        previous, self._previous = self._previous, variance
        if previous is None or previous <= 0.0:
            return False
        return abs(variance - previous) / previous > self.change


@dataclass
class Plateau(Trigger):
    """When the windowed mean loss has not improved by ``threshold`` (relative) for more than
    ``patience`` windows (ReduceLROnPlateau's rule)."""

    name = "plateau"
    needs_loss = True
    window: int = 100
    patience: int = 2
    threshold: float = 1e-3
    _losses: list[float] = field(default_factory=list)
    _best: float | None = None
    _bad: int = 0

    def __post_init__(self) -> None:
        _positive_int("window", self.window)
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise InvalidArgumentError(f"patience: must be a non-negative integer, got {self.patience!r}")
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold < 1.0):
            raise InvalidArgumentError(f"threshold: must be in [0, 1), got {self.threshold!r}")

    def update(self, step: int, loss: float | None, grad_norm: float | None) -> bool:
        if loss is None or not math.isfinite(loss):
            return False
        self._losses.append(float(loss))
        if len(self._losses) < self.window:
            return False
        mean = sum(self._losses) / len(self._losses)
        self._losses = []
        if self._best is None or mean < self._best * (1.0 - self.threshold):
            self._best, self._bad = mean, 0
            return False
        self._bad += 1
        if self._bad > self.patience:
            self._bad = 0
            return True
        return False


TRIGGERS: dict[str, type[Trigger]] = {"interval": Interval, "grad_variance": GradVariance, "plateau": Plateau}


def make_trigger(name: str, **options: Any) -> Trigger:
    """A trigger by name ("interval", "grad_variance", "plateau") with its options."""
    try:
        cls = TRIGGERS[name]
    except KeyError:
        raise InvalidArgumentError(f"trigger: unknown trigger {name!r}; expected one of {sorted(TRIGGERS)}") from None
    return cls(**options)
