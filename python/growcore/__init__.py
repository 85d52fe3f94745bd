"""growcore: neural networks that rewire themselves while they train.

The core object is :class:`Graph`, a layered DAG of neurons with sparse (CSR) connectivity per
block of layers, stable neuron ids, lineage, and per-neuron training statistics. It is implemented
in Rust; this package is its Python face.
"""

from growcore._core import Graph, __version__
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
    "StateDictError",
    "__version__",
]
