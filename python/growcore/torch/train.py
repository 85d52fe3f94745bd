"""One supervised training run of an MLP, dense, under a :class:`SparseController`, a
:class:`Lifecycle` (apoptosis), a :class:`Plasticity` engine for a combination of rules
(``rigl+apoptosis``) or, for ``grow``, a :class:`GrowingMLP` driven by a :class:`Grower`: the
loop behind ``growcore run``. Deterministic on CPU for a seed: the same structure, events and
losses.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

import growcore
from growcore.data import Dataset
from growcore.errors import InvalidArgumentError, is_int, is_real
from growcore.lineage import plot_family_tree
from growcore.log import RunLog, growth_curves, growth_per_window, run_name
from growcore.torch.apoptosis import Apoptosis, Senescence
from growcore.torch.controller import SparseController
from growcore.torch.engine import Plasticity
from growcore.torch.growing import ACTIVATIONS, GrowingMLP
from growcore.torch.growth import SELECTIONS, Grower, Growth, check_options
from growcore.torch.lifecycle import Lifecycle
from growcore.torch.neurons import STRATEGIES
from growcore.torch.policies import POLICIES, make_policy
from growcore.torch.triggers import TRIGGERS, Trigger, make_trigger

METHODS = ("dense", *POLICIES, "apoptosis", "grow")
#: The methods a combination (``rigl+apoptosis``) may join, run by one Plasticity engine.
COMBINABLE = (*POLICIES, "apoptosis", "grow")
CLONE_TYPES = ("vertical", "horizontal", "both")


@dataclass(frozen=True)
class RunConfig:
    """What one run trains and how (see ``growcore run --help`` for the meaning of each field)."""

    method: str = "rigl"
    seed: int = 0
    density: float = 0.1
    distribution: str = "erk"
    hidden: Sequence[int] = (256, 128)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    interval: int = 100
    drop_fraction: float = 0.3
    strategy: str = "function_preserving"
    rate: float = 0.05
    senescence: bool = False
    lr_scale: float = 1.0
    policy_options: dict[str, Any] = field(default_factory=dict)
    # grow: a GrowingMLP from these hidden sizes (dense), grown by a Grower with these options.
    start_hidden: Sequence[int] = (16, 16)
    activation: str = "relu"
    clone_type: str = "both"
    clone_budget: int = 4
    radius: int = 3
    fan_in_cap: int | None = None
    max_layer_size: int | None = None
    trigger: str = "interval"
    grow_every: int | None = None  # the interval trigger's period, the other triggers' window; None: interval
    braess: bool = False
    katz: bool = False
    selection: str = "extrema"
    growth_window: int = 1000  # steps per window of the summary's growth rate

    @property
    def parts(self) -> list[str]:
        """The methods a combination joins (``["rigl", "apoptosis"]``), or the one method."""
        return self.method.split("+")

    @property
    def combined(self) -> bool:
        return len(self.parts) > 1

    @property
    def connection(self) -> str | None:
        """The connection rule (static, set, rigl) of the method, if any."""
        return next((p for p in self.parts if p in POLICIES), None)

    @property
    def label(self) -> str:
        """The method as reported: the policy, ``apoptosis-<strategy>`` (``+senescence``),
        ``grow`` (``grow-random`` for the random-selection ablation), or a combination with the
        apoptosis strategy (``rigl+apoptosis-crossover``)."""
        if self.method == "grow":
            return "grow" if self.selection == "extrema" else f"grow-{self.selection}"
        label = self.method
        if "apoptosis" in self.parts:
            label += f"-{self.strategy}" + ("+senescence" if self.senescence else "")
        if "grow" in self.parts and self.selection != "extrema":
            label += f"-{self.selection}"
        return label

    @property
    def growth_period(self) -> int:
        """Steps between growth checks: ``grow_every``, else ``interval``."""
        return self.grow_every if self.grow_every is not None else self.interval

    def make_trigger(self) -> Trigger:
        """The grow method's trigger: ``interval`` every :attr:`growth_period` steps, the others
        over windows of that many steps (their other options at their defaults)."""
        key = "every" if self.trigger == "interval" else "window"
        return make_trigger(self.trigger, **{key: self.growth_period})

    def grow_options(self) -> dict[str, Any]:
        """The options of ``Graph.grow`` (through :class:`Grower`) that a run sets."""
        return {
            "clone_type": self.clone_type,
            "clone_budget": self.clone_budget,
            "radius": self.radius,
            "fan_in_cap": self.fan_in_cap,
            "max_layer_size": self.max_layer_size,
        }

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):
            raise InvalidArgumentError(f"policy: expected a method name, got {self.method!r}")
        if self.combined:
            _check_combination(self.method)
        elif self.method not in METHODS:
            raise InvalidArgumentError(f"policy: unknown method {self.method!r}; expected one of {list(METHODS)}")
        # Types first: a float epochs or batch size failed inside training (or trained a wrong thing).
        for name in ("seed", "epochs", "batch_size", "interval"):
            _check_int(name, getattr(self, name))
        _check_sizes("hidden", self.hidden)
        for name in ("density", "drop_fraction", "rate", "lr_scale"):
            _check_real(name, getattr(self, name))
        for name in ("senescence", "braess", "katz"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"{name}: must be True or False, got {getattr(self, name)!r}")
        if not 0.0 < self.density <= 1.0:
            raise InvalidArgumentError(f"density: must be in (0, 1], got {self.density!r}")
        if not (is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"lr: must be a finite number > 0, got {self.lr!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value < 1:
                raise InvalidArgumentError(f"{name}: must be at least 1, got {value!r}")
        if self.strategy not in STRATEGIES:
            raise InvalidArgumentError(f"strategy: unknown strategy {self.strategy!r}; expected one of {list(STRATEGIES)}")
        if not 0.0 <= self.rate <= 1.0:
            raise InvalidArgumentError(f"rate: must be in [0, 1], got {self.rate!r}")
        if not 0.0 <= self.lr_scale <= 1.0:
            raise InvalidArgumentError(f"lr_scale: must be in [0, 1], got {self.lr_scale!r}")
        if self.senescence and "apoptosis" not in self.parts:
            raise InvalidArgumentError(f"senescence: only applies to the apoptosis method, not {self.method!r}")
        if not self.hidden and "apoptosis" in self.parts:
            raise InvalidArgumentError("hidden: apoptosis needs at least one hidden layer")
        if any(h < 1 for h in self.hidden):
            raise InvalidArgumentError(f"hidden: layer sizes must be at least 1, got {list(self.hidden)}")
        if "grow" in self.parts:
            self._check_grow()
        if self.connection is not None:
            make_policy(self.connection, interval=self.interval, drop_fraction=self.drop_fraction, **self.policy_options)
        if "apoptosis" in self.parts and self.interval < 1:
            raise InvalidArgumentError(f"interval: must be at least 1, got {self.interval!r}")

    def _check_grow(self) -> None:
        """The grow options, checked before any training (the growth limits by
        :func:`growcore.torch.growth.check_options`, as the Grower does)."""
        _check_sizes("start_hidden", self.start_hidden)
        for name in ("clone_budget", "radius", "growth_window"):
            _check_int(name, getattr(self, name))
        for name in ("grow_every", "fan_in_cap", "max_layer_size"):
            _check_int(name, getattr(self, name), optional=True)
        if not self.start_hidden or any(h < 1 for h in self.start_hidden):
            raise InvalidArgumentError(
                f"start_hidden: expected at least one hidden layer of size at least 1, got {list(self.start_hidden)}"
            )
        if self.activation not in ACTIVATIONS:
            raise InvalidArgumentError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.clone_type not in CLONE_TYPES:
            raise InvalidArgumentError(f"clone_type: expected one of {list(CLONE_TYPES)}, got {self.clone_type!r}")
        if self.selection not in SELECTIONS:
            raise InvalidArgumentError(f"selection: expected one of {list(SELECTIONS)}, got {self.selection!r}")
        if self.trigger not in TRIGGERS:
            raise InvalidArgumentError(f"trigger: expected one of {sorted(TRIGGERS)}, got {self.trigger!r}")
        if self.grow_every is not None and self.grow_every < 1:
            raise InvalidArgumentError(f"grow_every: must be at least 1, got {self.grow_every!r}")
        if self.growth_window < 1:
            raise InvalidArgumentError(f"growth_window: must be at least 1 step, got {self.growth_window!r}")
        if self.growth_period < 1:
            raise InvalidArgumentError(f"interval: must be at least 1 (the grow method's default grow_every), got {self.interval!r}")
        self.make_trigger()
        check_options(len(self.start_hidden) + 2, self.activation, self.grow_options())


def _check_combination(method: str) -> None:
    """A combination joins distinct combinable methods, at most one of them a connection rule."""
    parts = method.split("+")
    unknown = [p for p in parts if p not in COMBINABLE]
    if unknown:
        also = "; dense is what the rules start from, not a rule" if "dense" in unknown else ""
        raise InvalidArgumentError(
            f"policy: {unknown[0]!r} cannot be part of the combination {method!r}; combine {list(COMBINABLE)}{also}"
        )
    if len(set(parts)) != len(parts):
        raise InvalidArgumentError(f"policy: {method!r} names a method twice")
    connections = [p for p in parts if p in POLICIES]
    if len(connections) > 1:
        raise InvalidArgumentError(f"policy: {method!r} combines {connections}; a model has at most one connection rule")


def _check_int(name: str, value: object, optional: bool = False) -> None:
    """Refuses a ``value`` of field ``name`` that is not an integer (a bool, a float such as
    2.0 or 2.5, a string), or not None when ``optional``."""
    if not (is_int(value) or (optional and value is None)):
        also = " or None" if optional else ""
        raise InvalidArgumentError(f"{name}: must be an integer{also}, got {value!r}")


def _check_real(name: str, value: object) -> None:
    """Refuses a ``value`` of field ``name`` that is not a finite number (a bool, a string, NaN)."""
    if not is_real(value) or not math.isfinite(cast(float, value)):
        raise InvalidArgumentError(f"{name}: must be a finite number, got {value!r}")


def _check_sizes(name: str, sizes: object) -> None:
    """Refuses layer sizes that are not a list or tuple of integers."""
    if not isinstance(sizes, (list, tuple)) or not all(is_int(h) for h in sizes):
        raise InvalidArgumentError(f"{name}: expected a list of integer layer sizes, got {sizes!r}")


def check_edges(config: RunConfig, num_features: int, num_classes: int) -> None:
    """Fails if ``config`` is a sparse method whose density leaves a layer of its MLP (``mlp(
    num_features, config.hidden, num_classes)``) without a single edge, naming ``density`` and
    the smallest density that gives every layer one. The edges per layer are the core's, for the
    layer shapes the :class:`SparseController` passes it."""
    if config.connection is None or "grow" in config.parts:  # (a growing network's blocks: GrowingMLP's density)
        return
    sizes = [num_features, *config.hidden, num_classes]
    shapes = list(zip(sizes[:-1], sizes[1:]))  # (in, out) per Linear layer

    def empty(density: float) -> list[int]:
        graph = growcore.Graph(
            [n for shape in shapes for n in shape],
            density,
            seed=config.seed,
            distribution=config.distribution,  # type: ignore[arg-type]  # checked by the core
            blocks=[(2 * i, 2 * i + 1) for i in range(len(shapes))],
        )
        return [i for i in range(len(shapes)) if graph.block_nnz(2 * i, 2 * i + 1) == 0]

    layers = empty(config.density)
    if not layers:
        return
    low, high = config.density, 1.0  # empty layers at low, none at high
    for _ in range(60):
        middle = math.sqrt(low * high)
        low, high = (low, middle) if not empty(middle) else (middle, high)
    step = 10.0 ** (math.floor(math.log10(high)) - 1)  # rounded up to two significant digits
    smallest = min(float(f"{math.ceil(high / step) * step:.2g}"), 1.0)
    if empty(smallest):
        smallest = high
    named = ", ".join(f"layer {i} ({shapes[i][0]}->{shapes[i][1]})" for i in layers)
    raise InvalidArgumentError(
        f"density: {config.density!r} leaves no edge in {named} with the {config.distribution} "
        f"distribution (the output could not depend on the input); use a density of at least {smallest:g}"
    )


def mlp(inputs: int, hidden: Sequence[int], outputs: int) -> nn.Sequential:
    """Linear layers with ReLU between them."""
    sizes = [inputs, *hidden, outputs]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_run(
    config: RunConfig,
    data: Dataset,
    log: RunLog | None = None,
    progress: Callable[[int, int], None] | None = None,
    family_tree: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Trains one model and returns its summary (the fields of ``summary.json``'s runs).

    Metrics go to ``log`` once per epoch, structural events as they happen; ``progress(epoch,
    epochs)`` is called after every epoch. An apoptosis run draws its hidden layers' family tree
    (:func:`growcore.lineage.plot_family_tree`) into the PNG file ``family_tree`` if given;
    other methods ignore it.
    """
    check_edges(config, data.num_features, data.num_classes)
    run = run_name(config.label, config.seed)
    torch.manual_seed(config.seed)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    growing: GrowingMLP | None = None
    model: nn.Module
    if "grow" in config.parts:
        sizes = [data.num_features, *config.start_hidden, data.num_classes]
        # Sparse from the start when a connection rule joins the growth.
        density = config.density if config.connection is not None else 1.0
        model = growing = GrowingMLP(sizes, activation=config.activation, density=density, seed=config.seed)
    else:
        model = mlp(data.num_features, config.hidden, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch

    def on_event(event: dict[str, Any]) -> None:
        if log is not None:
            fields = {k: v for k, v in event.items() if k not in ("kind", "step", "layer")}
            # Growth and route events carry no layer, clones an int; the log's layer is a string.
            layer = event.get("layer")
            log.event(event["kind"], step=event["step"], run=run, layer=None if layer is None else str(layer), **fields)

    controller: Plasticity | None = None  # the engine of every sparse method
    lifecycle: Lifecycle | None = None
    grower: Grower | None = None
    if config.combined:
        controller = Plasticity(
            model, optimizer, _rules(config, total_steps), total_steps=total_steps,
            density=config.density if config.connection is not None and growing is None else None,
            distribution=config.distribution, seed=config.seed, on_event=on_event,
        )
    elif growing is not None:
        grower = Grower(
            growing, optimizer, trigger=config.make_trigger(), katz=config.katz,
            braess=config.braess or None, selection=config.selection, seed=config.seed,
            on_event=on_event, **config.grow_options(),
        )
    elif config.method == "apoptosis":
        assert isinstance(model, nn.Sequential)  # the mlp() above
        lifecycle = Lifecycle(
            model, optimizer, interval=config.interval, fraction=config.rate,
            strategy=config.strategy, seed=config.seed, end=int(0.75 * total_steps), on_event=on_event,
            senescence={"lr_scale": config.lr_scale} if config.senescence else False,
        )
    elif config.method != "dense":
        policy = make_policy(
            config.method,
            interval=config.interval,
            drop_fraction=config.drop_fraction,
            **config.policy_options,
        )
        controller = SparseController(
            model,
            optimizer,
            density=config.density,
            total_steps=total_steps,
            policy=policy,
            distribution=config.distribution,
            seed=config.seed,
            on_event=on_event,
        )

    shuffle = torch.Generator().manual_seed(config.seed)
    train_seconds = 0.0
    step = 0
    test_loss, accuracy = _evaluate(model, x_test, y_test)
    start = _structure(growing)  # the growth curve's first point
    if log is not None:
        log.metric(step=0, run=run, test_loss=test_loss, accuracy=accuracy, **_density(controller), **start)
    for epoch in range(config.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        total, seen = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            batch = order[i : i + config.batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if controller is not None:
                controller.step(loss)
            if lifecycle is not None:
                lifecycle.step()
            if grower is not None:
                grower.step(loss)
            step += 1
            total += loss.item() * len(batch)
            seen += len(batch)
        train_seconds += time.perf_counter() - started
        test_loss, accuracy = _evaluate(model, x_test, y_test)
        if log is not None:
            log.metric(
                step=step, run=run, train_loss=total / seen, test_loss=test_loss, accuracy=accuracy,
                **_density(controller), **_structure(growing),
            )
        if progress is not None:
            progress(epoch + 1, config.epochs)

    total_params = sum(p.numel() for p in model.parameters())
    structural: list[dict[str, Any]] = (
        controller.events if controller is not None
        else lifecycle.events if lifecycle is not None
        else grower.events if grower is not None
        else []
    )
    events = Counter(e["kind"] for e in structural)
    sparse = controller is not None and config.connection is not None
    density = controller.actual_density if sparse and controller is not None else 1.0
    active_params = controller.active_params() if controller is not None else total_params
    extra: dict[str, Any] = {}
    if controller is not None:
        controller.remove()
    if controller is not None and "apoptosis" in config.parts:
        hidden = [g.layer for g in controller.groups]
        extra = {
            "strategy": config.strategy,
            "turnover": events["apoptosis"] / sum(controller.graph.layer_sizes[l] for l in hidden),
        }
        if family_tree is not None:
            plot_family_tree(controller.graph.lineage(), family_tree, layer=hidden,
                             title=f"{run}: hidden neurons", end=controller.step_count)
    if lifecycle is not None:
        lifecycle.remove()
        extra = {
            "strategy": config.strategy,
            "turnover": lifecycle.turnover(),
            "lineage": lifecycle.lineage_summary(),
        }
        if family_tree is not None:
            plot_family_tree(lifecycle.graph.lineage(), family_tree, layer=lifecycle.hidden,
                             title=f"{run}: hidden neurons", end=lifecycle.step_count)
    if grower is not None:
        grower.remove()
    if growing is not None:
        sizes = growing.sizes
        # "density" stays comparable with the other methods: every edge (adjacent and skip
        # blocks) over the weights of a dense MLP with the final layer sizes (adjacent blocks
        # only), so it can exceed 1 when skip edges outnumber the missing adjacent ones.
        # "final_density" is the graph's own: edges over the capacity of the blocks it has.
        density = growing.graph.nnz / sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        active_params = growing.active_params()
        curve = growth_curves([{**e, "run": run} for e in structural], [{"run": run, "step": 0, **start}])[run]
        extra = {
            **extra,
            "selection": config.selection,
            "layer_sizes": sizes,
            "final_density": float(growing.graph.density()),
            "nnz": int(growing.graph.nnz),
            "growth": growth_per_window(curve, config.growth_window, total_steps),
        }
    return {
        "run": run,
        "method": config.label,
        "policy": config.method,
        "dataset": data.name,
        "seed": config.seed,
        "density": density,
        "distribution": config.distribution if sparse else None,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "train_seconds": train_seconds,
        "active_params": active_params,
        "total_params": total_params,
        "steps": total_steps,
        "events": dict(sorted(events.items())),
        "edges_moved": sum(e["dropped"] for e in controller.events if e["kind"] == "rewire") if controller is not None else 0,
        **extra,
    }


def _rules(config: RunConfig, total_steps: int) -> list[Any]:
    """The engine's rules of a combined method, with the options its single methods use."""
    rules: list[Any] = []
    if "grow" in config.parts:
        rules.append(Growth(
            trigger=config.make_trigger(), katz=config.katz, braess=config.braess or None,
            selection=config.selection, seed=config.seed, **config.grow_options(),
        ))
    if config.connection is not None:
        rules.append(make_policy(config.connection, interval=config.interval, drop_fraction=config.drop_fraction, **config.policy_options))
    if "apoptosis" in config.parts:
        rules.append(Apoptosis(interval=config.interval, fraction=config.rate, strategy=config.strategy, end=int(0.75 * total_steps)))
        if config.senescence:
            rules.append(Senescence(lr_scale=config.lr_scale))
    return rules


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in percent) on a held-out set."""
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = 100.0 * (logits.argmax(1) == y).float().mean().item()
    return loss, accuracy


def _density(controller: Plasticity | None) -> dict[str, Any]:
    if controller is None or not controller.sparse:
        return {}
    return {"density": controller.density_report()}


def _structure(model: GrowingMLP | None) -> dict[str, Any]:
    """A growing model's layer sizes (keyed by layer, input to output) and edges: the points of
    the growth curve between events (see :func:`growcore.log.growth_curves`)."""
    if model is None:
        return {}
    return {"layer_sizes": {str(i): s for i, s in enumerate(model.sizes)}, "nnz": int(model.graph.nnz)}
