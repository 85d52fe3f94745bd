"""Hooks that a copy of the model does not carry along.

``torch.save(model)`` pickles a module's hooks and ``copy.deepcopy(model)`` copies them, so a
closure hook would make the model unpicklable, and a copied hook would feed the original's
engine from the copy's forward passes. A :class:`CopyDropped` hook calls its function in the
original and becomes a hook that does nothing in any pickled or deep-copied model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CopyDropped:
    """Calls ``fn``; pickled or deep-copied, does nothing."""

    def __init__(self, fn: Callable[..., Any] | None) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return None if self.fn is None else self.fn(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        return (CopyDropped, (None,))

    def __deepcopy__(self, memo: Any) -> CopyDropped:
        return CopyDropped(None)
