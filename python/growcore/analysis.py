"""Graph analysis on growcore graphs; needs no torch.

Everything is computed in the Rust core. Results are numpy arrays over all neurons in global slot
order: layer 0's slots first, then layer 1's, and so on (``np.cumsum([0, *g.layer_sizes])`` gives
each layer's offset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from growcore import _core
from growcore._core import Graph


def katz(
    graph: Graph,
    alpha: float = 0.1,
    beta: float | npt.ArrayLike = 1.0,
    weights: Mapping[tuple[int, int], npt.ArrayLike] | None = None,
    direction: Literal["in", "out"] = "in",
    normalized: bool = True,
) -> npt.NDArray[np.float64]:
    """Exact Katz centrality of every neuron: ``x = beta + alpha * A^T x``.

    A growcore graph is a DAG (every edge goes to a later layer), so the solution is computed
    exactly in one pass in layer order, ``x_v = beta_v + alpha * sum_{u->v} w_uv * x_u``, for any
    finite ``alpha``: no tolerance, no iteration limit.

    Args:
        graph: the graph.
        alpha: attenuation factor; any finite value.
        beta: constant term, a number or one value per neuron (global slot order).
        weights: per-edge weights of some blocks, ``{(a, b): values aligned with g.csr(a, b)[1]}``
            (for example ``|W|``); blocks not named weigh 1 per edge.
        direction: ``"in"`` (a neuron is central when central neurons feed it; networkx's
            convention for directed graphs) or ``"out"`` (when it feeds central neurons).
        normalized: divide by ``sign(sum x) * ||x||_2``, as ``networkx.katz_centrality_numpy`` does.

    Returns:
        float64 array of length ``graph.num_neurons``.

    Raises:
        TypeError: ``graph`` is not a growcore Graph (general scipy.sparse and networkx graphs are
            not supported yet).
        InvalidArgumentError: non-finite ``alpha``, ``beta`` or weights, weights not aligned with
            a block's CSR, an unknown block or direction, or a centrality that overflows.
    """
    if not isinstance(graph, Graph):
        raise TypeError(
            f"graph: expected a growcore.Graph, got {type(graph).__name__} "
            "(scipy.sparse and networkx graphs are not supported yet)"
        )
    return _core.katz(graph, alpha, beta, weights, direction, normalized)


__all__ = ["katz"]
