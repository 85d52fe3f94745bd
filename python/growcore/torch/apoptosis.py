"""Neuron rules of the engine: :class:`Apoptosis` (replace the least fit neurons) and
:class:`Senescence` (age neurons whose fitness stopped moving, then retire them).

Both act on the engine's neuron groups (producer -> consumer pairs, see
:mod:`growcore.torch.sites`): decisions come from the core (``Graph.apoptosis`` and the
``growcore.Senescence`` tracker, where each rule's algorithm is documented), and replacements are
applied by :func:`growcore.torch.neurons.replace` (the strategies are documented there).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np
import torch

import growcore
from growcore.errors import InvalidArgumentError, StateDictError, is_int
from growcore.torch.neurons import FITNESS, check_apoptosis_options, replace, senescence_options
from growcore.torch.rules import Event, Plan, Rule

if TYPE_CHECKING:
    from growcore.torch.engine import Plasticity
    from growcore.torch.journal import Journal
    from growcore.torch.sites import NeuronGroup

#: The fitness kinds the engine's rules take ("multi" needs Lifecycle's activation profiles).
ENGINE_FITNESS = tuple(f for f in FITNESS if f != "multi")
#: A fitness of one's own: (engine, group) -> one raw score per unit, or None for the default.
FitnessFn = Callable[["Plasticity", "NeuronGroup"], Union[np.ndarray, None]]
#: The options of Apoptosis that may differ per neuron group.
GROUP_OPTIONS = ("strategy", "fraction", "maturity_age", "senior_age", "threshold", "alpha", "noise", "fitness")


def _select(rule: str, engine: Plasticity, patterns: list[str] | None) -> list[NeuronGroup]:
    names = [g.name for g in engine.groups]
    if not engine.groups:
        raise InvalidArgumentError(
            f"{rule}: the model has no neuron group (a producer module whose outputs one consumer reads unit "
            "by unit); none was found in nn.Sequential chains or transformer layers: name them with "
            "pairs=[('producer', 'consumer')]"
        )
    if patterns is None:
        return list(engine.groups)
    for p in patterns:
        if not isinstance(p, str) or not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InvalidArgumentError(f"{rule}: groups pattern {p!r} matches no neuron group; the groups are {names}")
    return [g for g in engine.groups if any(fnmatch.fnmatchcase(g.name, p) for p in patterns)]


def _fitness(engine: Plasticity, group: NeuronGroup, kind: str | FitnessFn) -> np.ndarray | None:
    """The group's raw fitness of ``kind`` (None: the accumulated default)."""
    if callable(kind):
        return kind(engine, group)
    if kind == "utility":
        # Continual Backprop's mean |outgoing weight| of each unit, over every consumer.
        total: torch.Tensor | float = 0.0
        count = 0
        for c in group.consumers:
            w = c.matrix(c.weight.detach()).abs().double()
            total = total + w.reshape(w.shape[0], group.size, c.kernel).sum(dim=(0, 2))
            count += w.shape[0] * c.kernel
        per_unit = torch.as_tensor(total / max(count, 1))
        return engine.graph.fitness_scores(group.layer, "utility", per_unit.cpu().numpy())
    if kind == "dormancy":
        return engine.graph.fitness_scores(group.layer, "dormancy")
    return None


def _check_groups_option(rule: str, groups: Any) -> None:
    if groups is not None and (isinstance(groups, str) or not all(isinstance(g, str) for g in groups)):
        raise TypeError(f"{rule}: groups: expected a list of name patterns of neuron groups, got {groups!r}")


@dataclass
class Apoptosis(Rule):
    """Every ``interval`` steps, replace up to ``fraction`` of each neuron group's mature neurons,
    least fit first (and the senescent ones :class:`Senescence` escalated).

    Args:
        interval: steps between events.
        fraction: at most this fraction of a group's mature neurons dies per event.
        strategy: ``"random"``, ``"mutation"``, ``"crossover"`` or ``"function_preserving"``
            (see :mod:`growcore.torch.neurons`).
        maturity_age: neurons younger than this never die (default: ``interval``).
        threshold: if set, only neurons whose normalised fitness is below it die.
        alpha: crossover's ``(low, high)`` range for the first parent's weight, or ``"fitness"``.
        noise: mutation and crossover noise, relative to the parent's weight standard deviation.
        end: no apoptosis from this step on (None: never stops).
        fitness: ``"default"``, ``"utility"`` (Continual Backprop), ``"dormancy"`` (ReDo), or a
            function ``(engine, group) -> scores`` (one raw score per unit, higher is fitter;
            None for the default).
        senior_age: age from which a neuron is ``senior`` (its stage; :class:`Senescence` only
            ages seniors); default ``10 * interval``.
        groups: name patterns of the neuron groups it acts on (None: all).
        group_options: per group (by name), overrides of ``strategy``, ``fraction``,
            ``maturity_age``, ``senior_age``, ``threshold``, ``alpha``, ``noise`` and ``fitness``.
    """

    name: ClassVar[str] = "apoptosis"
    order: ClassVar[int] = 20
    interval: int = 100
    fraction: float = 0.05
    strategy: str = "function_preserving"
    maturity_age: int | None = None
    threshold: float | None = None
    alpha: tuple[float, float] | str | None = None
    noise: float = 0.1
    end: int | None = None
    fitness: str | FitnessFn = "default"
    senior_age: int | None = None
    groups: list[str] | None = None
    group_options: Mapping[str, Mapping[str, Any]] | None = None
    _acting: list[NeuronGroup] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_int(self.interval) or self.interval < 1:
            raise InvalidArgumentError(f"interval: must be a positive integer, got {self.interval!r}")
        self._check("", self._defaults())
        if self.end is not None and (not is_int(self.end) or self.end < 0):
            raise InvalidArgumentError(f"end: must be a non-negative integer step or None, got {self.end!r}")
        _check_groups_option("Apoptosis", self.groups)
        if self.group_options is not None and not isinstance(self.group_options, Mapping):
            raise TypeError(f"group_options: expected a mapping of group name to options, got {self.group_options!r}")
        for name, overrides in (self.group_options or {}).items():
            unknown = sorted(set(overrides) - set(GROUP_OPTIONS))
            if unknown:
                raise InvalidArgumentError(f"group_options[{name!r}]: unknown options {unknown}; expected some of {sorted(GROUP_OPTIONS)}")
            self._check(f"group_options[{name!r}].", {**self._defaults(), **overrides})

    def _defaults(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in GROUP_OPTIONS}

    @staticmethod
    def _check(prefix: str, o: Mapping[str, Any]) -> None:
        fitness = o["fitness"]
        if not callable(fitness) and fitness not in ENGINE_FITNESS:
            raise InvalidArgumentError(
                f"{prefix}fitness: expected one of {list(ENGINE_FITNESS)} or a function, got {fitness!r}"
                + ("; 'multi' needs activation profiles: use Lifecycle" if fitness == "multi" else "")
            )
        interval = 1  # the ages' defaults only need to pass the range check here
        resolved = {**o, "fitness": "default", "maturity_age": o["maturity_age"] if o["maturity_age"] is not None else interval,
                    "senior_age": o["senior_age"] if o["senior_age"] is not None else interval}
        check_apoptosis_options(prefix, resolved)

    def options_for(self, group: NeuronGroup) -> dict[str, Any]:
        """The group's options, with the defaults of the ages filled in."""
        o = {**self._defaults(), **(self.group_options or {}).get(group.name, {})}
        if o["maturity_age"] is None:
            o["maturity_age"] = self.interval
        if o["senior_age"] is None:
            o["senior_age"] = 10 * self.interval
        return o

    @property
    def mature_age(self) -> int:
        return self.interval if self.maturity_age is None else self.maturity_age

    def options(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "fraction": self.fraction,
            "strategy": self.strategy,
            "maturity_age": self.maturity_age,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "noise": self.noise,
            "end": self.end,
            "fitness": "function" if callable(self.fitness) else self.fitness,
            "senior_age": self.senior_age,
            "groups": self.groups,
            "group_options": {k: dict(v) for k, v in (self.group_options or {}).items()},
        }

    def bind(self, engine: Plasticity) -> None:
        self._acting = _select("Apoptosis", engine, self.groups)
        names = [g.name for g in engine.groups]
        unknown = sorted(set(self.group_options or {}) - set(names))
        if unknown:
            raise InvalidArgumentError(f"group_options: unknown groups {unknown}; the neuron groups are {names}")
        for g in self._acting:
            if self.options_for(g)["strategy"] == "function_preserving":
                _check_preservable(g)

    def acts_on(self, group: NeuronGroup) -> bool:
        return any(g is group for g in self._acting)

    def due(self, step: int, engine: Plasticity) -> bool:
        return step % self.interval == 0 and (self.end is None or step < self.end)

    def decide(self, engine: Plasticity, step: int) -> list[Plan]:
        plans: list[Plan] = []
        for group in self._acting:
            o = self.options_for(group)
            kwargs: dict[str, Any] = {}
            if o["alpha"] is not None:
                kwargs["alpha"] = o["alpha"]
            fitness = _fitness(engine, group, o["fitness"])
            if fitness is not None:
                kwargs["fitness"] = fitness
            escalated = engine.handoff.pop(("escalated", group.name), None)
            if escalated:
                kwargs["escalated"] = np.asarray(escalated, dtype=np.int64)
            mean_activation = engine.graph.stats(group.layer)["mean"]  # before the dead lose theirs
            plan = engine.graph.apoptosis(
                group.layer,
                o["fraction"],
                strategy=o["strategy"],
                threshold=o["threshold"],
                maturity_age=o["maturity_age"],
                **kwargs,
            )
            plans.append(_replacement(engine, group, plan, mean_activation, o["noise"]))
        return plans


def _check_preservable(g: NeuronGroup) -> None:
    """Function-preserving replacement needs a consumer bias and no LayerNorm over the units."""
    for consumer, bias in zip(g.consumers, g.consumer_biases):
        if bias is None:
            raise InvalidArgumentError(
                f"Apoptosis: function_preserving moves a dying neuron's mean contribution into the "
                f"consumer's bias, but {consumer.name!r} (reading {g.name!r}) has no bias; use another strategy"
            )
    if any(isinstance(m, torch.nn.LayerNorm) for m in g.norms):
        raise InvalidArgumentError(
            f"Apoptosis: function_preserving cannot keep the output with a LayerNorm over {g.name!r}: "
            "it normalises across the units, so a newborn shifts every unit; use another strategy"
        )


def _replacement(engine: Plasticity, group: NeuronGroup, plan: Any, mean_activation: np.ndarray, noise: float) -> Plan:
    def apply(journal: Journal) -> list[Event]:
        return replace(group, plan, mean_activation, engine.graph.lineage(), noise, engine.optimizer, journal, engine.step_count)

    return apply


def _reported(events: list[Event]) -> Plan:
    """A plan that changes no tensor: it reports ``events``."""

    def apply(journal: Journal) -> list[Event]:
        return events

    return apply


@dataclass
class Senescence(Rule):
    """Every ``interval`` steps, sample each neuron's fitness into the core's senescence tracker:
    a senior neuron whose fitness trend has been flat for ``flat_steps`` turns senescent (an
    event ``senescence``), its updates scaled by ``lr_scale``; ``escalate_after`` steps later it
    is escalated (an event ``escalation``) and replaced: by :class:`Apoptosis` when that rule acts
    on the group at the same step, otherwise by this rule with ``strategy``.

    Args:
        interval: steps between samples (default: the Apoptosis rule's, else 100).
        window, epsilon, flat_steps, escalate_after, max_fraction, lr_scale: as for
            :class:`growcore.Senescence` (``flat_steps`` and ``escalate_after`` default to
            ``5 * interval``).
        senior_age: age from which a neuron can turn senescent (default: the Apoptosis rule's
            for the group, else ``10 * interval``).
        maturity_age: an escalated neuron younger than this waits (default: the Apoptosis
            rule's for the group, else ``interval``).
        end: no sampling from this step on (None: never stops).
        strategy, noise: how this rule replaces escalated neurons on its own.
        groups: name patterns of the neuron groups it acts on (None: all).
    """

    name: ClassVar[str] = "senescence"
    order: ClassVar[int] = 10
    interval: int | None = None
    window: int = 5
    epsilon: float = 0.1
    flat_steps: int | None = None
    escalate_after: int | None = None
    max_fraction: float = 0.05
    lr_scale: float = 1.0
    senior_age: int | None = None
    maturity_age: int | None = None
    strategy: str = "function_preserving"
    noise: float = 0.1
    end: int | None = None
    groups: list[str] | None = None
    tracker: growcore.Senescence = field(default_factory=growcore.Senescence, init=False, repr=False, compare=False)
    _acting: list[NeuronGroup] = field(default_factory=list, init=False, repr=False, compare=False)
    _resolved: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _saved: dict[str, tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.interval is not None and (not is_int(self.interval) or self.interval < 1):
            raise InvalidArgumentError(f"interval: must be a positive integer or None, got {self.interval!r}")
        self._resolve(self.interval or 100)
        if self.end is not None and (not is_int(self.end) or self.end < 0):
            raise InvalidArgumentError(f"end: must be a non-negative integer step or None, got {self.end!r}")
        _check_groups_option("Senescence", self.groups)

    def _resolve(self, interval: int) -> None:
        """The options with their defaults filled in, checked."""
        tracker = senescence_options(
            {k: getattr(self, k) for k in ("window", "epsilon", "flat_steps", "escalate_after", "max_fraction", "lr_scale")},
            interval,
        )
        assert tracker is not None
        ages = {
            "senior_age": 10 * interval if self.senior_age is None else self.senior_age,
            "maturity_age": interval if self.maturity_age is None else self.maturity_age,
        }
        check_apoptosis_options(
            "", {"strategy": self.strategy, "fraction": 0.0, "threshold": None, "alpha": None, "noise": self.noise, "fitness": "default", **ages}
        )
        self._resolved = {"interval": interval, **tracker, **ages}

    def options(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "interval", "window", "epsilon", "flat_steps", "escalate_after", "max_fraction", "lr_scale",
                "senior_age", "maturity_age", "strategy", "noise", "end", "groups",
            )
        }

    def bind(self, engine: Plasticity) -> None:
        self._acting = _select("Senescence", engine, self.groups)
        self._apoptosis = next((r for r in engine.rules if isinstance(r, Apoptosis)), None)
        if self.interval is None:
            self._resolve(self._apoptosis.interval if self._apoptosis is not None else 100)
        if self.strategy == "function_preserving":
            for g in self._acting:
                if self._apoptosis is None or not self._apoptosis.acts_on(g):
                    _check_preservable(g)

    _apoptosis: Apoptosis | None = field(default=None, init=False, repr=False, compare=False)

    def due(self, step: int, engine: Plasticity) -> bool:
        return step % int(self._resolved["interval"]) == 0 and (self.end is None or step < self.end)

    def _group_options(self, group: NeuronGroup) -> dict[str, Any]:
        """The fitness and ages for ``group``: this rule's where set, else the Apoptosis rule's
        for the group, else the defaults."""
        o = dict(self._resolved)
        apoptosis = self._apoptosis if self._apoptosis is not None and self._apoptosis.acts_on(group) else None
        theirs = apoptosis.options_for(group) if apoptosis is not None else {}
        o["fitness"] = theirs.get("fitness", "default")
        for age in ("senior_age", "maturity_age"):
            if getattr(self, age) is None and age in theirs:
                o[age] = theirs[age]
        return o

    def decide(self, engine: Plasticity, step: int) -> list[Plan]:
        apoptosis = next((r for r in engine.acting if isinstance(r, Apoptosis)), None)
        plans: list[Plan] = []
        for group in self._acting:
            o = self._group_options(group)
            kind = o["fitness"]
            up = self.tracker.update(
                engine.graph,
                group.layer,
                _fitness(engine, group, kind),
                window=o["window"],
                epsilon=o["epsilon"],
                flat_steps=o["flat_steps"],
                escalate_after=o["escalate_after"],
                max_fraction=o["max_fraction"],
                min_age=o["senior_age"],
            )
            ids, ages = engine.graph.ids(group.layer), engine.graph.ages(group.layer)
            events: list[Event] = []
            for kind_name, slots in (("senescence", up["newly_senescent"]), ("escalation", up["escalated"])):
                for slot in slots.tolist():
                    events.append({
                        "kind": kind_name,
                        "step": step,
                        "layer": group.name,
                        "slot": slot,
                        "id": int(ids[slot]),
                        "age": int(ages[slot]),
                        "slope": float(up["slope"][slot]),
                    })
            plans.append(_reported(events))
            # Never kill a neuron younger than the maturity age, escalated or not: it waits.
            due = [s for s in up["escalated"].tolist() if ages[s] >= o["maturity_age"]]
            if not due:
                continue
            if apoptosis is not None and apoptosis.acts_on(group):
                engine.handoff[("escalated", group.name)] = due
                continue
            mean_activation = engine.graph.stats(group.layer)["mean"]
            plan = engine.graph.apoptosis(
                group.layer,
                0.0,
                strategy=self.strategy,  # type: ignore[arg-type]  # checked above
                maturity_age=o["maturity_age"],
                escalated=np.asarray(due, dtype=np.int64),
            )
            plans.append(_replacement(engine, group, plan, mean_activation, self.noise))
        return plans

    def senescent(self, engine: Plasticity, group: str) -> np.ndarray:
        """Slots of the group's senescent neurons."""
        return self.tracker.senescent(engine.graph, engine.group(group).layer)

    # lr_scale: after every optimizer step, the change it made to a senescent neuron's incoming
    # weights and bias is multiplied by lr_scale (the same meaning for SGD and Adam).

    @torch.no_grad()
    def before_optimizer_step(self, engine: Plasticity) -> None:
        self._saved = {}
        if self._resolved["lr_scale"] == 1.0:
            return
        for group in self._acting:
            slots = self.tracker.senescent(engine.graph, group.layer)
            if len(slots):
                index = torch.as_tensor(slots, device=group.producers[0].weight.device)
                rows = [p.weight[index].clone() for p in group.producers]
                bias = group.bias
                self._saved[group.name] = (index, rows, None if bias is None else bias[index].clone())

    @torch.no_grad()
    def after_optimizer_step(self, engine: Plasticity) -> None:
        scale = self._resolved["lr_scale"]
        for name, (index, rows, bias_rows) in self._saved.items():
            group = engine.group(name)
            for p, old in zip(group.producers, rows):
                p.weight[index] = old + scale * (p.weight[index] - old)
            if bias_rows is not None and group.bias is not None:
                group.bias[index] = bias_rows + scale * (group.bias[index] - bias_rows)
        self._saved = {}

    def state_dict(self) -> Any:
        return self.tracker.to_bytes()

    def check_state(self, state: Any) -> None:
        try:
            growcore.Senescence.from_bytes(state)
        except (growcore.GrowcoreError, TypeError) as e:
            raise StateDictError(f"state['rule_state'] (senescence): {e}") from e

    def load_state_dict(self, state: Any) -> None:
        self.tracker.load_bytes(state)  # in place: a caller may hold the tracker
