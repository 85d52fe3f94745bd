"""The rule base class: what every structural rule of the engine implements.

A rule is a small object that, when due, asks the core for decisions and returns *plans*; the
engine (:class:`growcore.torch.Plasticity`) owns everything else: the graph, the clock, the
statistics, the optimizer hooks, the transaction and the event stream.

The order in which rules act within one step (:attr:`Rule.order`, smaller first) is fixed and
does not depend on the order of the ``rules`` list:

1. ``Senescence`` (10): samples fitness, marks flat senior neurons, escalates old senescent ones;
2. ``Apoptosis`` (20): replaces the least fit mature neurons and the escalated senescent ones;
3. connection rules ``Static``/``SET``/``RigL`` (30): prune and regrow edges;
4. ``Growth`` (40): adds neurons and edges to a ``GrowingMLP`` (last: it resizes tensors).

Every due rule decides (on the weights as they were after the optimizer step) before any plan is
applied, and plans are applied in the same order. So a newborn neuron's row that RigL regrows an
edge into gets the grown edge at zero, as every grown edge does, and a site's density is exact
whatever else acts on it (neuron replacement never changes the edges).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from growcore.torch.engine import Plasticity
    from growcore.torch.journal import Journal

Event = dict[str, Any]
#: A decided change, applied later through the step's journal; returns its events.
Plan = Callable[["Journal"], list[Event]]


class Rule:
    """Base of the engine's rules. Subclasses set :attr:`name` and :attr:`order` and implement
    :meth:`due` and :meth:`decide`; the other methods have defaults that do nothing."""

    name: ClassVar[str] = "rule"
    order: ClassVar[int] = 50
    #: Whether the rule changes which edges exist (and so needs masks on its sites).
    connections: ClassVar[bool] = False
    #: Whether the rule reads the dense gradient of its sites when it decides.
    reads_gradient: ClassVar[bool] = False
    #: Whether :meth:`due` changes the rule's state (a trigger fed every step): the engine then
    #: keeps a snapshot of it from before the call, to undo a failed step.
    stateful_due: ClassVar[bool] = False

    def bind(self, engine: Plasticity) -> None:
        """Checks the rule against the engine's sites; raises on misuse. Called once."""

    def due(self, step: int, engine: Plasticity) -> bool:
        """Whether the rule acts at ``step`` (1-based: the step being completed)."""
        raise NotImplementedError

    def decide(self, engine: Plasticity, step: int) -> list[Plan]:
        """The rule's decisions at ``step`` (the step it was due at, if it was deferred). It may
        change the graph (the engine restores it if the step fails); tensors are changed only by
        the returned plans."""
        raise NotImplementedError

    def end_step(self, engine: Plasticity) -> None:
        """Called at the end of every step, after the plans were applied (still inside the
        step's transaction)."""

    def after_optimizer_step(self, engine: Plasticity) -> None:
        """Called after every ``optimizer.step()``, after the masks are re-applied."""

    def before_optimizer_step(self, engine: Plasticity) -> None:
        """Called before every ``optimizer.step()``."""

    def options(self) -> dict[str, Any]:
        """The rule's options, for checkpoints (a resumed run must be built the same way)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, **self.options()}

    def state_dict(self) -> Any:
        """The rule's own state (beyond the graph), or None."""
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restores :meth:`state_dict`; only called with a value that :meth:`check_state` passed."""

    def check_state(self, state: Any) -> None:
        """Raises :class:`growcore.StateDictError` if ``state`` cannot be loaded."""

    def snapshot(self) -> Any:
        """What :meth:`restore` needs to undo a failed step (default: :meth:`state_dict`)."""
        return self.state_dict()

    def restore(self, snapshot: Any) -> None:
        self.load_state_dict(snapshot)
