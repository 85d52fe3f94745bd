"""Exceptions raised by growcore.

Every error subclasses :class:`GrowcoreError` and also the builtin exception a Python user would
expect (``ValueError`` or ``IndexError``), so ``except ValueError`` keeps working. Messages name
the argument at fault and the bad value. An operation that raises leaves the graph unchanged.
"""

import numbers
from typing import TypeGuard


class GrowcoreError(Exception):
    """Base class of every growcore error."""


class InvalidArgumentError(GrowcoreError, ValueError):
    """An argument has the right type but an unacceptable value."""


class OutOfRangeError(GrowcoreError, IndexError):
    """A layer, slot or neuron id is outside the valid range."""


class BlockError(GrowcoreError, ValueError):
    """A block (a, b) that should exist does not, or one that should not exist does."""


class EdgeError(GrowcoreError, ValueError):
    """An edge that should exist does not, or one that should not exist does."""


class FrozenEdgeError(EdgeError):
    """The operation would remove a frozen edge; unfreeze it first."""


class NonFiniteError(GrowcoreError, ValueError):
    """NaN or inf where a finite number is needed: prune/grow scores, or statistics fed to the
    core while strict mode is on."""


class StateDictError(GrowcoreError, ValueError):
    """A state dict or byte string is malformed, incomplete or inconsistent."""


__all__ = [
    "BlockError",
    "EdgeError",
    "FrozenEdgeError",
    "GrowcoreError",
    "InvalidArgumentError",
    "NonFiniteError",
    "OutOfRangeError",
    "StateDictError",
]


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number for an argument check: Python's and numpy's (e.g.
    ``np.float32``); a bool, which Python counts as an int, is not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer for an argument check: Python's and numpy's (e.g.
    ``np.int64``); a bool is not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
