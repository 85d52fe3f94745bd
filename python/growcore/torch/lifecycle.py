"""Neuron lifecycle for a chain of ``nn.Linear`` layers: apoptosis of unfit hidden neurons and
their replacement in place, decided in the core (``Graph.apoptosis``) and applied here.

The chain ``Linear_0, ..., Linear_{N-1}`` becomes a graph with layers ``[in_0, out_0, ...,
out_{N-1}]``: graph layer ``l`` for ``1 <= l < N`` is a hidden layer, fed by ``Linear_{l-1}``
(its incoming weights are that module's rows) and read by ``Linear_l`` (its outgoing weights are
that module's columns). Statistics are taken on each hidden layer's activations (the input of
``Linear_l``, after the activation function), so ``mean`` is the neuron's mean activation.

Replacing the neuron in slot ``s`` of hidden layer ``l``, by strategy:

- ``random``: fresh incoming weights and bias from ``nn.Linear``'s own initialisation
  (uniform in ``+-1/sqrt(fan_in)``), zero outgoing weights;
- ``mutation``: a parent's incoming weights plus Gaussian noise of standard deviation
  ``noise * std(parent's incoming weights)``, the parent's bias unchanged, zero outgoing weights;
- ``crossover``: ``alpha * p1 + (1 - alpha) * p2`` (weights and bias) plus the same noise on the
  weights, zero outgoing weights; ``alpha`` is recorded in the event;
- ``function_preserving``: fresh incoming weights, zero outgoing weights, and the dying neuron's
  mean contribution ``W_out[:, s] * mean_activation[s]`` added to the next layer's bias, so the
  output does not move for inputs at which the neuron sat at its mean activation. It needs a bias
  on the next layer and no ``LayerNorm`` over the hidden layer (which mixes the units), and is
  refused otherwise.

The optimizer state (every tensor shaped like its parameter) of the touched rows of
``Linear_{l-1}`` (weight rows and bias entries) and columns of ``Linear_l`` is zeroed in place;
the next layer's bias is shifted but keeps its state. A ``BatchNorm1d`` or ``LayerNorm`` between
the two (in ``layers``) has the touched units reset as in a fresh module (running mean 0 and
variance 1, affine weight 1 and bias 0, their optimizer state zeroed). Noise and fresh weights come from a
``torch.Generator`` seeded with the core's per-replacement ``noise_seed``: the same seed gives the
same replacements.

Stages (:meth:`Lifecycle.stages`): ``newborn`` (younger than ``maturity_age``; never killed),
``mature``, ``senior`` (from ``senior_age`` on) and ``dying`` (senescent). With ``senescence``
on, every event also samples each neuron's fitness into a :class:`growcore.Senescence` tracker: a
senior neuron whose fitness trend has been flat for ``flat_steps`` turns senescent (an event
``senescence``); its updates are scaled by ``lr_scale`` (see below); ``escalate_after`` steps
later it is escalated (an event ``escalation``) and replaced at that event like any apoptosis
victim (the replacement's event has ``cause: "senescence"``; the lineage records the cause
``"senescence"``).

``lr_scale`` is a temperature on a senescent neuron's learning: after every optimizer step, the
change the optimizer made to its incoming weights and bias is multiplied by ``lr_scale`` (1 keeps
it, 0 freezes the neuron). Scaling the update, not the gradient, makes the factor mean the same
for SGD and for Adam, whose update does not scale with the gradient.

Fitness ``"multi"`` is :meth:`growcore.Graph.multi_objective_fitness` with ``objective_weights``
(importance, diversity, stability, energy): importance is the default fitness; diversity comes
from activation profiles (each neuron's class-conditional mean activation with
``specialization=<classes>``, otherwise its activations on the last training batch); energy is
the root mean square of the neuron's incoming and outgoing weights.

Specialization tracking (``specialization=<number of classes>``, opt-in) keeps each hidden
neuron's mean activation per class, from the labels passed to :meth:`Lifecycle.step`
(``labels`` of the batch of the last forward pass); :meth:`Lifecycle.class_profiles` and
:meth:`Lifecycle.redundant_pairs` report them. A replaced neuron's profile starts over.

Distributed (``torch.distributed`` initialised, e.g. under DDP): every rank decides the same
events. The graph (with its random stream) is rank 0's, the per-neuron statistics and the class
counts are summed or averaged over the ranks every step, and ``"multi"`` fitness without
``specialization`` scores diversity on rank 0's last batch; so :meth:`Lifecycle.step` (and
:meth:`Lifecycle.objectives`) must be called on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import growcore
from growcore import lineage
from growcore.errors import InvalidArgumentError, StateDictError, is_int
from growcore.torch.checkpoint import check_config, check_state, load_graph
from growcore.torch.distributed import all_reduce_sum, broadcast_from_rank0, is_distributed
from growcore.torch.apoptosis import Apoptosis, Senescence
from growcore.torch.engine import Plasticity
from growcore.torch.hooks import CopyDropped
from growcore.torch.neurons import FITNESS as FITNESS  # re-exported from their former home
from growcore.torch.neurons import SENESCENCE, check_apoptosis_options, senescence_options
from growcore.torch.neurons import STRATEGIES as STRATEGIES
from growcore.torch.rules import Rule

STATE_VERSION = 3
STAGES = ("newborn", "mature", "senior", "dying")
#: Normalisation modules whose per-unit state is reset for a newborn.
_NORMS = (nn.BatchNorm1d, nn.LayerNorm)
Event = dict[str, Any]


class Lifecycle(Plasticity):
    """Apoptosis and regrowth of the hidden neurons of a chain of linear layers.

    Args:
        layers: the chain, in forward order (an ``nn.Sequential`` or a list of modules; only its
            ``nn.Linear`` modules are used, and each one's ``in_features`` must equal the
            previous one's ``out_features``).
        optimizer: the optimizer of those layers' parameters (state zeroed in place, never rebuilt).
        interval: optimizer steps between apoptosis events.
        fraction: at most this fraction of each hidden layer's mature neurons dies per event.
        strategy: ``"random"``, ``"mutation"``, ``"crossover"`` or ``"function_preserving"``.
        maturity_age: neurons younger than this many steps never die (default: ``interval``).
        threshold: if set, only neurons whose normalised fitness (z-score within the layer) is
            below it die, still at most ``fraction``.
        alpha: a crossover's ``(low, high)`` range for the first parent's weight, or ``"fitness"``.
        noise: mutation and crossover noise, relative to the parent's weight standard deviation.
        end: no apoptosis from this step on (``None``: never stops).
        fitness: what apoptosis ranks by: ``"default"`` (the accumulated statistics' fitness),
            ``"utility"`` (Continual Backprop: activation magnitude x mean |outgoing weight|),
            ``"dormancy"`` (ReDo: activation magnitude over the layer's mean) or ``"multi"``
            (importance, diversity, stability and energy weighted by ``objective_weights``).
        senior_age: age at which a neuron becomes senior (default ``10 * interval``); only
            seniors turn senescent.
        layer_options: per hidden layer (``"hidden1"``, ...: graph layer ``l`` is fed by the
            ``l``-th linear), overrides of ``strategy``, ``fraction``, ``maturity_age``,
            ``senior_age``, ``threshold``, ``alpha``, ``noise`` and ``fitness``: for example high
            turnover with crossover in shallow layers, function-preserving and low turnover in
            deep ones.
        senescence: ``True`` for the defaults, or a mapping overriding some of ``window`` (5
            fitness samples, one per event), ``epsilon`` (0.1), ``flat_steps`` and
            ``escalate_after`` (``5 * interval`` each), ``max_fraction`` (0.05 of a layer per
            event) and ``lr_scale`` (1.0); see :class:`growcore.Senescence`.
        objective_weights: ``(importance, diversity, stability, energy)`` for fitness ``"multi"``.
        specialization: number of classes to track class-conditional activations for (opt-in;
            then pass ``labels`` to :meth:`step`).
        seed: seeds the core's decisions.
        saturation: thresholds of the activation statistics (see :class:`ActivationStats`).
        on_event: called with every event.
    """

    def __init__(
        self,
        layers: nn.Sequential | Sequence[nn.Module],
        optimizer: torch.optim.Optimizer,
        *,
        interval: int = 100,
        fraction: float = 0.05,
        strategy: str = "function_preserving",
        maturity_age: int | None = None,
        threshold: float | None = None,
        alpha: tuple[float, float] | str | None = None,
        noise: float = 0.1,
        end: int | None = None,
        fitness: str = "default",
        senior_age: int | None = None,
        layer_options: Mapping[str, Mapping[str, Any]] | None = None,
        senescence: bool | Mapping[str, Any] = False,
        objective_weights: tuple[float, float, float, float] = (1.0, 0.5, 0.5, 0.25),
        specialization: int | None = None,
        seed: int = 0,
        saturation: tuple[float, float] = (0.0, 2.0),
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        # Normalisation modules between Linear_{l-1} and Linear_l act on hidden layer l's units.
        norms: dict[int, list[nn.Module]] = {}
        seen = 0
        for m in layers:
            if isinstance(m, nn.Linear):
                seen += 1
            elif isinstance(m, _NORMS) and 1 <= seen < len(linears):  # not on the output layer
                norms.setdefault(seen, []).append(m)
        if len(linears) < 2:
            raise InvalidArgumentError(
                f"layers: need at least two nn.Linear modules (one hidden layer), got {len(linears)}"
            )
        for i in range(1, len(linears)):
            if linears[i].in_features != linears[i - 1].out_features:
                raise InvalidArgumentError(
                    f"layers: not a chain: linear {i} has in_features={linears[i].in_features} but "
                    f"linear {i - 1} has out_features={linears[i - 1].out_features}"
                )
        if not is_int(interval) or interval < 1:
            raise InvalidArgumentError(f"interval: must be a positive integer, got {interval!r}")
        defaults = {
            "strategy": strategy,
            "fraction": fraction,
            "maturity_age": interval if maturity_age is None else maturity_age,
            "senior_age": 10 * interval if senior_age is None else senior_age,
            "threshold": threshold,
            "alpha": alpha,
            "noise": noise,
            "fitness": fitness,
        }
        check_apoptosis_options("", defaults)
        self.hidden = list(range(1, len(linears)))
        names = {f"hidden{l}": l for l in self.hidden}
        self.options: dict[int, dict[str, Any]] = {l: dict(defaults) for l in self.hidden}
        for name, overrides in (layer_options or {}).items():
            if name not in names:
                raise InvalidArgumentError(f"layer_options: unknown layer {name!r}; the hidden layers are {list(names)}")
            unknown = sorted(set(overrides) - set(defaults))
            if unknown:
                raise InvalidArgumentError(f"layer_options[{name!r}]: unknown options {unknown}; expected some of {sorted(defaults)}")
            merged = {**defaults, **overrides}
            check_apoptosis_options(f"layer_options[{name!r}].", merged)
            self.options[names[name]] = merged
        if end is not None and (not is_int(end) or end < 0):
            raise InvalidArgumentError(f"end: must be a non-negative integer step or None, got {end!r}")
        self.senescence = senescence_options(senescence, interval)
        if (
            not isinstance(objective_weights, (tuple, list))
            or len(objective_weights) != 4
            or not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in objective_weights)
        ):
            raise InvalidArgumentError(
                f"objective_weights: expected 4 finite non-negative numbers (importance, diversity, "
                f"stability, energy), got {objective_weights!r}"
            )
        if specialization is not None and (
            not is_int(specialization) or specialization < 2
        ):
            raise InvalidArgumentError(f"specialization: the number of classes must be an integer >= 2, got {specialization!r}")
        for l, mods in norms.items():
            for m in mods:
                size = _norm_size(m)
                if size != linears[l - 1].out_features:
                    raise InvalidArgumentError(
                        f"layers: {type(m).__name__}({size}) after linear {l - 1} does not act on a hidden "
                        f"layer of {linears[l - 1].out_features} units"
                    )
        for l in self.hidden:
            if self.options[l]["strategy"] != "function_preserving":
                continue
            overridden = "strategy" in (layer_options or {}).get(f"hidden{l}", {})
            where = f"layer_options['hidden{l}'].strategy" if overridden else "strategy"
            if linears[l].bias is None:
                raise InvalidArgumentError(
                    f"{where}: function_preserving moves a dying neuron's mean contribution into the next "
                    f"layer's bias, but linear {l} (reading hidden{l}) has no bias; use another strategy"
                )
            if any(isinstance(m, nn.LayerNorm) for m in norms.get(l, [])):
                raise InvalidArgumentError(
                    f"{where}: function_preserving cannot keep the output with a LayerNorm over hidden{l}: "
                    "it normalises across the units, so a newborn shifts every unit; use another strategy"
                )
        self.norms = norms
        self.linears = linears
        self.interval = interval
        self.end = end
        self.objective_weights = tuple(float(w) for w in objective_weights)
        self.specialization = specialization
        # The chain as a model of its own (its modules are the caller's): hidden layer l is the
        # neuron group "hidden{l}" of the pair (linear l-1, linear l).
        chain = layers if isinstance(layers, nn.Sequential) else nn.Sequential(*layers)
        child_names = {id(m): n for n, m in chain.named_children()}
        linear_names = [child_names[id(m)] for m in linears]
        apoptosis = Apoptosis(
            interval=interval,
            fraction=fraction,
            strategy=strategy,
            maturity_age=self.options[1]["maturity_age"],
            senior_age=self.options[1]["senior_age"],
            threshold=threshold,
            alpha=alpha,
            noise=noise,
            end=end,
            fitness=lambda engine, group: self._fitness(int(group.name[len("hidden") :])),
            group_options={
                f"hidden{l}": {k: v for k, v in self.options[l].items() if k != "fitness"} for l in self.hidden
            },
        )
        rules: list[Rule] = [apoptosis]
        tracker = growcore.Senescence()
        if self.senescence is not None:
            o = self.senescence
            aging = Senescence(interval=interval, end=end, **{k: o[k] for k in SENESCENCE})
            tracker = aging.tracker
            rules.append(aging)
        super().__init__(
            chain,
            optimizer,
            rules,
            total_steps=1,  # no rule of the lifecycle reads a schedule
            layers=list(linears),
            pairs=[(linear_names[l - 1], linear_names[l]) for l in self.hidden],
            seed=seed,
            saturation=saturation,
            on_event=on_event,
            _group_names={linear_names[l - 1]: f"hidden{l}" for l in self.hidden},
        )
        #: The senescence tracker (the Senescence rule's, or an idle one with senescence off).
        self.tracker = tracker
        # The last training batch's activations of each hidden layer, kept for profiles.
        self._last: dict[int, torch.Tensor] = {}
        wants_profiles = specialization is not None or any(o["fitness"] == "multi" for o in self.options.values())
        if wants_profiles:
            self._handles += [
                linears[l].register_forward_pre_hook(CopyDropped(lambda mod, inputs, l=l: self._keep(mod, l, inputs[0])))
                for l in self.hidden
            ]
        self._class_sum: dict[int, torch.Tensor] = {}
        self._class_count: dict[int, torch.Tensor] = {}
        if specialization is not None:
            for l in self.hidden:
                w = linears[l].weight
                self._class_sum[l] = torch.zeros(specialization, w.shape[1], dtype=torch.float32, device=w.device)
                self._class_count[l] = torch.zeros(specialization, w.shape[1], dtype=torch.float32, device=w.device)

    # ------------------------------------------------------------------ the training-loop call

    @property
    def stats(self) -> Any:
        """The statistics hooks of the hidden layers (None with statistics off)."""
        return None if self.stats_feed is None else self.stats_feed[1]

    def step(self, labels: torch.Tensor | None = None) -> list[Event]:  # type: ignore[override]
        """Call once after every ``optimizer.step()``: feeds the step's statistics to the graph
        and, every ``interval`` steps, updates senescence (if on) and replaces the least fit
        mature hidden neurons and the escalated senescent ones. ``labels``: the class of each
        sample of the last forward pass (with ``specialization``). Returns this step's events.

        At an event every layer is decided on the same weights before any of them changes, so
        a failed decision (a non-finite fitness, say) leaves the clock, the graph, the tracker,
        the weights and the optimizer state as they were (the step's statistics are dropped)."""
        saved = ({l: t.clone() for l, t in self._class_sum.items()}, {l: t.clone() for l, t in self._class_count.items()})
        if labels is not None:
            self._observe_classes(labels)  # checks the labels before any count changes
        try:
            events = super().step()
        except BaseException:
            self._class_sum, self._class_count = saved
            raise
        for e in events:
            layer = int(e["layer"][len("hidden") :]) if e["kind"] == "apoptosis" else None
            if layer in self._class_sum:  # a newborn's class profile starts over
                self._class_sum[layer][:, e["slot"]] = 0.0
                self._class_count[layer][:, e["slot"]] = 0.0
        return events

    def _keep(self, module: nn.Module, layer: int, activations: torch.Tensor) -> None:
        if module.training:
            self._last[layer] = activations.detach().reshape(-1, activations.shape[-1])

    @torch.no_grad()
    def _observe_classes(self, labels: torch.Tensor) -> None:
        if self.specialization is None:
            raise InvalidArgumentError("labels: class tracking is off; pass specialization=<number of classes>")
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.dim() != 1:
            raise InvalidArgumentError(f"labels: expected a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.specialization):
            raise InvalidArgumentError(
                f"labels: classes must be in [0, {self.specialization}), got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        seen = {layer: acts for layer, acts in self._last.items() if layer in self.hidden}
        for acts in seen.values():  # every layer is checked before any count changes
            if acts.shape[0] != labels.numel():
                raise InvalidArgumentError(
                    f"labels: {labels.numel()} labels for a last forward pass of {acts.shape[0]} samples"
                )
        for layer, acts in seen.items():
            index, ones = labels.to(acts.device, torch.long), torch.ones_like(acts, dtype=torch.float32)
            if is_distributed():  # every rank counts every rank's samples
                sums = torch.zeros_like(self._class_sum[layer]).index_add_(0, index, acts.float())
                counts = torch.zeros_like(self._class_count[layer]).index_add_(0, index, ones)
                self._class_sum[layer] += all_reduce_sum(sums)
                self._class_count[layer] += all_reduce_sum(counts)
            else:
                self._class_sum[layer].index_add_(0, index, acts.float())
                self._class_count[layer].index_add_(0, index, ones)

    def _fitness(self, layer: int) -> np.ndarray | None:
        """The layer's raw fitness of its configured kind (None: the accumulated default)."""
        kind = self.options[layer]["fitness"]
        if kind == "utility":
            out_weight = self.linears[layer].weight.detach().abs().mean(dim=0).double().cpu().numpy()
            return self.graph.fitness_scores(layer, "utility", out_weight)
        if kind == "dormancy":
            return self.graph.fitness_scores(layer, "dormancy")
        if kind == "multi":
            return self.objectives(layer)["fitness"]
        return None

    def objectives(self, layer: int) -> dict[str, np.ndarray]:
        """The multi-objective fitness of hidden layer ``layer`` and its raw terms (see the module
        docs): ``importance``, ``diversity``, ``stability``, ``energy`` and ``fitness``."""
        self._check_hidden(layer)
        w_in, w_out = self.linears[layer - 1].weight.detach(), self.linears[layer].weight.detach()
        squares = w_in.double().pow(2).sum(dim=1) + w_out.double().pow(2).sum(dim=0)
        energy = (squares / (w_in.shape[1] + w_out.shape[0])).sqrt().cpu().numpy()
        profiles = self.class_profiles(layer) if self.specialization is not None else self._batch_profiles(layer)
        weights = self.objective_weights
        diversity = growcore.diversity(profiles) if profiles is not None else None
        if diversity is None and weights[1] != 0.0:
            diversity = np.ones(w_in.shape[0])  # nothing seen yet: everyone counts as distinct
        return self.graph.multi_objective_fitness(
            layer, diversity=diversity, energy=energy, weights=weights  # type: ignore[arg-type]
        )

    def _batch_profiles(self, layer: int) -> np.ndarray | None:
        # Distributed: rank 0's batch, so every rank scores diversity alike (a collective call);
        # if rank 0 fails to read it, every rank raises, so step() rolls back on each.
        if is_distributed():
            return broadcast_from_rank0(lambda: self._profiles_here(layer), f"the batch profiles of hidden{layer}")
        return self._profiles_here(layer)

    def _profiles_here(self, layer: int) -> np.ndarray | None:
        """This rank's last training batch's activations of the layer, shape (neurons, samples)."""
        acts = self._last.get(layer)
        return None if acts is None else acts.double().T.cpu().numpy()

    def class_profiles(self, layer: int) -> np.ndarray:
        """Each neuron's mean activation per class, shape ``(neurons, classes)`` (0 for a class
        not seen since the neuron was born). Needs ``specialization``."""
        self._check_hidden(layer)
        if self.specialization is None:
            raise InvalidArgumentError("class_profiles: class tracking is off; pass specialization=<number of classes>")
        mean = self._class_sum[layer] / self._class_count[layer].clamp(min=1.0)
        return mean.double().T.cpu().numpy()

    def redundant_pairs(self, layer: int, threshold: float = 0.95) -> dict[str, np.ndarray]:
        """Pairs of neurons of hidden layer ``layer`` whose class profiles have cosine similarity
        at least ``threshold`` (columns ``a``, ``b``: slots; ``similarity``), most similar first."""
        return growcore.redundant_pairs(self.class_profiles(layer), threshold)

    def stages(self, layer: int) -> list[str]:
        """Each neuron's stage in hidden layer ``layer``: ``newborn``, ``mature``, ``senior`` or
        ``dying`` (senescent)."""
        self._check_hidden(layer)
        o = self.options[layer]
        senior = max(o["senior_age"], o["maturity_age"])
        names = [STAGES[c] for c in self.graph.stages(layer, o["maturity_age"], senior)]
        for slot in self.tracker.senescent(self.graph, layer):
            names[int(slot)] = "dying"
        return names

    def _check_hidden(self, layer: int) -> None:
        if layer not in self.hidden:
            raise InvalidArgumentError(f"layer: {layer!r} is not a hidden layer; the hidden layers are {self.hidden}")

    # ------------------------------------------------------------------ reports

    def turnover(self) -> float:
        """Replacements so far over the number of hidden neurons (can exceed 1)."""
        hidden = sum(self.graph.layer_sizes[l] for l in self.hidden)
        return sum(1 for e in self.events if e["kind"] == "apoptosis") / hidden

    def lineage_summary(self) -> dict[str, Any]:
        """Generations and descendants over the hidden neurons' lineage.

        ``neurons_ever``, ``max_generation``, ``mean_generation_alive``, and from
        :meth:`descent_summary` ``max_descendants``, ``mean_descendants`` and
        ``fitness_correlation``.
        """
        table = self.graph.lineage()
        hidden = np.isin(table["layer"], self.hidden)
        alive = hidden & (table["cause"] == "alive")
        return {
            "neurons_ever": int(hidden.sum()),
            "max_generation": int(table["generation"][hidden].max()),
            "mean_generation_alive": float(table["generation"][alive].mean()),
            **self.descent_summary(table),
        }

    def descent_summary(self, table: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Descendants through breeding and their correlation with fitness, hidden neurons only.

        ``max_descendants`` and ``mean_descendants`` are over every hidden neuron ever, counted
        by :func:`growcore.lineage.descendants` without succession links (a random or
        function-preserving newborn names the neuron it replaced as its parent but inherits
        nothing from it, so those strategies leave 0 descendants). ``fitness_correlation`` is
        :func:`growcore.lineage.evolutionary_fitness` (``n``, ``pearson``, ``spearman``; ``None``
        where undefined) over the hidden neurons with a known normalised fitness: each one killed
        by apoptosis at its death (the event's ``fitness``), each living one now.
        """
        table = self.graph.lineage() if table is None else table
        hidden = np.isin(table["layer"], self.hidden)
        fitness = lineage.death_fitness(self.events)
        for layer in self.hidden:
            # The same measure the events recorded at death: the layer's configured fitness.
            now = self.graph.normalized_fitness(layer, self._fitness(layer))
            fitness.update(zip(self.graph.ids(layer).tolist(), now.tolist()))
        counts = lineage.descendants(table, succession=False)[hidden]
        corr = lineage.evolutionary_fitness(table, fitness, succession=False)
        return {
            "max_descendants": int(counts.max()),
            "mean_descendants": float(counts.mean()),
            "fitness_correlation": {
                k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in corr.items()
            },
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The graph, the step, the senescence tracker, the events so far and the class
        profiles (CPU tensors), for :meth:`load_state_dict`."""
        return {
            "version": STATE_VERSION,
            "config": self._lifecycle_config(),
            "graph": self.graph.to_bytes(),
            "step": self._step,
            "senescence": self.tracker.to_bytes(),
            "events": [dict(e) for e in self.events],
            "class_sum": {l: t.cpu().clone() for l, t in self._class_sum.items()},
            "class_count": {l: t.cpu().clone() for l, t in self._class_count.items()},
        }

    def _lifecycle_config(self) -> dict[str, Any]:
        """The options a resumed run must share."""
        return {
            "interval": self.interval,
            "end": self.end,
            "layers": {f"hidden{l}": dict(o) for l, o in self.options.items()},
            "senescence": None if self.senescence is None else dict(self.senescence),
            "objective_weights": list(self.objective_weights),
            "specialization": self.specialization,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Strict: a missing or extra key, a wrong version, options other than this lifecycle's
        (interval, strategy, fraction, ...: ``state['config']``), a graph that does not fit the
        layers or class profiles that do not fit the tracking raise
        :class:`growcore.StateDictError` and change nothing."""
        keys = {"version", "config", "graph", "step", "senescence", "events", "class_sum", "class_count"}
        step = check_state(state, keys, STATE_VERSION)
        check_config(state["config"], self._lifecycle_config())
        graph = load_graph(state["graph"], self.graph)
        if graph.step != step:
            raise StateDictError(f"state['step']: {step}, but the saved graph is at step {graph.step}")
        try:
            growcore.Senescence.from_bytes(state["senescence"])  # checked before anything changes
        except (growcore.GrowcoreError, TypeError) as e:
            raise StateDictError(f"state['senescence']: {e}") from e
        events = state["events"]
        if not isinstance(events, list) or not all(isinstance(e, Mapping) and "kind" in e for e in events):
            raise StateDictError("state['events']: expected a list of events (mappings with a 'kind')")
        profiles = {}
        for key in ("class_sum", "class_count"):
            saved, mine = state[key], getattr(self, f"_{key}")
            if not isinstance(saved, Mapping) or set(saved) != set(mine) or any(
                not isinstance(saved[l], torch.Tensor) or saved[l].shape != mine[l].shape for l in mine
            ):
                raise StateDictError(f"state[{key!r}]: does not fit the class tracking of these layers")
            profiles[key] = {l: saved[l].to(mine[l].device, mine[l].dtype) for l in mine}
        # In place, as a failed step restores them: references to the graph or tracker stay live.
        self.graph.restore(graph)
        self.tracker.load_bytes(state["senescence"])
        self._step = step
        self.events = [dict(e) for e in events]
        self._deferred = {}
        for key, values in profiles.items():
            for l, t in values.items():
                getattr(self, f"_{key}")[l].copy_(t)


def _norm_size(m: nn.Module) -> int:
    if isinstance(m, nn.LayerNorm):
        shape = m.normalized_shape
        return int(shape[0]) if len(shape) == 1 else -1
    return int(m.num_features)  # type: ignore[arg-type]


