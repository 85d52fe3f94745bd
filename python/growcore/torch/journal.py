"""An undo log for the writes a structural step makes to tensors, so a step is one transaction.

Plans are applied to weights, masks and optimizer state through a :class:`Journal`, which keeps
the old values of exactly the coordinates it overwrites. If anything fails while plans are being
applied, :meth:`Journal.rollback` puts every written coordinate back, newest first. The cost is
proportional to the change (a RigL update of 30% of a layer's edges saves those edges' values,
not the layer), unlike a copy of every tensor a step might touch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from growcore.torch.optim import per_coordinate_state


def _gather(t: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    if t.is_contiguous():
        return t.view(-1).index_select(0, flat_index)
    return t[torch.unravel_index(flat_index, t.shape)]  # e.g. channels_last


def _scatter(t: torch.Tensor, flat_index: torch.Tensor, values: torch.Tensor | float) -> None:
    if t.is_contiguous():
        flat = t.view(-1)
        if isinstance(values, torch.Tensor):
            flat.index_copy_(0, flat_index, values.to(t.device, t.dtype))
        else:
            flat.index_fill_(0, flat_index, values)
    else:
        t[torch.unravel_index(flat_index, t.shape)] = values.to(t.device, t.dtype) if isinstance(values, torch.Tensor) else values


class Journal:
    """Records the old values of the coordinates it writes; :meth:`rollback` restores them."""

    def __init__(self) -> None:
        self._undo: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | Callable[[], None]] = []

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Runs ``undo`` on rollback, in order with the writes (for changes that are not
        coordinate writes, such as parameters a resize replaced)."""
        self._undo.append(undo)

    @torch.no_grad()
    def write(
        self, t: torch.Tensor, flat_index: torch.Tensor, values: torch.Tensor | float, *, was: float | None = None
    ) -> None:
        """``t.view(-1)[flat_index] = values`` (in place, whatever ``t``'s memory layout).
        ``was``: the value every one of those coordinates holds now, when the caller knows it
        (an absent edge's weight is zero), so nothing needs reading to undo the write."""
        flat_index = flat_index.to(t.device, torch.long)
        if flat_index.numel() == 0:
            return
        old: torch.Tensor | float = was if was is not None else _gather(t, flat_index)  # (a new tensor)
        self._undo.append((t, flat_index, old))  # type: ignore[arg-type]
        _scatter(t, flat_index, values)

    @torch.no_grad()
    def add(self, t: torch.Tensor, flat_index: torch.Tensor, values: torch.Tensor) -> None:
        """``t.view(-1)[flat_index] += values`` (indices unique)."""
        flat_index = flat_index.to(t.device, torch.long)
        self.write(t, flat_index, _gather(t, flat_index) + values.to(t.device, t.dtype))

    @torch.no_grad()
    def zero_state(
        self, optimizer: torch.optim.Optimizer, param: torch.Tensor, flat_index: torch.Tensor, *, was_zero: bool = False
    ) -> None:
        """Zeroes every per-coordinate optimizer state tensor of ``param`` (those of its shape:
        momentum, Adam's moments, ...) at ``flat_index``; see :mod:`growcore.torch.optim`.
        ``was_zero``: the caller knows the state is zero there already (an absent edge's)."""
        for value in per_coordinate_state(optimizer, param):
            self.write(value, flat_index, 0.0, was=0.0 if was_zero else None)

    @torch.no_grad()
    def forget(
        self,
        optimizer: torch.optim.Optimizer,
        param: torch.Tensor,
        flat_index: torch.Tensor,
        *,
        was_zero: bool = False,
        gradient: bool = True,
    ) -> None:
        """Everything a changed coordinate carries besides its value: its optimizer state and
        its pending gradient (if the optimizer step comes after the change, as when the engine's
        step is called before ``optimizer.step()``, it must not apply the old coordinate's
        gradient to the new one). ``was_zero``: as for :meth:`zero_state` (the gradient is
        read all the same: one set by hand is not masked). ``gradient=False``: the optimizer step
        of this gradient has run already, so it is left alone."""
        self.zero_state(optimizer, param, flat_index, was_zero=was_zero)
        if gradient and param.grad is not None:
            self.write(param.grad, flat_index, 0.0)

    @torch.no_grad()
    def rollback(self) -> None:
        """Restores every recorded coordinate, newest write first, and empties the journal."""
        while self._undo:
            entry = self._undo.pop()
            if callable(entry):
                entry()
            else:
                t, flat_index, old = entry
                _scatter(t, flat_index, old)

    def clear(self) -> None:
        """Forgets the recorded values (the transaction committed)."""
        self._undo.clear()
