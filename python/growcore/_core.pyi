"""Type stubs for the compiled core (``growcore._core``), checked by ``mypy.stubtest`` in CI."""

from collections.abc import Mapping, Sequence
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__all__ = ["Graph", "Senescence", "__version__", "add_activation_sums", "diversity", "katz", "katz_adjacency", "redundant_pairs", "saturation_thresholds"]
__version__: str

_IndexLike = npt.ArrayLike
_BlockLike = Any  # scipy.sparse matrix/array, (indptr, indices) pair, or 2-D boolean mask
_Block = tuple[int, int]

@final
class Graph:
    """A layered DAG of neurons with CSR connectivity per (source, target) layer block.

    Layer 0 holds the inputs and the last layer the outputs. A block ``(a, b)`` holds the edges
    from layer ``a`` to layer ``b > a``; rows are target slots in ``b``, columns source slots in
    ``a``. Neurons have stable ids (never reused) and slots (their tensor row/column).
    """

    def __new__(
        cls,
        layer_sizes: Sequence[int],
        density: float = 1.0,
        *,
        seed: int = 0,
        distribution: Literal["uniform", "erk"] = "uniform",
        block_density: Mapping[_Block, float] | None = None,
        stats_config: Mapping[str, float | int | bool] | None = None,
        blocks: Sequence[_Block] | None = None,
    ) -> Graph: ...
    @staticmethod
    def from_blocks(
        layer_sizes: Sequence[int],
        blocks: Mapping[_Block, _BlockLike],
        *,
        seed: int = 0,
        stats_config: Mapping[str, float | int | bool] | None = None,
    ) -> Graph: ...
    @staticmethod
    def from_bytes(data: bytes) -> Graph: ...

    # -- shape and bookkeeping -------------------------------------------------------------
    @property
    def layer_sizes(self) -> list[int]: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def num_neurons(self) -> int: ...
    @property
    def num_ids(self) -> int: ...
    @property
    def step(self) -> int: ...
    def advance(self, steps: int = 1) -> int: ...
    @property
    def blocks(self) -> list[_Block]: ...
    def has_block(self, a: int, b: int) -> bool: ...
    def add_block(self, a: int, b: int) -> None: ...
    def remove_block(self, a: int, b: int) -> None: ...
    @property
    def nnz(self) -> int: ...
    def block_nnz(self, a: int, b: int) -> int: ...
    def density(self, a: int | None = None, b: int | None = None) -> float: ...
    @property
    def nbytes(self) -> int: ...

    # -- edge queries ----------------------------------------------------------------------
    def csr(self, a: int, b: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    def to_scipy(self, a: int, b: int) -> Any:  # scipy.sparse.csr_array (scipy ships no stubs)
        ...
    def to_dense(self, a: int, b: int) -> npt.NDArray[np.bool_]: ...
    def edge_births(self, a: int, b: int) -> npt.NDArray[np.int64]: ...
    def edge_frozen(self, a: int, b: int) -> npt.NDArray[np.bool_]: ...
    def has_edges(self, a: int, b: int, rows: _IndexLike, cols: _IndexLike) -> npt.NDArray[np.bool_]: ...
    def fan_in(self, layer: int) -> npt.NDArray[np.int64]: ...
    def fan_out(self, layer: int) -> npt.NDArray[np.int64]: ...

    # -- edge mutations (batched; validated before anything changes) ------------------------
    def add_edges(self, a: int, b: int, rows: _IndexLike, cols: _IndexLike) -> None: ...
    def remove_edges(self, a: int, b: int, rows: _IndexLike, cols: _IndexLike) -> None: ...
    def rewire(
        self,
        a: int,
        b: int,
        drop_rows: _IndexLike,
        drop_cols: _IndexLike,
        grow_rows: _IndexLike,
        grow_cols: _IndexLike,
        *,
        regrow_dropped: bool = False,
    ) -> None: ...
    def prune_and_grow(
        self,
        a: int,
        b: int,
        drop_scores: npt.ArrayLike | tuple[_IndexLike, _IndexLike, npt.ArrayLike],
        grow_scores: npt.ArrayLike | tuple[_IndexLike, _IndexLike, npt.ArrayLike] | Literal["random"],
        count: int,
        *,
        regrow_dropped: bool = False,
    ) -> dict[str, npt.NDArray[np.int64]]: ...
    def freeze_edges(self, a: int, b: int, rows: _IndexLike, cols: _IndexLike) -> None: ...
    def unfreeze_edges(self, a: int, b: int, rows: _IndexLike, cols: _IndexLike) -> None: ...

    # -- neurons ---------------------------------------------------------------------------
    def ids(self, layer: int) -> npt.NDArray[np.int64]: ...
    def locate(self, ids: _IndexLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    def births(self, layer: int) -> npt.NDArray[np.int64]: ...
    def ages(self, layer: int) -> npt.NDArray[np.int64]: ...
    def generations(self, layer: int) -> npt.NDArray[np.int64]: ...
    def add_neurons(
        self, layer: int, count: int, parents: Sequence[Sequence[int]] | None = None
    ) -> npt.NDArray[np.int64]: ...
    def remove_neurons(self, layer: int, slots: _IndexLike) -> npt.NDArray[np.int64]: ...
    def reset_neurons(self, layer: int, slots: _IndexLike) -> npt.NDArray[np.int64]: ...
    def normalized_fitness(self, layer: int, fitness: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]: ...
    def fitness_scores(
        self,
        layer: int,
        kind: Literal["default", "utility", "dormancy"] = "default",
        out_weight: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float64]: ...
    def stages(self, layer: int, mature: int, senior: int) -> npt.NDArray[np.uint8]: ...
    def apoptosis(
        self,
        layer: int,
        fraction: float,
        *,
        strategy: Literal["random", "mutation", "crossover", "function_preserving"] = "random",
        threshold: float | None = None,
        maturity_age: int | None = None,
        alpha: tuple[float, float] | Literal["fitness"] | None = None,
        fitness: npt.ArrayLike | None = None,
        escalated: npt.ArrayLike | None = None,
    ) -> dict[str, Any]: ...
    def extrema(
        self,
        layer: int,
        activation: Literal["tanh", "sigmoid", "relu"] = "relu",
        *,
        q: float = 0.5,
        dead_fraction: float = 0.9,
        fraction: float = 0.1,
        high_z: float = 1.0,
        min_observations: int = 1,
    ) -> dict[str, npt.NDArray[Any]]:
        """The layer's saturated ("high") and spare-capacity ("low") neurons from the accumulated
        statistics (``frac_high``/``frac_low`` counted at :func:`saturation_thresholds`).

        tanh, sigmoid: high when the fraction of samples saturated near the top exceeds ``q``, low
        when the fraction near the bottom does. relu: low when dead (at or below the low threshold
        on at least ``dead_fraction`` of samples) or quiet (the ``fraction`` of the layer with the
        lowest activation variance); high when among the ``fraction`` with the largest mean
        activation and that mean is at least ``high_z`` standard deviations above the layer's
        average. Neurons observed fewer than ``min_observations`` times (and never-observed
        ones, even with 0) are neither. Returns
        columns ``high``, ``high_score``, ``low``, ``low_score`` (slots, strongest first).
        """
    def grow(
        self,
        high: Mapping[int, _IndexLike],
        low: Mapping[int, _IndexLike],
        *,
        katz: npt.ArrayLike | None = None,
        clone_type: Literal["vertical", "horizontal", "both"] = "both",
        clone_budget: int = 4,
        max_layer_size: int | None = None,
        max_params: int | None = None,
        radius: int = 3,
        routes_per_source: int = 2,
        max_routes: int | None = None,
        fan_in_cap: int | None = None,
        load: Literal["fan_in", "event"] = "fan_in",
    ) -> dict[str, Any]:
        """One growth event, decided and applied to the graph; an error changes nothing.

        ``high`` and ``low`` map hidden layers to slots (strongest first). High neurons are
        cloned, strongest first, until ``clone_budget`` clones are planned (with
        ``clone_type="both"`` a neuron takes two of them): *vertical* (a neuron one layer up reading the source's inputs
        through skip blocks, feeding the neurons two layers up that the source's targets feed)
        or *horizontal* (a neuron in the same layer with the source's exact edges). Then each high
        neuron of layer ``l`` gets up to ``routes_per_source`` edges to low neurons of the hidden
        layers ``l+1 .. l+radius``, each to the least-loaded eligible target (``load``: fan-in, or
        edges received in this event), never duplicating an edge or pushing a fan-in above
        ``fan_in_cap``; ties go to the higher Katz score, then the smaller id. ``katz`` (one
        score per neuron, slot order) serves sources by normalised score, highest first, with
        ``max(1, round(2 * routes_per_source * score))`` routes each.

        Returns ``clones`` (columns vertical, source_layer, source_slot, source_id, layer, slot,
        id, noise_seed), ``routes`` (columns src_layer, src_slot, dst_layer, dst_slot) and
        ``new_blocks`` (the blocks the event created).
        """
    def stability(self, layer: int) -> npt.NDArray[np.float64]: ...
    def multi_objective_fitness(
        self,
        layer: int,
        *,
        importance: npt.ArrayLike | None = None,
        diversity: npt.ArrayLike | None = None,
        energy: npt.ArrayLike | None = None,
        weights: tuple[float, float, float, float] = ...,  # (1.0, 0.5, 0.5, 0.25)
    ) -> dict[str, npt.NDArray[np.float64]]: ...
    def lineage(self) -> dict[str, npt.NDArray[Any]]: ...

    # -- statistics ------------------------------------------------------------------------
    def observe(
        self,
        layer: int,
        mean: npt.ArrayLike | None = None,
        sq_mean: npt.ArrayLike | None = None,
        frac_high: npt.ArrayLike | None = None,
        frac_low: npt.ArrayLike | None = None,
        grad_norm: npt.ArrayLike | None = None,
    ) -> None: ...
    def row_norms(self, a: int, b: int, values: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The L2 norm of each target neuron's present edges in a dense ``(rows, cols)`` matrix
        over block ``(a, b)`` (e.g. a weight gradient restricted to the kept weights), float32.
        Read in place when C-contiguous float32 (a CPU tensor's ``.numpy()``)."""
    def stats(self, layer: int) -> dict[str, npt.NDArray[Any]]: ...
    def fitness(self, layer: int) -> npt.NDArray[np.float64]: ...
    @property
    def nonfinite_counts(self) -> list[int]: ...
    @property
    def stats_config(self) -> dict[str, float | int | bool]: ...
    def set_stats_config(self, **options: float | int | bool) -> None: ...

    # -- integrity and persistence ---------------------------------------------------------
    def validate(self) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def to_bytes(self) -> bytes: ...
    def copy(self) -> Graph: ...
    def restore(self, snapshot: Graph) -> None: ...
    def __copy__(self) -> Graph: ...
    def __deepcopy__(self, memo: Any) -> Graph: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

def katz(
    graph: Graph,
    alpha: float = 0.1,
    beta: float | npt.ArrayLike | None = None,
    weights: Mapping[_Block, npt.ArrayLike] | None = None,
    direction: str = "in",
    normalized: bool = True,
) -> npt.NDArray[np.float64]: ...
def katz_adjacency(
    n: int,
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    alpha: float = 0.1,
    beta: float | npt.ArrayLike | None = None,
    direction: str = "in",
    normalized: bool = True,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> npt.NDArray[np.float64]: ...

def saturation_thresholds(
    activation: Literal["tanh", "sigmoid", "relu"],
    epsilon: float = 0.05,
    *,
    low: float | None = None,
    high: float | None = None,
) -> tuple[float, float]:
    """The ``(low, high)`` saturation thresholds of an activation's preset for an ε-ball of
    radius ``epsilon``: tanh ``(-1 + eps, 1 - eps)``, sigmoid ``(eps, 1 - eps)``, relu
    ``(eps, inf)``. ``low``/``high`` override them and are checked against the range;
    ``epsilon`` is only used, and checked, when one of them comes from the preset."""

def add_activation_sums(x: npt.NDArray[Any], sums: npt.NDArray[np.float64], low: float, high: float) -> int:
    """Adds a batch of activations ``x``, shaped ``(outer, neurons, inner)``, to the float64
    per-neuron ``sums``, shaped ``(4, neurons)``: sum, sum of squares, and the numbers of samples
    at or above ``high`` and at or below ``low``; every (outer, inner) pair is a sample. Returns
    the number of samples added. ``x`` is read in place when C-contiguous float32."""

def diversity(profiles: npt.ArrayLike) -> npt.NDArray[np.float64]: ...
def redundant_pairs(profiles: npt.ArrayLike, threshold: float = 0.95) -> dict[str, npt.NDArray[Any]]: ...

@final
class Senescence:
    """Each neuron's fitness history; flat fitness -> senescent -> escalated to apoptosis.

    At each :meth:`update` a layer's fitness is sampled at the graph's step. Over the last
    ``window`` samples a least-squares line is fitted; its relative slope is how far the line
    moves over the window's span in units of the layer's fitness standard deviation. A neuron is
    flat while ``|slope| < epsilon`` (flat since the first sample of its first flat window), is
    senescent once flat for ``flat_steps`` steps (and at least ``min_age`` steps old), and is escalated ``escalate_after`` steps after
    that (kill it with ``Graph.apoptosis(..., escalated=slots)``). Senescence is one-way. Per
    update at most ``max_fraction`` of the layer turns senescent (flattest first) and at most
    ``max_fraction`` is escalated (longest senescent first). Tracks follow neuron ids; the dead
    are forgotten and newborns start with no samples.
    """

    def __init__(self) -> None: ...
    def update(
        self,
        graph: Graph,
        layer: int,
        fitness: npt.ArrayLike | None = None,
        *,
        window: int = 5,
        epsilon: float = 0.1,
        flat_steps: int = 500,
        escalate_after: int = 500,
        max_fraction: float = 0.05,
        min_age: int = 0,
    ) -> dict[str, npt.NDArray[Any]]: ...
    def senescent(self, graph: Graph, layer: int) -> npt.NDArray[np.int64]: ...
    def to_bytes(self) -> bytes: ...
    def load_bytes(self, data: bytes) -> None:
        """Replaces this tracker's state with the one ``data`` holds (from :meth:`to_bytes`), in
        place, so every reference to it sees the change; nothing changes on error."""
    @staticmethod
    def from_bytes(data: bytes) -> Senescence: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]
