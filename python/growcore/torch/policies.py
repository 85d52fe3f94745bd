"""Prune-and-regrow policies: when a block is updated, how many edges move, and how they are
ranked. The ranking itself is decided in the Rust core (`Graph.prune_and_grow`).

Semantics shared by every policy (configurable where a field says so):

- An update drops the ``round(fraction * nnz)`` non-frozen edges of a block with the smallest
  ``|W|`` and grows as many absent positions, so a block's density never drifts.
- A just-dropped edge may not regrow in the same update (``regrow_dropped=False``).
- Grown weights start at zero, and so does their optimizer state.
- ``fraction`` follows the schedule: ``drop_fraction`` at step 0, decayed (cosine by default) to
  0 at ``end * total_steps``; after that the structure is fixed. Updates happen every
  ``interval`` optimizer steps (not at step 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from growcore.errors import InvalidArgumentError, NonFiniteError, is_real
from growcore.torch.rules import Plan, Rule

if TYPE_CHECKING:
    from growcore.torch.engine import Plasticity
    from growcore.torch.journal import Journal

Decay = Literal["cosine", "linear", "constant"]


@dataclass(frozen=True)
class Policy(Rule):
    """Base of all connection rules (policies); ``Static`` never changes the structure. As a
    rule of :class:`growcore.torch.Plasticity` it acts on every site the engine sparsifies."""

    name: ClassVar[str] = "static"
    order: ClassVar[int] = 30
    connections: ClassVar[bool] = True
    interval: int = 100
    drop_fraction: float = 0.3
    decay: Decay = "cosine"
    end: float = 0.75
    regrow_dropped: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.interval, int) or isinstance(self.interval, bool) or self.interval < 1:
            raise InvalidArgumentError(f"interval: must be a positive integer, got {self.interval!r}")
        for name in ("drop_fraction", "end"):
            value = getattr(self, name)
            if not is_real(value) or not 0.0 <= value <= 1.0:
                raise InvalidArgumentError(f"{name}: must be a number in [0, 1], got {value!r}")
        if self.decay not in ("cosine", "linear", "constant"):
            raise InvalidArgumentError(
                f'decay: must be "cosine", "linear" or "constant", got {self.decay!r}'
            )
        if not isinstance(self.regrow_dropped, bool):
            raise InvalidArgumentError(f"regrow_dropped: must be True or False, got {self.regrow_dropped!r}")

    #: How absent positions are ranked for growth: "gradient" (|dL/dW|) or "random".
    grow: ClassVar[str] = "none"

    def fraction(self, step: int, total_steps: int) -> float:
        """The fraction of each block's edges that moves at ``step`` (0 when no update is due)."""
        if self.grow == "none" or step <= 0 or step % self.interval != 0:
            return 0.0
        stop = self.end * total_steps
        if step >= stop:
            return 0.0
        progress = step / stop
        if self.decay == "cosine":
            return self.drop_fraction * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.decay == "linear":
            return self.drop_fraction * (1.0 - progress)
        return self.drop_fraction

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.name, **asdict(self)}

    def options(self) -> dict[str, Any]:
        return asdict(self)

    # ------------------------------------------------------------------ as a rule of the engine

    def due(self, step: int, engine: Plasticity) -> bool:
        return self.fraction(step, engine.total_steps) > 0.0

    def decide(self, engine: Plasticity, step: int) -> list[Plan]:
        """Every sparse site's prune-and-regrow plan (the graph is updated as each is decided)."""
        from growcore.torch.distributed import broadcast_plan, is_distributed
        from growcore.torch.rewire import apply_rewire, decide_rewire

        fraction = self.fraction(step, engine.total_steps)
        plans: list[Plan] = []
        for site in engine.sparse_sites:
            count = round(fraction * engine.graph.block_nnz(*site.block))
            if count == 0:
                continue
            mask = site.mask
            assert mask is not None
            w = site.matrix(site.weight.detach())
            grad = engine.gradient(site) if self.grow == "gradient" else None
            g = None if grad is None else site.matrix(grad)

            def here(site: Any = site, w: torch.Tensor = w, g: Any = g, mask: torch.Tensor = mask, count: int = count) -> Any:
                try:
                    return decide_rewire(engine.graph, site.block, w, g, mask, count, self, engine.reduce_on_device)
                except NonFiniteError as e:
                    # The core names the score's position in the block; say which layer it is.
                    raise NonFiniteError(f"layer {site.name!r}: {e}") from e

            plan = broadcast_plan(here, engine.graph, site.block) if is_distributed() else here()

            def apply(journal: Journal, site: Any = site, plan: Any = plan, mask: torch.Tensor = mask) -> list[dict[str, Any]]:
                apply_rewire(plan, mask, site.weight, engine.optimizer, journal, engine.gradients_pending)
                return [{
                    "kind": "rewire",
                    "step": engine.step_count,
                    "layer": site.name,
                    "policy": self.name,
                    "fraction": fraction,
                    "dropped": int(len(plan["drop_rows"])),
                    "grown": int(len(plan["grow_rows"])),
                    "nnz": engine.graph.block_nnz(*site.block),
                }]

            plans.append(apply)
        return plans


@dataclass(frozen=True)
class Static(Policy):
    """A fixed sparse structure: the initial random mask, never updated."""

    name: ClassVar[str] = "static"


@dataclass(frozen=True)
class SET(Policy):
    """Sparse Evolutionary Training (Mocanu et al. 2018): drop the smallest magnitudes, grow at
    random (from the graph's seeded RNG)."""

    name: ClassVar[str] = "set"
    grow: ClassVar[str] = "random"


@dataclass(frozen=True)
class RigL(Policy):
    """Rigged Lottery (Evci et al. 2020): drop the smallest magnitudes, grow where the gradient
    magnitude of absent connections is largest."""

    name: ClassVar[str] = "rigl"
    grow: ClassVar[str] = "gradient"
    reads_gradient: ClassVar[bool] = True


POLICIES: dict[str, type[Policy]] = {"static": Static, "set": SET, "rigl": RigL}


def make_policy(name: str, **options: Any) -> Policy:
    """A policy by name ("static", "set", "rigl") with its options."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise InvalidArgumentError(
            f"policy: unknown policy {name!r}; expected one of {sorted(POLICIES)}"
        ) from None
    return cls(**options)
