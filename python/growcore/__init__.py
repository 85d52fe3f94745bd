"""growcore: neural networks that rewire themselves while they train.

The core object is :class:`Graph`, a layered DAG of neurons with sparse (CSR) connectivity per
block of layers, stable neuron ids, lineage, and per-neuron training statistics. It is implemented
in Rust; this package is its Python face. :func:`katz` and the rest of :mod:`growcore.analysis`
analyse a graph's structure without torch.
"""

from growcore._core import (
    Graph,
    Senescence,
    __version__,
    add_activation_sums,
    diversity,
    redundant_pairs,
    saturation_thresholds,
)
from growcore.analysis import degrees, katz, path_counts, reachability
from growcore.interop import from_networkx, from_scipy_adjacency, to_networkx, to_scipy_adjacency
from growcore.errors import (
    BlockError,
    EdgeError,
    FrozenEdgeError,
    GrowcoreError,
    InvalidArgumentError,
    NonFiniteError,
    OutOfRangeError,
    StateDictError,
)

__all__ = [
    "BlockError",
    "EdgeError",
    "FrozenEdgeError",
    "Graph",
    "GrowcoreError",
    "InvalidArgumentError",
    "NonFiniteError",
    "OutOfRangeError",
    "Senescence",
    "StateDictError",
    "__version__",
    "add_activation_sums",
    "degrees",
    "diversity",
    "from_networkx",
    "from_scipy_adjacency",
    "katz",
    "path_counts",
    "reachability",
    "redundant_pairs",
    "saturation_thresholds",
    "to_networkx",
    "to_scipy_adjacency",
]
