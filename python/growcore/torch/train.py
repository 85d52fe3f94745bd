"""One supervised training run of an MLP, dense or under a :class:`SparseController`: the loop
behind ``growcore run``. Deterministic on CPU for a seed: the same structure, events and losses.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from growcore.data import Dataset
from growcore.errors import InvalidArgumentError
from growcore.lineage import plot_family_tree
from growcore.log import RunLog, run_name
from growcore.torch.controller import SparseController
from growcore.torch.lifecycle import STRATEGIES, Lifecycle
from growcore.torch.policies import POLICIES, make_policy

METHODS = ("dense", *POLICIES, "apoptosis")


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

    @property
    def label(self) -> str:
        """The method as reported: the policy, or ``apoptosis-<strategy>`` (``+senescence``)."""
        if self.method != "apoptosis":
            return self.method
        return f"apoptosis-{self.strategy}" + ("+senescence" if self.senescence else "")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidArgumentError(f"policy: unknown method {self.method!r}; expected one of {list(METHODS)}")
        if not 0.0 < self.density <= 1.0:
            raise InvalidArgumentError(f"density: must be in (0, 1], got {self.density!r}")
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
        if self.senescence and self.method != "apoptosis":
            raise InvalidArgumentError(f"senescence: only applies to the apoptosis method, not {self.method!r}")
        if not self.hidden and self.method == "apoptosis":
            raise InvalidArgumentError("hidden: apoptosis needs at least one hidden layer")
        if any(h < 1 for h in self.hidden):
            raise InvalidArgumentError(f"hidden: layer sizes must be at least 1, got {list(self.hidden)}")


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
    run = run_name(config.label, config.seed)
    torch.manual_seed(config.seed)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    model = mlp(data.num_features, config.hidden, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch

    def on_event(event: dict[str, Any]) -> None:
        if log is not None:
            fields = {k: v for k, v in event.items() if k not in ("kind", "step", "layer")}
            log.event(event["kind"], step=event["step"], run=run, layer=event["layer"], **fields)

    controller: SparseController | None = None
    lifecycle: Lifecycle | None = None
    if config.method == "apoptosis":
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
    if log is not None:
        log.metric(step=0, run=run, test_loss=test_loss, accuracy=accuracy, **_density(controller))
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
                controller.step()
            if lifecycle is not None:
                lifecycle.step()
            step += 1
            total += loss.item() * len(batch)
            seen += len(batch)
        train_seconds += time.perf_counter() - started
        test_loss, accuracy = _evaluate(model, x_test, y_test)
        if log is not None:
            log.metric(
                step=step, run=run, train_loss=total / seen, test_loss=test_loss, accuracy=accuracy,
                **_density(controller),
            )
        if progress is not None:
            progress(epoch + 1, config.epochs)

    total_params = sum(p.numel() for p in model.parameters())
    structural = controller.events if controller is not None else lifecycle.events if lifecycle is not None else []
    events = Counter(e["kind"] for e in structural)
    extra: dict[str, Any] = {}
    if controller is not None:
        controller.remove()
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
    return {
        "run": run,
        "method": config.label,
        "policy": config.method,
        "dataset": data.name,
        "seed": config.seed,
        "density": controller.actual_density if controller is not None else 1.0,
        "distribution": config.distribution if controller is not None else None,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "train_seconds": train_seconds,
        "active_params": controller.active_params() if controller is not None else total_params,
        "total_params": total_params,
        "steps": total_steps,
        "events": dict(sorted(events.items())),
        "edges_moved": sum(e["dropped"] for e in controller.events) if controller is not None else 0,
        **extra,
    }


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in percent) on a held-out set."""
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = 100.0 * (logits.argmax(1) == y).float().mean().item()
    return loss, accuracy


def _density(controller: SparseController | None) -> dict[str, Any]:
    if controller is None:
        return {}
    return {"density": controller.density_report()}
