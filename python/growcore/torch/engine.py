"""The plasticity engine: one graph, one clock, one statistics feed, one event stream and one
transaction per step for any set of structural rules on any model.

    engine = Plasticity(model, optimizer, rules=[RigL(), Apoptosis()], density=0.1, total_steps=T)
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        engine.step(loss)          # before or after optimizer.step(): both work

What the engine owns:

- **Sites** (:mod:`growcore.torch.sites`): the managed weights, each a block of one graph, and
  the neuron groups (producer -> consumer pairs) that neuron rules act on.
- **Masking bound to the optimizer.** A gradient hook zeroes each sparse site's gradient outside
  its mask as soon as backward has accumulated it (so ``clip_grad_norm_`` and the optimizer see
  the sparse gradient; a rule that grows by gradient gets the dense one, kept aside for the step
  it is due at), and an optimizer post-step hook zeroes the weights outside the mask after every
  ``optimizer.step()``. The optimizer state outside the mask then stays zero: it starts zero, is
  zeroed wherever a plan changes a coordinate, and only ever sees zero gradients there.
- **The clock**: one tick per :meth:`Plasticity.step` call. A step whose optimizer step did not
  run (a ``torch.amp.GradScaler`` skipped it for non-finite gradients) drops its statistics and
  defers a due structural update to the next step that follows a real optimizer step, with a
  ``deferred`` event. Calling :meth:`~Plasticity.step` before ``optimizer.step()`` (the rigl-torch
  habit) is a one-step lag, not a bug: masks hold after every optimizer step either way.
- **The transaction**: statistics are fed, every due rule decides (in the documented order of
  :mod:`growcore.torch.rules`), then every plan is applied through a
  :class:`~growcore.torch.journal.Journal`. If anything fails, the graph, the rules' state, the
  weights, the optimizer state, the clock and the events are put back as they were.
- **Events** (:mod:`growcore.torch.events`): every structural change, a deferred update, a
  non-finite loss or statistic, in :attr:`Plasticity.events` and passed to ``on_event``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import growcore
from growcore.errors import InvalidArgumentError, StateDictError, is_int, is_real
from growcore.torch.checkpoint import check_config, check_state, load_graph
from growcore.torch.distributed import all_reduce_mean, broadcast_graph, is_distributed, mean_summaries
from growcore.torch.growing import GrowingMLP
from growcore.torch.hooks import CopyDropped
from growcore.torch.journal import Journal
from growcore.torch.masking import mask_in_place
from growcore.torch.rules import Event, Plan, Rule
from growcore.torch.sites import (
    MODULE_SITES,
    NORMS,
    NeuronGroup,
    Site,
    check_masks,
    find_sites,
    growing_wiring,
    infer_pairs,
    wire,
)
from growcore.torch.stats import ActivationStats

STATE_VERSION = 1
#: Optimizers whose update leaves a coordinate with a zero gradient and zero state where it is
#: (a zero weight stays exactly zero, weight decay included). After a step whose gradients were
#: all masked by the gradient hook, their weights need no re-masking; any other optimizer's do.
_ZERO_PRESERVING = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam,
    torch.optim.RAdam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta, torch.optim.ASGD,
)
#: Which engine manages a parameter, by id(parameter): (the parameter, the engine), both weakly
#: (tensors compare elementwise, so they cannot be the keys of a WeakKeyDictionary).
_OWNERS: dict[int, tuple[weakref.ref[torch.Tensor], weakref.ref[Plasticity]]] = {}


def _owner(param: torch.Tensor) -> Plasticity | None:
    entry = _OWNERS.get(id(param))
    if entry is None or entry[0]() is not param:
        return None
    engine = entry[1]()
    return engine if engine is not None and engine._handles else None


class Plasticity:
    """The plasticity engine of one model.

    Args:
        model: the model; sparse sites are masked in place at construction.
        optimizer: the optimizer of the model's parameters (it must hold every managed weight);
            its state of changed coordinates is zeroed in place, never rebuilt.
        rules: the structural rules, e.g. ``[RigL(), Apoptosis(), Senescence()]``; at most one
            connection rule (``Static``, ``SET``, ``RigL``). Their order in the list does not
            matter: see :mod:`growcore.torch.rules` for the order they act in.
        total_steps: the number of optimizer steps of the run (the schedules' clock).
        density: the fraction of the sparsified weights kept, in (0, 1]; required with a
            connection rule (then every site is sparsified), ignored without one (every site
            stays dense). Spread over the sites by ``distribution`` as in
            :class:`SparseController`.
        distribution: ``"erk"`` (default) or ``"uniform"``.
        layers: which modules are sites: ``None`` (every ``nn.Linear``, ``nn.Conv1d/2d/3d`` and
            attention projection), ``fnmatch`` patterns of names, or modules.
        dense: name patterns of modules to leave out even though ``layers`` selects them.
        layer_density: per-site densities (exact names), left out of the spread.
        masks: per-site starting masks (see :class:`SparseController`).
        pairs: the neuron groups as ``(producer, consumer)`` module names; ``None`` infers them
            from ``nn.Sequential`` chains and transformer layers (see :mod:`growcore.torch.sites`).
        seed: seeds the structure and every random decision.
        stats: feed per-neuron statistics to the graph every step. A neuron group's units are
            observed at the consumer's input (after the activation function); a site's other
            outputs at the site's output.
        saturation: (low, high) thresholds of the statistics' saturation fractions (default
            ``(0, 2)``; for a ``GrowingMLP``, its Growth rule's, else its activation's preset).

    A :class:`GrowingMLP` brings its own structure: its graph is the engine's, its blocks are
    the sites and its hidden layers (``hidden1``, ...: every incoming and outgoing block of the
    layer) the neuron groups, so ``density``, ``layers``, ``dense``, ``layer_density``,
    ``masks`` and ``pairs`` do not apply to it.
        on_event: called with every event at the end of the step that made it.
    """

    #: The module types that can be sites, and whether attention projections are.
    site_kinds: tuple[type, ...] = MODULE_SITES
    attention_sites: bool = True

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        rules: Sequence[Rule],
        *,
        total_steps: int,
        density: float | None = None,
        distribution: str = "erk",
        layers: Iterable[str] | Iterable[nn.Module] | None = None,
        dense: Iterable[str] = (),
        layer_density: Mapping[str, float] | None = None,
        masks: Mapping[str, Any] | None = None,
        pairs: Sequence[tuple[str, str]] | None = None,
        seed: int = 0,
        stats: bool = True,
        saturation: tuple[float, float] | None = None,
        on_event: Callable[[Event], None] | None = None,
        _group_names: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if optimizer is None or not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected the torch.optim.Optimizer that trains the model, got {optimizer!r}; "
                "the engine zeroes the optimizer state of every coordinate it changes"
            )
        if not is_int(total_steps) or total_steps < 1:
            raise InvalidArgumentError(f"total_steps: must be a positive integer, got {total_steps!r}")
        self.rules = _check_rules(rules)
        connection = [r for r in self.rules if r.connections]
        growing = isinstance(model, GrowingMLP)
        if growing:
            given = [k for k, v in (("density", density), ("layers", layers), ("layer_density", layer_density),
                                    ("masks", masks), ("pairs", pairs)) if v is not None] + (["dense"] if dense else [])
            if given:
                raise InvalidArgumentError(
                    f"{given[0]}: a GrowingMLP brings its own structure (its graph's blocks and hidden layers); "
                    "set it with GrowingMLP(sizes, density=..., skips=...)"
                )
        elif connection:
            if density is None:
                raise InvalidArgumentError(f"density: required with the connection rule {connection[0].name!r}, e.g. density=0.1")
            if not is_real(density) or not 0.0 < density <= 1.0:
                raise InvalidArgumentError(f"density: must be in (0, 1], got {density!r}")
        elif layer_density or masks:
            which = "layer_density" if layer_density else "masks"
            raise InvalidArgumentError(f"{which}: only applies with a connection rule (Static, SET or RigL)")
        self.model = model
        self.optimizer = optimizer
        self.total_steps = int(total_steps)
        self.density = float(density) if connection and density is not None else 1.0
        self.distribution = distribution
        self.seed = seed
        self.on_event = on_event
        #: Reduce RigL's candidates on the device even on CPU (always done on accelerators).
        self.reduce_on_device = False
        self.events: list[Event] = []
        self._step = 0
        self._deferred: dict[int, int] = {}  # rule index -> the step it was due at
        self._optimizer_steps = 0  # optimizer steps seen by the hook, ever
        self._optimizer_steps_at_last_step = 0
        self._masked_since_step = False
        self._handles: list[Any] = []
        self._grad_handles: list[Any] = []
        #: The step's loss (as given to step(), a float) and its gradient norm, for the rules.
        self.loss: float | None = None
        self._grad_norm: float | None = None
        self.gradients_pending = True
        #: The rules acting in the current step, in order, and what they pass each other.
        self.acting: list[Rule] = []
        self.handoff: dict[Any, Any] = {}
        #: Dense gradients kept aside before masking, for the rules that grow by gradient.
        self._dense_grads: dict[str, torch.Tensor] = {}
        #: The sites whose gradient the hook masked since the last optimizer step.
        self._grads_masked: set[str] = set()

        if isinstance(model, GrowingMLP):
            # The model's graph is the structure: its blocks are the sites (masked by the
            # model's own masks) and its hidden layers the neuron groups.
            if is_distributed():
                model.graph = broadcast_graph(model.graph)
                model.refresh_masks()
            self.wiring = growing_wiring(model)
            sites = self.wiring.sites
            self._check_optimizer(sites)
            self._check_owner(sites)
            self._graph = model.graph  # (read through the model: it may replace its graph)
            self.sparse = True
            if saturation is None:  # a Growth rule's thresholds (the ones it grows by), or the preset's
                growth = next((r for r in self.rules if hasattr(r, "thresholds")), None)
                saturation = (
                    growth.thresholds(model.activation)
                    if growth is not None
                    else growcore.saturation_thresholds(model.activation, 0.05)  # type: ignore[arg-type]
                )
        else:
            sites = find_sites(model, layers, dense, self.site_kinds, self.attention_sites)
            self._check_optimizer(sites)
            self._check_owner(sites)
            found = infer_pairs(model, sites) if pairs is None else _explicit_pairs(model, sites, pairs)
            self.wiring = wire(sites, found, names=dict(_group_names or {}))
            self._graph = self._build_graph(layer_density, masks)
            if is_distributed():
                self._graph = broadcast_graph(self._graph)
            self.sparse = bool(connection)
            if self.sparse:
                for site in self.sites:
                    site.mask = self._mask_of(site)
        for rule in self.rules:
            rule.bind(self)
        self.stats_feed = self._make_stats(stats, saturation)
        self._install_hooks()
        for site in sites:
            _OWNERS[id(site.weight)] = (weakref.ref(site.weight), weakref.ref(self))
        # The weights as they were before the first masking, until the first step: a model
        # whose checkpoint was loaded before the engine was built gets them back in
        # load_state_dict (see _unmask), instead of losing the edges the checkpoint has.
        self._unmasked = {s.name: s.weight.detach().clone() for s in self.sparse_sites}
        self.apply_masks()

    # ------------------------------------------------------------------ construction

    def _check_optimizer(self, sites: list[Site]) -> None:
        held = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        missing = [s.name for s in sites if id(s.weight) not in held and s.weight.requires_grad]
        if missing:
            raise InvalidArgumentError(
                f"optimizer: does not hold the weights of {missing}; build the optimizer over the model's "
                "parameters (e.g. torch.optim.Adam(model.parameters())) before the engine"
            )

    @staticmethod
    def _check_owner(sites: list[Site]) -> None:
        for site in sites:
            other = _owner(site.weight)
            if other is not None:
                raise InvalidArgumentError(
                    f"model: module {site.name!r} is already managed by another plasticity engine "
                    f"({type(other).__name__}); call its remove() first, or give both sets of rules to one engine"
                )

    def _build_graph(self, layer_density: Mapping[str, float] | None, masks: Mapping[str, Any] | None) -> growcore.Graph:
        names = [s.name for s in self.sites]
        overrides = dict(layer_density or {})
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise InvalidArgumentError(f"layer_density: {unknown} are not sparsified modules; they are {names}")
        for name, d in overrides.items():
            if not is_real(d) or not 0.0 < d <= 1.0:
                raise InvalidArgumentError(f"layer_density[{name!r}]: must be in (0, 1], got {d!r}")
        given = check_masks({} if masks is None else masks, self.sites)
        graph = growcore.Graph(
            self.wiring.sizes,
            self.density,
            seed=self.seed,
            distribution=self.distribution,  # type: ignore[arg-type]  # checked by the core
            block_density={s.block: overrides[s.name] for s in self.sites if s.name in overrides},
            blocks=self.wiring.blocks,
        )
        for site in self.sites:
            if site.name in given:
                current = graph.to_dense(*site.block)
                drop_r, drop_c = np.nonzero(current & ~given[site.name])
                grow_r, grow_c = np.nonzero(given[site.name] & ~current)
                graph.rewire(*site.block, drop_r, drop_c, grow_r, grow_c)
        # An empty block stays empty (an update moves a fraction of its edges): a density that
        # rounds a site's edges to 0 would leave it untrained, its output only its bias.
        empty = [s for s in self.sites if graph.block_nnz(*s.block) == 0]
        by_density = [s for s in empty if s.name not in overrides]
        if by_density:
            named = ", ".join(f"{s.name!r} ({s.shape[0]} x {s.shape[1]})" for s in by_density)
            raise InvalidArgumentError(
                f"density: {self.density!r} leaves no weight in module(s) {named} with the {self.distribution} "
                "distribution, so they would train nothing; raise it, give them a layer_density, or "
                "keep them dense with dense=[...]"
            )
        if empty:  # only sites with a layer_density of their own
            s = empty[0]
            raise InvalidArgumentError(
                f"layer_density[{s.name!r}]: {overrides[s.name]!r} leaves module {s.name!r} "
                f"({s.shape[0]} x {s.shape[1]}) no weight, so it would train nothing; raise it"
            )
        return graph

    def _make_stats(self, on: bool, saturation: tuple[float, float] | None) -> tuple[ActivationStats, ActivationStats] | None:
        if not on:
            return None
        saturation = (0.0, 2.0) if saturation is None else saturation
        grouped = {p.name for g in self.groups for p in g.producers}
        outputs = [(s.name, s.module) for s in self.sites if s.forwards and s.name not in grouped]
        outputs += [(g.name, g.observer) for g in self.groups if g.observer is not None and g.observe_on == "output"]
        inputs = [(g.name, g.observer) for g in self.groups if g.observer is not None and g.observe_on == "input"]
        return ActivationStats(outputs, saturation), ActivationStats(inputs, saturation, on="input")

    def _hook_gradients(self) -> None:
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles = []
        if self.sparse:
            for site in self.sites:
                if site.weight.requires_grad:
                    self._grad_handles.append(
                        site.weight.register_post_accumulate_grad_hook(  # type: ignore[no-untyped-call]
                            CopyDropped(lambda p, site=site: self._on_gradient(site, p))
                        )
                    )

    def refresh(self) -> None:
        """Follows a :class:`GrowingMLP` whose structure changed (a growth event resized its
        parameters and masks, or a checkpoint or rollback restored them): its sites, groups,
        masks and gradient hooks are derived anew. Nothing to do for other models."""
        if not isinstance(self.model, GrowingMLP):
            return
        self.model.refresh_masks()
        self.wiring = growing_wiring(self.model)
        self._hook_gradients()
        for site in self.sites:
            _OWNERS[id(site.weight)] = (weakref.ref(site.weight), weakref.ref(self))
        for rule in self.rules:
            rule.bind(self)

    def gradient_norm(self) -> float | None:
        """The norm of the whole masked gradient of the sites this step (the ranks' mean under
        torch.distributed), computed once per step; None without gradients."""
        if self._grad_norm is None:
            squares = [
                (s.weight.grad if s.mask is None else s.matrix(s.weight.grad) * s.mask).float().pow(2).sum()
                for s in self.sites
                if s.weight.grad is not None
            ]
            if not squares:
                return None
            total = float(torch.stack(squares).sum().sqrt())
            if is_distributed():
                total = float(all_reduce_mean(np.array([total]))[0])
            self._grad_norm = total
        return self._grad_norm

    def _install_hooks(self) -> None:
        self._hook_gradients()
        self._handles.append(self.optimizer.register_step_pre_hook(CopyDropped(lambda *_: self._before_optimizer_step())))
        self._handles.append(self.optimizer.register_step_post_hook(CopyDropped(lambda *_: self._after_optimizer_step())))

    # ------------------------------------------------------------------ structure

    @property
    def graph(self) -> growcore.Graph:
        """The one graph: the structure, the neurons' ids, lineage and statistics (a
        GrowingMLP's own graph)."""
        return self.model.graph if isinstance(self.model, GrowingMLP) else self._graph

    @property
    def sites(self) -> list[Site]:
        """Every managed weight, in the graph's block order."""
        return self.wiring.sites

    @property
    def sparse_sites(self) -> list[Site]:
        """The sites with a mask (every site under a connection rule)."""
        return [s for s in self.sites if s.mask is not None]

    @property
    def groups(self) -> list[NeuronGroup]:
        """The neuron groups (producer -> consumer pairs) that neuron rules act on."""
        return self.wiring.groups

    @property
    def step_count(self) -> int:
        """Steps so far (calls of :meth:`step`)."""
        return self._step

    def group(self, name: str) -> NeuronGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise InvalidArgumentError(f"group: no neuron group {name!r}; the groups are {[g.name for g in self.groups]}")

    def _mask_of(self, site: Site, graph: growcore.Graph | None = None) -> torch.Tensor:
        dense = (graph or self.graph).to_dense(*site.block)
        return torch.from_numpy(dense).to(site.weight.device).view(site.shape)

    # ------------------------------------------------------------------ the hooks

    def _gradient_due(self) -> bool:
        """Whether the next step runs a rule that reads the dense gradient."""
        step = self._step + 1
        return any(r.reads_gradient and (i in self._deferred or r.due(step, self)) for i, r in enumerate(self.rules))

    @torch.no_grad()
    def _on_gradient(self, site: Site, param: torch.Tensor) -> None:
        grad = param.grad
        if grad is None or site.mask is None:
            return
        if self._gradient_due():
            self._dense_grads[site.name] = grad.detach().clone()
        mask_in_place(grad, site.mask)
        self._grads_masked.add(site.name)

    def gradient(self, site: Site) -> torch.Tensor:
        """The site's dense gradient for a decision: the one kept aside before masking, or the
        weight's ``.grad`` (set by hand, or for a step without backward)."""
        kept = self._dense_grads.get(site.name)
        if kept is not None:
            return kept
        w = site.weight
        if not w.requires_grad:
            raise InvalidArgumentError(
                f"rigl: layer {site.name!r} is frozen (requires_grad=False), so it has no gradient to grow "
                f"by; keep it dense with dense=[{site.name!r}] or use SET"
            )
        if w.grad is None:
            raise RuntimeError(
                f"rigl: layer {site.name!r} has no gradient; call step() after loss.backward(), "
                "before zero_grad()"
            )
        return w.grad.detach()

    def _before_optimizer_step(self) -> None:
        for rule in self.rules:
            rule.before_optimizer_step(self)

    def _after_optimizer_step(self) -> None:
        self._optimizer_steps += 1
        # A weight whose gradient the hook masked, under an optimizer that keeps zero-gradient,
        # zero-state coordinates fixed, is still exactly zero outside its mask: masking it again
        # would be a second pass over every weight per step for nothing.
        unmasked = [s for s in self.sparse_sites if s.weight.grad is not None and s.name not in self._grads_masked]
        if unmasked or type(self.optimizer) not in _ZERO_PRESERVING:
            self.apply_masks()
        self._grads_masked.clear()
        self._masked_since_step = True
        for rule in self.rules:
            rule.after_optimizer_step(self)

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zeroes every weight outside its mask."""
        for site in self.sparse_sites:
            assert site.mask is not None
            mask_in_place(site.weight, site.mask)

    # ------------------------------------------------------------------ the step

    def step(self, loss: float | torch.Tensor | None = None) -> list[Event]:
        """Completes one training step: advances the clock, feeds the statistics, and runs every
        due rule as one transaction. Call once per optimizer step, after ``loss.backward()``
        and before ``zero_grad()`` (before or after ``optimizer.step()``). ``loss``: the step's
        loss, reported as a ``nonfinite`` event if it is NaN or inf. Returns this step's events.
        """
        step = self._step + 1
        no_optimizer_step = self._optimizer_steps == self._optimizer_steps_at_last_step
        #: Whether this step's gradients may still be applied by an optimizer step (backward ran
        #: since the last optimizer step: step() is called before optimizer.step(); or none ran
        #: since the last call): then a changed coordinate's gradient is zeroed too.
        self.gradients_pending = bool(self._grads_masked) or no_optimizer_step
        skipped = no_optimizer_step and not self._gradients_finite()
        self.loss = None if loss is None else _loss_float(loss)
        self._grad_norm = None
        early = {i: r.snapshot() for i, r in enumerate(self.rules) if r.stateful_due}
        due = {i: step for i, r in enumerate(self.rules) if r.due(step, self)}
        deferred_before = dict(self._deferred)
        events: list[Event] = []
        if self.loss is not None and not math.isfinite(self.loss):
            events.append({"kind": "nonfinite", "step": step, "what": "loss", "value": _float_text(self.loss)})
        if skipped:
            # The optimizer step did not run (a GradScaler found non-finite gradients): its
            # statistics and gradients are not the model's; act at the next real step.
            if due:
                events.append({"kind": "deferred", "step": step, "rules": [self.rules[i].name for i in due]})
            self._deferred.update({i: s for i, s in due.items() if i not in self._deferred})
            due = {}
            if self.stats_feed is not None:
                for feed in self.stats_feed:
                    feed.reset()
        else:
            due = {**self._deferred, **due}
        # Only a step with decisions copies the graph and the rules' state to roll back to (a
        # step without one only feeds statistics, which the core checks before it changes them).
        snapshot = (self.graph.copy(), [early[i] if i in early else r.snapshot() for i, r in enumerate(self.rules)]) if due else None
        journal = Journal()
        try:
            self._step = step
            self.graph.advance(1)
            if not skipped:
                events += self._observe(step)
            if any(e["kind"] == "nonfinite" for e in events):
                events += self._nonfinite_weights(step)
            plans: list[Plan] = []
            order = sorted(due, key=lambda i: self.rules[i].order)
            self.acting = [self.rules[i] for i in order]
            self.handoff = {}
            for i in order:
                plans += self.rules[i].decide(self, due[i])
            for plan in plans:
                events += plan(journal)
            for rule in self.rules:
                rule.end_step(self)
        except BaseException:
            journal.rollback()
            if snapshot is not None:
                graph, rule_states = snapshot
                self.graph.restore(graph)  # in place: callers may hold the graph
                for rule, state in zip(self.rules, rule_states):
                    rule.restore(state)
                self.refresh()  # a resized model's sites follow its restored structure
            else:
                for i, state in early.items():
                    self.rules[i].restore(state)
            self._deferred = deferred_before
            self._step = step - 1
            if not self._masked_since_step:
                self.apply_masks()
            self._dense_grads.clear()
            raise
        if not skipped:
            self._deferred = {}
        self._dense_grads.clear()
        self._unmasked = {}
        if not self._masked_since_step:
            self.apply_masks()  # no optimizer step since the last call: mask here
        self._masked_since_step = False
        self._optimizer_steps_at_last_step = self._optimizer_steps
        self.events += events
        # Last, so that an exception from the callback leaves a complete step behind.
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return events

    @torch.no_grad()
    def _gradients_finite(self) -> bool:
        """Whether every managed gradient (and the dense ones kept aside) is finite. Asked only
        when no optimizer step ran since the last call: non-finite gradients then mean that a
        GradScaler skipped the step (after a real optimizer step they are a diverged run, and
        the decision that reads them says so)."""
        grads = [g for g in [s.weight.grad for s in self.sites] + list(self._dense_grads.values()) if g is not None]
        # A sum is NaN or inf when any element is (one read, no bool tensor per gradient).
        return not grads or bool(torch.isfinite(torch.stack([g.sum(dtype=torch.float32) for g in grads])).all())

    def _observe(self, step: int) -> list[Event]:
        """Feeds the step's statistics to the graph; a non-finite one is an event."""
        if self.stats_feed is None:
            return []
        outputs, inputs = self.stats_feed
        grads: dict[str, torch.Tensor] = {}
        norms: dict[str, np.ndarray] = {}
        for site in self.sites:
            grad = site.weight.grad
            if grad is None:
                continue
            if grad.device.type == "cpu":
                # The core reads the kept weights' gradients in place, one read per edge.
                norms[site.name] = self.graph.row_norms(*site.block, site.matrix(grad.detach()).to(torch.float32).numpy())
            else:
                grads[site.name] = site.matrix(grad)
        masks = {s.name: s.mask for s in self.sparse_sites if s.mask is not None}
        summaries = outputs.collect(grads, masks, grad_norms=norms)
        by_group = {**inputs.collect({}), **{g.name: summaries.pop(g.name) for g in self.groups if g.name in summaries and g.observe_on == "output"}}
        before = sum(self.graph.nonfinite_counts)
        # Under torch.distributed every rank observes the ranks' mean, so graphs stay equal.
        average = mean_summaries if is_distributed() else dict
        for site in self.sites:
            summary = summaries.get(site.name)
            if summary:
                self.graph.observe(site.block[1], **average(summary))
        for g in self.groups:
            summary = dict(by_group.get(g.name, {}))
            # The norm of each unit's incoming gradient, over all its producers.
            parts = [norms[p.name] if p.name in norms else summaries.get(p.name, {}).get("grad_norm") for p in g.producers]
            known = [np.asarray(x, dtype=np.float32) for x in parts if x is not None]
            if len(known) == 1:
                summary["grad_norm"] = known[0]
            elif known:
                summary["grad_norm"] = np.sqrt(sum(x.astype(np.float64) ** 2 for x in known)).astype(np.float32)
            if summary:
                self.graph.observe(g.layer, **average(summary))
        if sum(self.graph.nonfinite_counts) > before:
            return [{"kind": "nonfinite", "step": step, "what": "statistics", "value": "NaN or inf"}]
        return []

    @torch.no_grad()
    def _nonfinite_weights(self, step: int) -> list[Event]:
        """A ``nonfinite`` event per site whose weight holds a NaN or inf (looked for only when
        the loss or the statistics were not finite, so a finite run pays nothing)."""
        events: list[Event] = []
        for site in self.sites:
            w = site.weight.detach()
            bad = ~torch.isfinite(w)
            if bool(bad.any()):
                value = float(w.reshape(-1)[bad.reshape(-1).nonzero()[0]])
                events.append({"kind": "nonfinite", "step": step, "what": site.name, "value": _float_text(value)})
        return events

    # ------------------------------------------------------------------ queries

    def masks(self) -> dict[str, torch.Tensor]:
        """Each sparse site's mask, weight-shaped, by name."""
        return {s.name: s.mask.view_as(s.weight) for s in self.sparse_sites if s.mask is not None}

    def density_report(self) -> dict[str, float]:
        """Actual density per site, from the graph."""
        return {s.name: self.graph.density(*s.block) for s in self.sites}

    @property
    def actual_density(self) -> float:
        """Kept weights over all managed weights."""
        return self.graph.nnz / sum(s.shape[0] * s.shape[1] for s in self.sites)

    def active_params(self) -> int:
        """Parameters that can be nonzero: kept weights, plus every parameter not managed."""
        managed = {id(s.weight) for s in self.sites}
        others = sum(p.numel() for p in self.model.parameters() if id(p) not in managed)
        return self.graph.nnz + others

    # ------------------------------------------------------------------ checkpoints

    def _config(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "density": self.density,
            "distribution": self.distribution,
            "rules": [r.to_dict() for r in self.rules],
            "sites": [s.name for s in self.sites],
            "groups": [[g.name, [p.name for p in g.producers], [c.name for c in g.consumers]] for g in self.groups],
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the graph (structure, statistics, RNG), the
        clock, the rules' state, pending deferred updates, the events, and the options the
        engine was built with (checked on load)."""
        return {
            "version": STATE_VERSION,
            "graph": self.graph.to_bytes(),
            "step": self._step,
            "config": self._config(),
            "rule_state": [r.state_dict() for r in self.rules],
            "deferred": dict(self._deferred),
            "events": [dict(e) for e in self.events],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict`; strict: anything missing, extra or built differently
        (rules and their options, density, distribution, total_steps, sites) raises
        :class:`growcore.StateDictError` and changes nothing."""
        step = check_state(state, {"version", "graph", "step", "config", "rule_state", "deferred", "events"}, STATE_VERSION)
        check_config(state["config"], self._config())
        graph = load_graph(state["graph"], self.graph)
        if graph.step != step:
            raise StateDictError(f"state['step']: {step}, but the saved graph is at step {graph.step}")
        rule_state = state["rule_state"]
        if not isinstance(rule_state, (list, tuple)) or len(rule_state) != len(self.rules):
            raise StateDictError(f"state['rule_state']: expected one entry per rule ({len(self.rules)})")
        for rule, s in zip(self.rules, rule_state):
            rule.check_state(s)
        deferred = state["deferred"]
        if not isinstance(deferred, Mapping) or not all(is_int(k) and 0 <= k < len(self.rules) and is_int(v) for k, v in deferred.items()):
            raise StateDictError(f"state['deferred']: expected a mapping of rule index to step, got {deferred!r}")
        events = state["events"]
        if not isinstance(events, list) or not all(isinstance(e, Mapping) and "kind" in e for e in events):
            raise StateDictError("state['events']: expected a list of events (mappings with a 'kind')")
        masks = [self._mask_of(s, graph) for s in self.sparse_sites]
        # Everything checked: swap in, in place (a caller may hold the graph).
        self.graph.restore(graph)
        self._step = step
        self._deferred = {int(k): int(v) for k, v in deferred.items()}
        self.events = [dict(e) for e in events]
        for rule, s in zip(self.rules, rule_state):
            rule.load_state_dict(s)
        self._unmask(masks)
        self.refresh()

    @torch.no_grad()
    def _unmask(self, masks: list[torch.Tensor]) -> None:
        """Installs the loaded ``masks`` (one per sparse site). A site whose weight is still as
        the engine's construction left it (the model's checkpoint was loaded before the engine
        was built, so its first masking zeroed the checkpoint's other edges) gets its weight
        from before that masking back; a weight loaded since is kept. Then the masks apply."""
        for site, mask in zip(self.sparse_sites, masks):
            before = self._unmasked.get(site.name)
            assert site.mask is not None
            w = site.weight
            if before is not None and torch.equal(w, before * site.mask.view_as(w)):
                w.copy_(before)
            site.mask = mask
            if isinstance(self.model, GrowingMLP):
                self.model.masks[site.block] = mask  # the model masks with the same tensors
        self._unmasked = {}
        self.apply_masks()

    def remove(self) -> None:
        """Detaches every hook the engine installed (statistics, gradients, optimizer); the
        model is left as it is, a plain model again."""
        if self.stats_feed is not None:
            for feed in self.stats_feed:
                feed.remove()
        for handle in self._handles + self._grad_handles:
            handle.remove()
        self._handles = []
        self._grad_handles = []
        for site in self.sites:
            if _owner(site.weight) is None:
                _OWNERS.pop(id(site.weight), None)
        for rule in self.rules:
            rule_remove = getattr(rule, "remove", None)
            if rule_remove is not None:
                rule_remove()


def _check_rules(rules: Any) -> list[Rule]:
    if isinstance(rules, Rule) or not isinstance(rules, (list, tuple)):
        raise TypeError(f"rules: expected a list of rules, e.g. [RigL(), Apoptosis()], got {rules!r}")
    for r in rules:
        if not isinstance(r, Rule):
            raise TypeError(f"rules: expected rule objects such as RigL() or Apoptosis(), got {r!r}")
    connection = [r for r in rules if r.connections]
    if len(connection) > 1:
        raise InvalidArgumentError(
            f"rules: at most one connection rule (Static, SET, RigL), got {[r.name for r in connection]}"
        )
    kinds = [type(r) for r in rules]
    twice = sorted({k.__name__ for k in kinds if kinds.count(k) > 1})
    if twice:
        raise InvalidArgumentError(f"rules: {twice} given more than once; give one with the options you want")
    return list(rules)


def _explicit_pairs(model: nn.Module, sites: list[Site], pairs: Any) -> list[tuple[str, str, list[nn.Module]]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)):
        raise TypeError(f"pairs: expected a list of (producer, consumer) module names, got {pairs!r}")
    out: list[tuple[str, str, list[nn.Module]]] = []
    modules = dict(model.named_modules())
    for p in pairs:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(n, str) for n in p)):
            raise TypeError(f"pairs: expected (producer, consumer) pairs of module names, got {p!r}")
        out.append((p[0], p[1], _norms_between(model, modules.get(p[0]), modules.get(p[1]))))
    return out


def _norms_between(model: nn.Module, a: nn.Module | None, b: nn.Module | None) -> list[nn.Module]:
    """The normalisation modules between ``a`` and ``b`` where both are children of one
    ``nn.Sequential`` (their units are the pair's: a newborn's are reset)."""
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            children = list(m.children())
            ids = [id(c) for c in children]
            if id(a) in ids and id(b) in ids and ids.index(id(a)) < ids.index(id(b)):
                between = children[ids.index(id(a)) + 1 : ids.index(id(b))]
                return [c for c in between if isinstance(c, NORMS)]
    return []


def _loss_float(loss: Any) -> float:
    value = float(loss.detach().float().sum()) if isinstance(loss, torch.Tensor) else loss
    if not is_real(value):
        raise TypeError(f"loss: expected a number or a tensor, got {loss!r}")
    return float(value)


def _float_text(x: float) -> str:
    return "NaN" if x != x else ("inf" if x > 0 else "-inf")
