"""Sites: the weights whose structure the engine manages, and how they map to one graph.

A **site** is one weight matrix: an ``nn.Linear``'s weight, an ``nn.Conv1d/2d/3d``'s weight
viewed as its ``(out, in * kernel)`` matrix, or a 2-D projection parameter of an
``nn.MultiheadAttention`` (``in_proj_weight``, or ``q/k/v_proj_weight``; its ``out_proj`` is an
``nn.Linear`` and a site of its own). Each site is one block ``(a, b)`` of the engine's graph:
rows are the site's outputs (graph layer ``b``), columns its inputs (layer ``a``).

A **neuron group** is a producer site whose outputs are read, unit by unit, by one consumer site
(producer -> consumer): its neurons are the producer's output features or channels (rows of the
producer, columns of the consumer), and neuron-level rules (apoptosis, senescence) act on them.
Groups are inferred from

- ``nn.Sequential`` chains: two sites in a row with only unit-wise modules between (activations,
  dropout, ``BatchNorm``, a ``LayerNorm`` over the features, ``Identity``), at any depth, so
  residual MLP blocks built from a ``Sequential`` are found too;
- a transformer layer's feed-forward ``linear1 -> linear2`` (``nn.TransformerEncoderLayer``,
  ``nn.TransformerDecoderLayer``);

or given explicitly as ``pairs=[("fc1", "fc2"), ...]`` (module names). Where a linear producer
feeds a linear consumer, the two share one graph layer, so the graph is the model's real layered
DAG (Katz, lineage and routing mean something); a convolution's consumer reads each channel
through ``kernel`` columns, so a conv -> conv group keeps the sites' blocks apart and maps a
channel to its columns on the torch side.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from growcore.errors import InvalidArgumentError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
MODULE_SITES = (nn.Linear, *CONVS)
#: The projection parameters of nn.MultiheadAttention that are sites.
ATTENTION_PARAMS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
#: Unit-wise modules that may stand between a producer and its consumer in a Sequential.
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
_PASS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
#: Activations that mix units, so they break a chain.
_MIXING = (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d, nn.MultiheadAttention, nn.GLU)


@dataclass
class Site:
    """One managed weight matrix and its block of the graph."""

    name: str  #: the module's name, or ``module.param`` for an attention projection
    module: nn.Module
    param: str  #: the attribute holding the weight ("weight", "in_proj_weight", ...)
    block: tuple[int, int] = (0, 0)
    #: bool (out, in * kernel) mask on the weight's device; None while the site is fully dense.
    mask: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        w = getattr(self.module, self.param)
        assert isinstance(w, torch.Tensor)
        return w

    @property
    def bias(self) -> torch.Tensor | None:
        b = getattr(self.module, "bias", None) if self.param == "weight" else None
        return b if isinstance(b, torch.Tensor) else None

    @property
    def shape(self) -> tuple[int, int]:
        """The block's (rows, cols): (outputs, inputs * kernel)."""
        w = self.weight
        return int(w.shape[0]), int(w[0].numel())

    @property
    def kernel(self) -> int:
        """Columns per input unit: the kernel's size for a convolution, else 1."""
        w = self.weight
        return int(math.prod(w.shape[2:])) if w.dim() > 2 else 1

    @property
    def forwards(self) -> bool:
        """Whether the module's forward hooks see this site's output (not so for the attention
        projections, which the attention module applies itself)."""
        return self.param == "weight"

    def matrix(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (weight-shaped) as the block's matrix: a view when the layout allows."""
        return t.reshape(t.shape[0], -1)


@dataclass
class NeuronGroup:
    """Units that ``producers`` compute (a unit is one row of each) and ``consumers`` read
    (``kernel`` columns of each per unit): a producer -> consumer pair of modules, or a hidden
    layer of a :class:`GrowingMLP` with its incoming and outgoing blocks."""

    name: str
    layer: int  #: the graph layer of the units
    producers: list[Site]
    consumers: list[Site]
    norms: list[nn.Module] = field(default_factory=list)
    #: The units' bias (None: none), and the bias of each consumer's outputs.
    bias: torch.Tensor | None = None
    consumer_biases: list[torch.Tensor | None] = field(default_factory=list)
    #: The module whose input (or output) is the units' activations, for the statistics.
    observer: nn.Module | None = None
    observe_on: str = "input"

    @property
    def size(self) -> int:
        return self.producers[0].shape[0]


def pair_group(name: str, layer: int, producer: Site, consumer: Site, norms: list[nn.Module]) -> NeuronGroup:
    """The group of a producer module whose outputs ``consumer`` reads (observed at its input)."""
    return NeuronGroup(name, layer, [producer], [consumer], norms, producer.bias, [consumer.bias], consumer.module, "input")


@dataclass
class Wiring:
    """The graph's layer sizes and blocks, the sites and the neuron groups."""

    sizes: list[int]
    sites: list[Site]
    groups: list[NeuronGroup]

    @property
    def blocks(self) -> list[tuple[int, int]]:
        return [s.block for s in self.sites]

    def site(self, name: str) -> Site:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)


def find_sites(
    model: nn.Module,
    layers: Iterable[str] | Iterable[nn.Module] | None,
    dense: Iterable[str],
    kinds: tuple[type, ...] = MODULE_SITES,
    attention: bool = True,
) -> list[Site]:
    """The model's sites selected by ``layers`` (None: every one; name patterns; or modules),
    less those matching a ``dense`` pattern, in ``named_modules`` order."""
    candidates: list[Site] = []
    for name, m in model.named_modules():
        assert isinstance(m, nn.Module)
        if isinstance(m, kinds):
            candidates.append(Site(name, m, "weight"))
        elif attention and isinstance(m, nn.MultiheadAttention):
            for p in ATTENTION_PARAMS:
                if isinstance(getattr(m, p, None), torch.Tensor):
                    candidates.append(Site(f"{name}.{p}" if name else p, m, p))
    kind_names = " or ".join(f"nn.{k.__name__}" for k in kinds) + (" module or attention projection" if attention else " module")
    if isinstance(layers, str) or isinstance(dense, str):
        which, value = ("layers", layers) if isinstance(layers, str) else ("dense", dense)
        raise TypeError(f"{which}: expected a list of name patterns, got the string {value!r}; write [{value!r}]")
    names = [s.name for s in candidates]
    if layers is None:
        chosen = candidates
    else:
        wanted = list(layers)
        if all(isinstance(x, nn.Module) for x in wanted):
            ids = {id(x) for x in wanted}
            chosen = [s for s in candidates if id(s.module) in ids]
            if len({id(s.module) for s in chosen}) != len(ids):
                raise InvalidArgumentError(f"layers: some modules are not {kind_names}s of the model")
        elif all(isinstance(x, str) for x in wanted):
            patterns = _patterns("layers", wanted, names, kind_names)
            chosen = [s for s in candidates if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
        else:
            odd = [x for x in wanted if not isinstance(x, (str, nn.Module))]
            if odd:
                raise TypeError(f"layers: expected name patterns (str) or modules, got {odd[0]!r}")
            raise TypeError("layers: expected name patterns or modules, not a mix")
    skip = _patterns("dense", list(dense), names, kind_names)
    chosen = [s for s in chosen if not any(fnmatch.fnmatchcase(s.name, p) for p in skip)]
    if not chosen:
        raise InvalidArgumentError(
            f"layers: no {kind_names} matches {layers!r} (dense={skip!r}); the model has {names}"
        )
    owner: dict[int, str] = {}
    for site in chosen:
        if parametrize.is_parametrized(site.module, site.param):
            raise InvalidArgumentError(
                f"layers: module {site.name!r} has a parametrized weight (e.g. weight_norm), which "
                "cannot be masked in place; leave it out with dense=[...]"
            )
        w = site.weight
        if w.numel() == 0:
            raise InvalidArgumentError(f"layers: module {site.name!r} has an empty weight of shape {tuple(w.shape)}")
        if id(w) in owner:
            raise InvalidArgumentError(
                f"layers: modules {owner[id(w)]!r} and {site.name!r} share one weight; manage one of "
                "them (layers=[...] or dense=[...])"
            )
        owner[id(w)] = site.name
    return chosen


def _patterns(which: str, patterns: list[Any], names: list[str], kind_names: str) -> list[str]:
    """``patterns``, each a string matching at least one site (a pattern that matches nothing is
    most likely a typo, which would silently change the run)."""
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{which}: expected name patterns (str), got {p!r}")
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InvalidArgumentError(f"{which}: the pattern {p!r} matches no {kind_names}; the model has {names}")
    return patterns


def infer_pairs(model: nn.Module, sites: Sequence[Site]) -> list[tuple[str, str, list[nn.Module]]]:
    """(producer, consumer, norms between) for the chains and feed-forward pairs of the model
    whose two ends are both sites."""
    by_module = {id(s.module): s for s in sites if s.param == "weight"}
    found: list[tuple[str, str, list[nn.Module]]] = []
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            previous: Site | None = None
            norms: list[nn.Module] = []
            for child in m.children():
                site = by_module.get(id(child))
                if site is not None:
                    if previous is not None and _fits(previous, site):
                        found.append((previous.name, site.name, norms))
                    previous, norms = site, []
                elif previous is not None and _unit_wise(child, previous):
                    if isinstance(child, NORMS):
                        norms = [*norms, child]
                else:
                    previous, norms = None, []
        elif isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            a, b = by_module.get(id(m.linear1)), by_module.get(id(m.linear2))
            if a is not None and b is not None:
                found.append((a.name, b.name, []))
    return found


def _unit_wise(m: nn.Module, producer: Site) -> bool:
    """Whether ``m`` acts on each of the producer's units on its own."""
    if isinstance(m, nn.LayerNorm):
        return tuple(m.normalized_shape) == (producer.shape[0],)
    if isinstance(m, NORMS):
        return int(m.num_features) == producer.shape[0]  # type: ignore[arg-type]
    if isinstance(m, _PASS):
        return True
    return type(m).__module__ == "torch.nn.modules.activation" and not isinstance(m, _MIXING)


def _fits(producer: Site, consumer: Site) -> bool:
    """Whether ``consumer`` reads exactly the producer's units, one input unit each."""
    pw, cw = producer.weight, consumer.weight
    if isinstance(consumer.module, CONVS) and consumer.module.groups != 1:
        return False
    if isinstance(producer.module, CONVS) != isinstance(consumer.module, CONVS):
        return False  # a flatten (or a view) stands between: the units are not one-to-one
    return int(pw.shape[0]) == int(cw.shape[1])


def wire(
    sites: list[Site],
    pairs: Sequence[tuple[str, str, list[nn.Module]]],
    *,
    share_layers: bool = True,
    names: dict[str, str] | None = None,
) -> Wiring:
    """Lays the sites out as one layered graph; ``pairs`` become neuron groups (named by
    ``names``, by default the producer's name). Linear -> linear pairs share a graph layer when
    ``share_layers``."""
    by_name = {s.name: s for s in sites}
    consumer_of: dict[str, str] = {}
    producer_of: dict[str, str] = {}
    links: list[tuple[Site, Site, list[nn.Module]]] = []
    for a, b, norms in pairs:
        for which, n in (("producer", a), ("consumer", b)):
            if n not in by_name:
                raise InvalidArgumentError(
                    f"pairs: the {which} {n!r} is not a managed module; the managed modules are {list(by_name)}"
                )
        pa, pb = by_name[a], by_name[b]
        if not pa.forwards or not pb.forwards:
            raise InvalidArgumentError(f"pairs: ({a!r}, {b!r}): an attention projection cannot be one end of a neuron pair")
        if not _fits(pa, pb):
            raise InvalidArgumentError(
                f"pairs: ({a!r}, {b!r}): {b!r} does not read {a!r}'s units one by one ({a!r} has "
                f"{pa.shape[0]} outputs, {b!r} has weight {tuple(pb.weight.shape)})"
            )
        if a in consumer_of or b in producer_of:
            taken = a if a in consumer_of else b
            raise InvalidArgumentError(f"pairs: {taken!r} is in two pairs at the same end; a neuron has one consumer")
        consumer_of[a], producer_of[b] = b, a
        links.append((pa, pb, norms))
    order = _topological(sites, consumer_of)
    sizes: list[int] = []
    out_layer: dict[str, int] = {}
    for site in order:
        rows, cols = site.shape
        shared = producer_of.get(site.name)
        if share_layers and shared is not None and site.kernel == 1 and by_name[shared].kernel == 1:
            source = out_layer[shared]
        else:
            source = len(sizes)
            sizes.append(cols)
        out_layer[site.name] = len(sizes)
        sizes.append(rows)
        site.block = (source, len(sizes) - 1)
    groups = [pair_group((names or {}).get(pa.name, pa.name), out_layer[pa.name], pa, pb, norms) for pa, pb, norms in links]
    return Wiring(sizes, sites, groups)


def _topological(sites: list[Site], consumer_of: dict[str, str]) -> list[Site]:
    """The sites with every producer before its consumer, otherwise in the given order."""
    by_name = {s.name: s for s in sites}
    has_producer = set(consumer_of.values())
    order: list[Site] = []
    placed: set[str] = set()
    for site in sites:
        if site.name in has_producer or site.name in placed:
            continue
        name: str | None = site.name
        seen: set[str] = set()
        while name is not None and name not in placed:
            if name in seen:  # pragma: no cover - a chain cannot loop with one consumer each
                break
            seen.add(name)
            order.append(by_name[name])
            placed.add(name)
            name = consumer_of.get(name)
    if len(order) != len(sites):
        loop = sorted(set(by_name) - placed)
        raise InvalidArgumentError(f"pairs: the pairs among {loop} form a loop; a network's units flow forward")
    return order


def check_masks(masks: Any, sites: list[Site]) -> dict[str, np.ndarray]:
    """The given masks as (out, in*kh*kw) bool arrays, all checked before any is used."""
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks: expected a mapping of module name to bool mask, e.g. {{'0': mask}}, got {type(masks).__name__}"
        )
    by_name = {s.name: s for s in sites}
    out = {}
    for name, mask in masks.items():
        if name not in by_name:
            raise InvalidArgumentError(f"masks: {name!r} is not a sparsified module; they are {list(by_name)}")
        w = by_name[name].weight
        matrix = (w.shape[0], w[0].numel())
        try:
            # A tensor, a numpy array or nested lists of bools.
            t = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"masks[{name!r}]: expected a bool tensor or array, got {type(mask).__name__} ({e})"
            ) from None
        if t.dtype != torch.bool:
            raise TypeError(f"masks[{name!r}]: expected a bool tensor, got dtype {t.dtype}")
        if tuple(t.shape) not in (tuple(w.shape), matrix):
            raise InvalidArgumentError(
                f"masks[{name!r}]: shape {tuple(t.shape)} fits neither the weight {tuple(w.shape)} nor its matrix {matrix}"
            )
        if not bool(t.any()):
            # An empty block stays empty: an update moves a fraction of its edges, i.e. none.
            raise InvalidArgumentError(
                f"masks[{name!r}]: the mask is all False, so module {name!r} would have no weight to "
                "train (an update moves a fraction of a layer's edges, so none would ever grow); "
                f"give it at least one True, or leave {name!r} out of the controller with dense=[{name!r}]"
            )
        out[name] = t.detach().cpu().reshape(matrix).numpy()
    return out


def growing_wiring(model: Any) -> Wiring:
    """A :class:`growcore.torch.GrowingMLP`'s structure as sites and neuron groups: one site per
    block ``(a, b)`` (named ``"a->b"``, masked by the model's mask of the block), and one group
    per hidden layer ``l`` (``"hidden{l}"``) whose producers are the blocks into ``l``, whose
    consumers are the blocks out of it, observed at the layer's activation module."""
    sites = [Site(f"{a}->{b}", model.params, f"w{a}_{b}", (a, b), model.masks[(a, b)]) for a, b in model.blocks()]
    groups = []
    for layer in range(1, model.num_layers - 1):
        producers = [s for s in sites if s.block[1] == layer]
        consumers = [s for s in sites if s.block[0] == layer]
        groups.append(
            NeuronGroup(
                f"hidden{layer}", layer, producers, consumers, [], model.bias(layer),
                [model.bias(c.block[1]) for c in consumers], model.acts[layer - 1], "output",
            )
        )
    return Wiring(model.sizes, sites, groups)
