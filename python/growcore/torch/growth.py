"""Growth of a :class:`GrowingMLP` where it saturates: extrema detection, cloning and routing
decided in the core (``Graph.extrema``, ``Graph.grow``), applied here to the weights and the
optimizer, with triggers, an optional Katz guidance and a Braess guard.

One training step::

    loss.backward()
    optimizer.step()
    grower.step(loss)      # re-mask, feed statistics, and when the trigger fires, grow

At a growth event, every hidden layer's extrema are read from the accumulated statistics
(taken on each hidden layer's activations, with the saturation thresholds of the activation's
preset), the core plans clones and routes and applies them to the graph, and this class mirrors
them on the tensors:

- a **vertical** clone ``C`` of ``X`` (layer ``l``) in layer ``l + 1`` gets ``X``'s incoming
  weights and bias times ``gain`` (0.7) and zero outgoing weights: the output does not move;
- a **horizontal** clone (Net2Net split) gets ``X``'s incoming weights and bias, and each of
  ``X``'s outgoing weights ``w`` is split into ``r * w`` (kept by ``X``) and ``(1 - r) * w``
  (given to ``C``) with ``r = 0.5 + noise * N(0, 1)`` per edge (``noise`` 0.05 breaks the
  symmetry of the two copies; the sum is ``w`` to float precision, so the output does not move);
- a **route** is a new edge at weight ``route_init`` (0) whose optimizer state starts at zero.

Incoming weights are copied before any outgoing weight is split, so several clones in one event
preserve the function together. The optimizer state of every pre-existing coordinate survives
untouched (a routed edge's coordinate is the exception: it restarts at zero, as after RigL's
growth).

The **Braess guard** (``braess={"window": W, "threshold": t}``): the mean loss of the ``W``
steps after a growth event is compared with the ``W`` before it; if it is worse by more than
``t`` (relative), the event is rolled back: its routes that still exist are removed, each
horizontal clone's outgoing weights are merged back into its source (the inverse of the split)
and every clone is removed with its edges, and the blocks the event created go if empty. No
growth happens while a guard is pending (trigger fires in that time are dropped, not
postponed). Pass the step's loss to :meth:`Grower.step` (required with the guard on).

**Katz guidance** (``katz=True``, or a mapping of :func:`growcore.katz` options): Katz
centrality over ``|W|`` steers the event: the most central extrema are cloned first and get
more routes (see ``Graph.grow``).

**Selection** ``"random"`` is the ablation: each layer's high and low sets are drawn uniformly
at random with the sizes the extrema would have had, so the network grows by as much; only
which neurons are cloned and routed differs.

A vertical clone of the last hidden layer would land in the outputs, so it has none; with
``clone_type="vertical"`` a network of few hidden layers clones little. A ``growth`` event is
logged every time the trigger fires, with its clone and route counts, even when both are 0
(nothing saturated, or every limit reached).

Events: ``growth`` (one per event: trigger, counts, sizes), ``clone`` (one per clone), ``route``
(one per routed edge), ``rollback``, and ``rewire`` when a prune-and-regrow ``policy`` (SET,
RigL) also runs on every block.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

import growcore
from growcore.errors import InvalidArgumentError, StateDictError, is_int, is_real
from growcore.torch.checkpoint import check_config, check_state
from growcore.torch.distributed import all_reduce_mean, is_distributed
from growcore.torch.engine import Plasticity
from growcore.torch.growing import GrowingMLP
from growcore.torch.policies import Policy
from growcore.torch.rules import Event, Plan, Rule
from growcore.torch.triggers import Interval, Trigger

if TYPE_CHECKING:
    from growcore.torch.journal import Journal

STATE_VERSION = 2
SELECTIONS = ("extrema", "random")


@dataclass
class Growth(Rule):
    """Grow a :class:`GrowingMLP` where it saturates, when ``trigger`` fires (see the module
    docs for the clones, routes, Katz guidance and the Braess guard). The options are those of
    :class:`Grower`."""

    name: ClassVar[str] = "growth"
    order: ClassVar[int] = 40
    stateful_due: ClassVar[bool] = True
    trigger: Trigger = field(default_factory=lambda: Interval(500))
    clone_type: str = "both"
    clone_budget: int = 4
    gain: float = 0.7
    noise: float = 0.05
    radius: int = 3
    routes_per_source: int = 2
    max_routes: int | None = None
    fan_in_cap: int | None = None
    load: str = "fan_in"
    max_layer_size: int | None = None
    max_params: int | None = None
    epsilon: float = 0.05
    saturation: tuple[float, float] | None = None
    extrema: Mapping[str, Any] | None = None
    katz: bool | Mapping[str, Any] = False
    selection: str = "extrema"
    braess: bool | Mapping[str, Any] | None = None
    route_init: float = 0.0
    seed: int = 0
    _recent: deque[float] = field(default_factory=deque, init=False, repr=False, compare=False)
    _pending: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _verdict_due: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("gain", "noise"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidArgumentError(f"{name}: must be a finite non-negative number, got {value!r}")
        if not isinstance(self.route_init, (int, float)) or not math.isfinite(self.route_init):
            raise InvalidArgumentError(f"route_init: must be a finite number, got {self.route_init!r}")
        if self.selection not in SELECTIONS:
            raise InvalidArgumentError(f"selection: expected one of {SELECTIONS}, got {self.selection!r}")
        if not is_int(self.seed) or not 0 <= self.seed < 2**64:
            raise InvalidArgumentError(f"seed: must be an integer in [0, 2**64), got {self.seed!r}")
        if not isinstance(self.trigger, Trigger):
            raise TypeError(f"trigger: expected a Trigger (e.g. Interval(500), or make_trigger(name)), got {self.trigger!r}")
        self.gain, self.noise, self.route_init = float(self.gain), float(self.noise), float(self.route_init)
        self.katz_options = _katz_options(self.katz)
        self.braess_options = _braess_options(self.braess)
        self.extrema_options = dict(self.extrema or {})
        self._recent = deque(maxlen=self.braess_options["window"] if self.braess_options else 1)

    @property
    def grow_options(self) -> dict[str, Any]:
        """The options of ``Graph.grow``."""
        return {
            "clone_type": self.clone_type,
            "clone_budget": self.clone_budget,
            "max_layer_size": self.max_layer_size,
            "max_params": self.max_params,
            "radius": self.radius,
            "routes_per_source": self.routes_per_source,
            "max_routes": self.max_routes,
            "fan_in_cap": self.fan_in_cap,
            "load": self.load,
        }

    def options(self) -> dict[str, Any]:
        return {
            "trigger": {k: v for k, v in self.trigger.state_dict().items() if not k.startswith("_")},
            "grow": self.grow_options,
            "extrema": dict(self.extrema_options),
            "katz": None if self.katz_options is None else dict(self.katz_options),
            "saturation": None if self.saturation is None else list(self.saturation),
            "epsilon": self.epsilon,
            "selection": self.selection,
            "gain": self.gain,
            "noise": self.noise,
            "route_init": self.route_init,
            "braess": None if self.braess_options is None else dict(self.braess_options),
            "seed": self.seed,
        }

    def thresholds(self, activation: str) -> tuple[float, float]:
        """The saturation thresholds of its statistics: ``saturation``, else the activation's
        preset with radius ``epsilon``."""
        low, high = self.saturation if self.saturation is not None else (None, None)
        return tuple(growcore.saturation_thresholds(activation, self.epsilon, low=low, high=high))  # type: ignore[arg-type, return-value]

    def bind(self, engine: Plasticity) -> None:
        model = engine.model
        if not isinstance(model, GrowingMLP):
            raise TypeError(
                f"Growth: the model must be a GrowingMLP (whose graph can gain neurons and blocks), got "
                f"{type(model).__name__}"
            )
        check_options(model.num_layers, model.activation, self.grow_options, self.extrema_options)

    # ------------------------------------------------------------------ when

    def due(self, step: int, engine: Plasticity) -> bool:
        """Feeds the trigger (every step); due when it fires with no Braess verdict pending, or
        when the pending verdict's window is complete."""
        loss, grad_norm = engine.loss, engine.gradient_norm()
        fire = self.trigger.update(step, loss, grad_norm)
        self._verdict_due = False
        if self._pending is not None:
            if loss is not None:
                self._pending["after"].append(loss)
            self._verdict_due = len(self._pending["after"]) >= self.braess_options["window"]  # type: ignore[index]
            due = self._verdict_due
        else:
            due = fire
        return due

    def end_step(self, engine: Plasticity) -> None:
        if engine.loss is not None:  # the last `window` losses before an event, guard or not
            self._recent.append(engine.loss)

    def decide(self, engine: Plasticity, step: int) -> list[Plan]:
        return [self._judge(engine) if self._verdict_due else self.plan(engine, self.trigger.name)]

    # ------------------------------------------------------------------ growth

    def high_low(self, engine: Plasticity) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Each hidden layer's high and low extrema (slots, strongest first)."""
        model = engine.model
        assert isinstance(model, GrowingMLP)
        high, low = {}, {}
        for layer in range(1, model.num_layers - 1):
            e = model.graph.extrema(layer, model.activation, **self.extrema_options)  # type: ignore[arg-type]
            high[layer], low[layer] = e["high"], e["low"]
        return high, low

    def random_sets(
        self, engine: Plasticity, high: dict[int, np.ndarray], low: dict[int, np.ndarray]
    ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        rng = np.random.default_rng([self.seed, engine.step_count])
        sizes = engine.graph.layer_sizes
        for layer in high:
            order = rng.permutation(sizes[layer])
            n_high, n_low = len(high[layer]), len(low[layer])
            high[layer], low[layer] = order[:n_high], order[n_high : n_high + n_low]
        return high, low

    def katz_scores(self, engine: Plasticity) -> np.ndarray:
        model = engine.model
        assert isinstance(model, GrowingMLP)
        weights = {}
        for key in model.blocks():
            indptr, indices = model.graph.csr(*key)
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            w = model.weight(key).detach().abs()
            weights[key] = w[torch.as_tensor(rows), torch.as_tensor(indices)].double().cpu().numpy()
        return growcore.katz(model.graph, weights=weights, **(self.katz_options or {}))

    @torch.no_grad()
    def plan(self, engine: Plasticity, cause: str) -> Plan:
        """Decides one growth event now (the graph grows) and returns the plan that mirrors it on
        the tensors."""
        model = engine.model
        assert isinstance(model, GrowingMLP)
        high, low = self.high_low(engine)
        if self.selection == "random":
            high, low = self.random_sets(engine, high, low)
        katz = self.katz_scores(engine) if self.katz_options is not None else None
        sizes_before = model.sizes
        decided = model.graph.grow(high, low, katz=katz, **self.grow_options)

        @torch.no_grad()
        def apply(journal: Journal) -> list[Event]:
            _resize(engine, journal)
            self._apply_clones(model, decided["clones"])
            for key, rows, cols in _by_block(decided["routes"]):
                _set_edges(model.weight(key), rows, cols, self.route_init, engine.optimizer, journal)
            events = self._events_of(engine, decided, cause, sizes_before)
            if self.braess_options is not None and (len(decided["clones"]["id"]) or len(decided["routes"]["src_slot"])):
                before = float(np.mean(self._recent)) if self._recent else None
                self._pending = {"step": engine.step_count, "plan": _plain(decided), "before": before, "after": []}
            return events

        return apply

    @torch.no_grad()
    def _apply_clones(self, model: GrowingMLP, clones: Mapping[str, np.ndarray]) -> None:
        """Every incoming copy first, from the weights as they were; then the outgoing splits
        (all on parameters the resize made: a failed step discards them)."""
        n = len(clones["id"])
        for i in range(n):
            src_layer, src, layer, slot = (int(clones[k][i]) for k in ("source_layer", "source_slot", "layer", "slot"))
            scale = self.gain if clones["vertical"][i] else 1.0
            for a, b in model.blocks():
                if b == src_layer and model.graph.has_block(a, layer):
                    target = model.weight((a, layer))
                    row = model.weight((a, b))[src]
                    target[slot] = row * scale * model.masks[(a, layer)][slot]
            model.bias(layer)[slot] = model.bias(src_layer)[src] * scale
        for i in range(n):
            if clones["vertical"][i]:
                continue
            layer, src, slot = (int(clones[k][i]) for k in ("layer", "source_slot", "slot"))
            generator = torch.Generator().manual_seed(int(clones["noise_seed"][i]) % (1 << 63))
            for a, b in model.blocks():
                if a != layer:
                    continue
                w = model.weight((a, b))
                ratio = 0.5 + self.noise * torch.randn(w.shape[0], generator=generator, dtype=torch.float64)
                # Only the source's edges before the event split (the clone has exactly those):
                # a row new in this event (another clone's copy) keeps its full weight.
                shared = model.masks[(a, b)][:, slot]
                ratio = torch.where(shared, ratio.to(device=w.device, dtype=w.dtype), 1.0)
                column = w[:, src].clone()
                w[:, src] = column * ratio
                w[:, slot] = column * (1 - ratio) * shared
        model.apply_masks()

    def _events_of(self, engine: Plasticity, plan: Mapping[str, Any], cause: str, sizes_before: list[int]) -> list[Event]:
        step = engine.step_count
        model = engine.model
        assert isinstance(model, GrowingMLP)
        clones, routes = plan["clones"], plan["routes"]
        events: list[Event] = [
            {
                "kind": "growth",
                "step": step,
                "cause": cause,
                "clones": int(len(clones["id"])),
                "routes": int(len(routes["src_slot"])),
                "new_blocks": [list(k) for k in plan["new_blocks"]],
                "sizes_before": sizes_before,
                "sizes": model.sizes,
                "nnz": int(model.graph.nnz),
            }
        ]
        for i in range(len(clones["id"])):
            events.append(
                {
                    "kind": "clone",
                    "step": step,
                    "type": "vertical" if clones["vertical"][i] else "horizontal",
                    "source_layer": int(clones["source_layer"][i]),
                    "source_slot": int(clones["source_slot"][i]),
                    "source_id": int(clones["source_id"][i]),
                    "layer": int(clones["layer"][i]),
                    "slot": int(clones["slot"][i]),
                    "id": int(clones["id"][i]),
                }
            )
        for i in range(len(routes["src_slot"])):
            events.append(
                {"kind": "route", "step": step, **{k: int(routes[k][i]) for k in ("src_layer", "src_slot", "dst_layer", "dst_slot")}}
            )
        return events

    # ------------------------------------------------------------------ the Braess guard

    def _judge(self, engine: Plasticity) -> Plan:
        pending, self._pending = self._pending, None
        assert pending is not None and self.braess_options is not None
        before, after = pending["before"], float(np.mean(pending["after"]))
        if before is None or after <= before * (1.0 + self.braess_options["threshold"]):
            return lambda journal: []

        def apply(journal: Journal) -> list[Event]:
            removed = self._rollback(engine, pending["plan"], journal)
            model = engine.model
            assert isinstance(model, GrowingMLP)
            return [
                {
                    "kind": "rollback",
                    "step": engine.step_count,
                    "event_step": pending["step"],
                    "loss_before": before,
                    "loss_after": after,
                    **removed,
                    "sizes": model.sizes,
                    "nnz": int(model.graph.nnz),
                }
            ]

        return apply

    @torch.no_grad()
    def _rollback(self, engine: Plasticity, plan: Mapping[str, Any], journal: Journal) -> dict[str, int]:
        model = engine.model
        assert isinstance(model, GrowingMLP)
        graph = model.graph
        routes_removed = 0
        for (a, b), rows, cols in _by_block(plan["routes"]):
            if not graph.has_block(a, b):
                continue
            present = graph.has_edges(a, b, rows, cols)
            rows, cols = rows[present], cols[present]
            graph.remove_edges(a, b, rows, cols)
            _set_edges(model.weight((a, b)), rows, cols, 0.0, engine.optimizer, journal)
            routes_removed += len(rows)
        clones = plan["clones"]
        ids = np.asarray(clones["id"], dtype=np.int64)
        slot_of = graph.lineage()["slot"]  # -1 once dead
        alive = slot_of[ids] >= 0
        # Merge each surviving horizontal clone's outgoing weights back into its source.
        for i in np.flatnonzero(alive & ~np.asarray(clones["vertical"], dtype=bool)):
            layer, slot, src = int(clones["layer"][i]), int(slot_of[ids[i]]), int(slot_of[clones["source_id"][i]])
            if src < 0:
                continue
            for a, b in model.blocks():
                if a == layer:
                    weight = model.weight((a, b))
                    starts = torch.arange(weight.shape[0], device=weight.device) * weight.shape[1]
                    journal.add(weight, starts + src, weight[:, slot].clone())
        by_layer: dict[int, list[int]] = {}
        for i in np.flatnonzero(alive):
            by_layer.setdefault(int(clones["layer"][i]), []).append(int(slot_of[ids[i]]))
        _keep_params(engine, journal)
        for layer, slots in sorted(by_layer.items()):
            kept = graph.remove_neurons(layer, slots)
            model.keep_slots(layer, kept, engine.optimizer)
        for a, b in plan["new_blocks"]:
            if graph.has_block(a, b) and graph.block_nnz(a, b) == 0:
                graph.remove_block(a, b)
        model.sync(engine.optimizer)
        engine.refresh()
        return {"clones_removed": int(alive.sum()), "routes_removed": routes_removed}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Any:
        return {"trigger": self.trigger.state_dict(), "recent": list(self._recent), "pending": _pending_copy(self._pending)}

    def check_state(self, state: Any) -> None:
        if not isinstance(state, Mapping) or set(state) != {"trigger", "recent", "pending"}:
            raise StateDictError(f"state (growth): expected the keys ['pending', 'recent', 'trigger'], got {state!r:.100}")
        _pending_copy(state["pending"])
        recent = state["recent"]
        if not isinstance(recent, (list, tuple)) or not all(is_real(x) for x in recent):
            raise StateDictError(f"state['recent']: expected a list of losses, got {type(recent).__name__}")
        if not isinstance(state["trigger"], Mapping):
            raise StateDictError(f"state['trigger']: expected a dict, got {type(state['trigger']).__name__}")
        probe = type(self.trigger)(**{k: v for k, v in self.trigger.state_dict().items() if k != "trigger" and not k.startswith("_")})
        probe.load_state_dict(dict(state["trigger"]))  # checks it without changing this trigger

    def load_state_dict(self, state: Any) -> None:
        self.trigger.load_state_dict(dict(state["trigger"]))
        self._recent = deque((float(x) for x in state["recent"]), maxlen=self._recent.maxlen)
        self._pending = _pending_copy(state["pending"])


def _keep_params(engine: Plasticity, journal: Journal) -> None:
    """Records the model's parameters, the optimizer's param groups and state, so a failed step
    can put them back after a resize replaced them (the engine restores the graph and masks)."""
    model, optimizer = engine.model, engine.optimizer
    assert isinstance(model, GrowingMLP)
    params = list(model.params.items())
    groups = [list(g["params"]) for g in optimizer.param_groups]
    state = {p: optimizer.state[p] for _, p in params if p in optimizer.state}

    def undo() -> None:
        current = {id(p) for _, p in model.params.items()}
        for p in list(optimizer.state):
            if id(p) in current and p not in state:
                del optimizer.state[p]
        for key in list(model.params.keys()):
            del model.params[key]
        for key, p in params:
            model.params[key] = p
        for g, kept in zip(optimizer.param_groups, groups):
            g["params"] = kept
        for p, s in state.items():
            optimizer.state[p] = s

    journal.on_rollback(undo)


def _resize(engine: Plasticity, journal: Journal) -> None:
    """Brings the model's tensors up to its grown graph (new slots and blocks, at zero) and the
    engine's sites to the new parameters; a failed step gets the old ones back."""
    model = engine.model
    assert isinstance(model, GrowingMLP)
    _keep_params(engine, journal)
    model.sync(engine.optimizer)
    engine.refresh()
    if engine.stats_feed is not None:  # sums taken at the old sizes
        for feed in engine.stats_feed:
            feed.reset()


class Grower(Plasticity):
    """Grows a :class:`GrowingMLP` where its neurons saturate: a preset of the plasticity engine
    with a :class:`Growth` rule (and an optional connection rule ``policy``).

    Args:
        model: the network; its graph is the structure.
        optimizer: the optimizer of the model's parameters (extended in place, never rebuilt).
        trigger: when to grow (:mod:`growcore.torch.triggers`; default ``Interval(500)``).
        clone_type: ``"vertical"``, ``"horizontal"`` or ``"both"``.
        clone_budget: clones per growth event.
        gain: a vertical clone's incoming weights are its source's times ``gain`` (>= 0).
        noise: standard deviation of a horizontal split's ratio around 1/2 (>= 0).
        radius: routes reach the hidden layers up to ``radius`` ahead (>= 1).
        routes_per_source: routes per high extremum (before Katz scaling).
        max_routes: routes per event.
        fan_in_cap: no route pushes a neuron's fan-in above this.
        load: ``"fan_in"`` or ``"event"`` (what the least-loaded target minimises).
        max_layer_size, max_params: limits on clones.
        epsilon: radius of the saturation ε-ball (see :func:`growcore.saturation_thresholds`).
        saturation: explicit ``(low, high)`` thresholds instead of the preset's.
        extrema: options of ``Graph.extrema`` (``q``, ``dead_fraction``, ``fraction``,
            ``high_z``, ``min_observations``).
        katz: Katz guidance (``True`` or options of :func:`growcore.katz`).
        selection: ``"extrema"`` or ``"random"`` (the ablation).
        braess: ``True`` or ``{"window": 50, "threshold": 0.05}``; ``None`` turns it off.
        route_init: weight of a routed edge at birth.
        policy: an optional prune-and-regrow policy over every block (needs ``total_steps``).
        total_steps: the schedule's clock for ``policy``.
        seed: seeds the random selection.
        on_event: called with every event.
    """

    def __init__(
        self,
        model: GrowingMLP,
        optimizer: torch.optim.Optimizer,
        *,
        trigger: Trigger | None = None,
        clone_type: str = "both",
        clone_budget: int = 4,
        gain: float = 0.7,
        noise: float = 0.05,
        radius: int = 3,
        routes_per_source: int = 2,
        max_routes: int | None = None,
        fan_in_cap: int | None = None,
        load: str = "fan_in",
        max_layer_size: int | None = None,
        max_params: int | None = None,
        epsilon: float = 0.05,
        saturation: tuple[float, float] | None = None,
        extrema: Mapping[str, Any] | None = None,
        katz: bool | Mapping[str, Any] = False,
        selection: str = "extrema",
        braess: bool | Mapping[str, Any] | None = None,
        route_init: float = 0.0,
        policy: Policy | None = None,
        total_steps: int | None = None,
        seed: int = 0,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if not isinstance(model, GrowingMLP):
            raise TypeError(
                f"model: expected a GrowingMLP (whose graph can gain neurons and blocks), got {type(model).__name__}; "
                "for a fixed architecture use Plasticity with connection and neuron rules"
            )
        if total_steps is not None and (not is_int(total_steps) or total_steps < 1):
            raise InvalidArgumentError(f"total_steps: must be a positive integer or None, got {total_steps!r}")
        if policy is not None and policy.grow != "none" and total_steps is None:
            raise InvalidArgumentError(f"total_steps: the {policy.name} policy needs the run's total_steps")
        if trigger is not None and not isinstance(trigger, Trigger):
            raise TypeError(f"trigger: expected a Trigger (e.g. Interval(500), or make_trigger(name)), got {trigger!r}")
        self.growth = Growth(
            trigger=trigger if trigger is not None else Interval(500), clone_type=clone_type, clone_budget=clone_budget,
            gain=gain, noise=noise, radius=radius, routes_per_source=routes_per_source, max_routes=max_routes,
            fan_in_cap=fan_in_cap, load=load, max_layer_size=max_layer_size, max_params=max_params, epsilon=epsilon,
            saturation=saturation, extrema=extrema, katz=katz, selection=selection, braess=braess,
            route_init=route_init, seed=seed,
        )
        self.saturation = self.growth.thresholds(model.activation)
        self.policy = policy
        rules: list[Rule] = [self.growth] + ([policy] if policy is not None else [])
        super().__init__(
            model, optimizer, rules, total_steps=total_steps if total_steps is not None else 1,
            saturation=self.saturation, seed=seed, on_event=on_event,
        )
        self.model = model
        self.total_steps_given = total_steps
        model.apply_masks()

    # The Growth rule's options and state, under the names Grower always had.
    @property
    def trigger(self) -> Trigger:
        return self.growth.trigger

    @trigger.setter
    def trigger(self, trigger: Trigger) -> None:
        if not isinstance(trigger, Trigger):
            raise TypeError(f"trigger: expected a Trigger, got {trigger!r}")
        self.growth.trigger = trigger

    @property
    def selection(self) -> str:
        return self.growth.selection

    @selection.setter
    def selection(self, selection: str) -> None:
        if selection not in SELECTIONS:
            raise InvalidArgumentError(f"selection: expected one of {SELECTIONS}, got {selection!r}")
        self.growth.selection = selection

    grow_options = property(lambda self: self.growth.grow_options)
    extrema_options = property(lambda self: self.growth.extrema_options)
    katz_options = property(lambda self: self.growth.katz_options)
    braess = property(lambda self: self.growth.braess_options)
    _pending = property(lambda self: self.growth._pending)

    @property
    def stats(self) -> Any:
        """The statistics hooks of the hidden layers."""
        return None if self.stats_feed is None else self.stats_feed[0]

    def step(self, loss: float | torch.Tensor | None = None) -> list[Event]:
        """Call once after every ``optimizer.step()``, before gradients are zeroed, with the
        step's loss (needed by the Braess guard and the plateau trigger)."""
        if loss is None and self.braess is not None:
            raise InvalidArgumentError("loss: the Braess guard needs the step's loss; call step(loss)")
        if loss is None and self.trigger.needs_loss:
            raise InvalidArgumentError(
                f"loss: the {self.trigger.name} trigger grows when the loss stops improving, so it needs "
                "the step's loss; call step(loss)"
            )
        loss_value = None if loss is None else _loss_value(loss)  # checked before anything changes
        if loss_value is not None and is_distributed():  # a collective that may fail: before any change
            loss_value = float(all_reduce_mean(np.array([loss_value]))[0])
        return super().step(loss_value)

    def grow(self, cause: str = "manual") -> list[Event]:
        """One growth event now (the trigger calls this); returns its events. Not logged to
        ``on_event`` when called directly."""
        from growcore.torch.journal import Journal

        return self.growth.plan(self, cause)(Journal())

    def extrema(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Each hidden layer's high and low extrema (slots, strongest first)."""
        return self.growth.high_low(self)

    def _random_sets(self, high: dict[int, np.ndarray], low: dict[int, np.ndarray]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        return self.growth.random_sets(self, high, low)

    def _katz(self) -> np.ndarray:
        return self.growth.katz_scores(self)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The grower's own state (the structure is in the model's state dict)."""
        growth = self.growth.state_dict()
        return {
            "version": STATE_VERSION,
            "config": self._grower_config(),
            "step": self._step,
            "trigger": growth["trigger"],
            "recent": growth["recent"],
            "pending": growth["pending"],
            "events": list(self.events),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict` (after the model's own state); strict."""
        step = check_state(state, {"version", "config", "step", "trigger", "recent", "pending", "events"}, STATE_VERSION)
        check_config(state["config"], self._grower_config())
        if step != self.graph.step:
            raise StateDictError(f"state['step']: {step} does not match the model's graph step {self.graph.step}")
        events = state["events"]
        if not isinstance(events, (list, tuple)) or not all(isinstance(e, Mapping) for e in events):
            raise StateDictError(f"state['events']: expected a list of events, got {type(events).__name__}")
        growth = {"trigger": state["trigger"], "recent": state["recent"], "pending": state["pending"]}
        self.growth.check_state(growth)
        self.growth.load_state_dict(growth)
        self._step = step
        self._deferred = {}
        self.events = [dict(e) for e in events]
        self.refresh()  # the model's structure was loaded: sites and masks follow it

    def _grower_config(self) -> dict[str, Any]:
        """The options a resumed run must share: the Growth rule's, the resolved saturation
        thresholds, the policy and ``total_steps``."""
        return {
            **self.growth.options(),
            "saturation": list(self.saturation),
            "policy": None if self.policy is None else self.policy.to_dict(),
            "total_steps": self.total_steps_given,
        }


def _braess_options(braess: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Braess guard's options: None when off, else the defaults updated by ``braess``."""
    if braess is None or braess is False:
        return None
    if braess is not True and not isinstance(braess, Mapping):
        raise InvalidArgumentError(f'braess: expected True, False, None or a dict of "window" and "threshold", got {braess!r}')
    options: dict[str, Any] = {"window": 50, "threshold": 0.05}
    given = dict(braess) if isinstance(braess, Mapping) else {}
    extra = set(given) - set(options)
    if extra:
        raise InvalidArgumentError(f"braess: unknown options {sorted(extra)}; expected {sorted(options)}")
    options.update(given)
    window, threshold = options["window"], options["threshold"]
    if not is_int(window) or window < 1:
        raise InvalidArgumentError(f"braess['window']: must be a positive integer, got {window!r}")
    if not is_real(threshold) or not threshold >= 0:
        raise InvalidArgumentError(f"braess['threshold']: must be a non-negative number, got {threshold!r}")
    return options


def check_options(
    num_layers: int, activation: str, grow_options: Mapping[str, Any], extrema_options: Mapping[str, Any] | None = None
) -> None:
    """Checks the options of ``Graph.grow`` and ``Graph.extrema`` in the core now, rather than at
    the first growth event, on a tiny graph as deep as the network (so the errors are the core's)."""
    scratch = growcore.Graph([1] * num_layers)
    scratch.grow({}, {}, **grow_options)
    scratch.extrema(1, activation, **(extrema_options or {}))  # type: ignore[arg-type]


def _set_edges(
    w: torch.Tensor, rows: np.ndarray, cols: np.ndarray, value: float, optimizer: torch.optim.Optimizer, journal: Journal
) -> None:
    """Sets the weights at (rows, cols) of a block to ``value`` and zeroes their optimizer state."""
    flat = torch.as_tensor(rows * w.shape[1] + cols, device=w.device)
    journal.write(w, flat, float(value))
    journal.forget(optimizer, w, flat)


def _by_block(routes: Mapping[str, Any]) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
    """Routes grouped per block as (block, rows = targets, cols = sources)."""
    src_layer = np.asarray(routes["src_layer"], dtype=np.int64)
    dst_layer = np.asarray(routes["dst_layer"], dtype=np.int64)
    out = []
    for a, b in sorted(set(zip(src_layer.tolist(), dst_layer.tolist()))):
        sel = (src_layer == a) & (dst_layer == b)
        rows = np.asarray(routes["dst_slot"], dtype=np.int64)[sel]
        cols = np.asarray(routes["src_slot"], dtype=np.int64)[sel]
        out.append(((a, b), rows, cols))
    return out


def _pending_copy(pending: Any) -> dict[str, Any] | None:
    """A fresh copy of a pending Braess verdict (from the grower or a state dict), so a saved
    state dict does not change as training goes on; anything malformed is a StateDictError."""
    if pending is None:
        return None
    try:
        if not isinstance(pending, Mapping) or set(pending) != {"step", "plan", "before", "after"}:
            raise ValueError
        plan = pending["plan"]
        if not isinstance(plan, Mapping) or set(plan) != {"clones", "routes", "new_blocks"}:
            raise ValueError
        parts = {}
        for part, keys in (("clones", _CLONE_KEYS), ("routes", _ROUTE_KEYS)):
            if not isinstance(plan[part], Mapping) or set(plan[part]) != keys:
                raise ValueError
            columns = {k: [_plan_value(k, x) for x in plan[part][k]] for k in sorted(keys)}
            if len({len(c) for c in columns.values()}) > 1:
                raise ValueError
            parts[part] = columns
        new_blocks = [(int(a), int(b)) for a, b in plan["new_blocks"]]
        step, before, after = pending["step"], pending["before"], pending["after"]
        if not is_int(step) or not (before is None or is_real(before)) or not all(is_real(x) for x in after):
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise StateDictError(f"state['pending']: malformed pending Braess verdict {pending!r:.200}") from None
    return {
        "step": int(step),
        "plan": {**parts, "new_blocks": new_blocks},
        "before": None if before is None else float(before),
        "after": [float(x) for x in after],
    }


def _plan_value(column: str, x: Any) -> int | bool:
    """One entry of a saved plan's column: a bool for ``vertical``, an int otherwise."""
    if column == "vertical" and isinstance(x, bool):
        return x
    if not is_int(x):
        raise ValueError
    return x


#: The columns of a growth plan's clones and routes, as ``Graph.grow`` returns them.
_CLONE_KEYS = frozenset({"vertical", "source_layer", "source_slot", "source_id", "layer", "slot", "id", "noise_seed"})
_ROUTE_KEYS = frozenset({"src_layer", "src_slot", "dst_layer", "dst_slot"})


def _plain(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A plan as plain Python lists (for the state dict)."""
    return {
        "clones": {k: np.asarray(v).tolist() for k, v in plan["clones"].items()},
        "routes": {k: np.asarray(v).tolist() for k, v in plan["routes"].items()},
        "new_blocks": [tuple(int(x) for x in k) for k in plan["new_blocks"]],
    }


def _katz_options(katz: bool | Mapping[str, Any]) -> dict[str, Any] | None:
    """The options of :func:`growcore.katz` that Katz guidance passes (the weights are |W|),
    checked on a two-neuron graph now rather than at the first growth event."""
    if katz is False:
        return None
    if katz is True:
        return {}
    if not isinstance(katz, Mapping):
        raise TypeError(f"katz: expected True, False or a mapping of growcore.katz options, got {katz!r}")
    allowed = {"alpha", "beta", "direction", "normalized"}
    unknown = sorted(set(katz) - allowed)
    if unknown:
        raise InvalidArgumentError(f"katz: unknown options {unknown}; expected some of {sorted(allowed)}")
    options = dict(katz)
    if "beta" in options and not np.isscalar(options["beta"]):
        raise InvalidArgumentError(f"katz['beta']: expected one number (layer sizes change as the model grows), got {options['beta']!r}")
    try:
        growcore.katz(growcore.Graph([1, 1], 1.0), **options)
    except (TypeError, ValueError) as err:
        raise type(err)(f"katz: {err}") from err
    return options


def _loss_value(loss: Any) -> float:
    """A step's loss as a float: a number or a one-element tensor."""
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise InvalidArgumentError(f"loss: expected a one-element tensor, got shape {tuple(loss.shape)}")
        return float(loss.detach())
    try:
        if isinstance(loss, (bool, str, bytes)):
            raise TypeError
        return float(loss)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"loss: expected a number or a one-element tensor, got {loss!r}") from None
