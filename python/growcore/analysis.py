"""Graph analysis on growcore graphs; needs no torch.

Everything is computed in the Rust core. Results are numpy arrays over all neurons in global slot
order: layer 0's slots first, then layer 1's, and so on (``np.cumsum([0, *g.layer_sizes])`` gives
each layer's offset).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from growcore import _core
from growcore._core import Graph
from growcore.errors import InvalidArgumentError


def katz(
    graph: Any,
    alpha: float = 0.1,
    beta: float | npt.ArrayLike = 1.0,
    weights: Any = None,
    direction: Literal["in", "out"] = "in",
    normalized: bool = True,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> npt.NDArray[np.float64]:
    """Katz centrality ``x = beta + alpha * A^T x`` of every node.

    On a growcore graph, which is a DAG (every edge goes to a later layer), the solution is exact
    in one pass in layer order, ``x_v = beta_v + alpha * sum_{u->v} w_uv * x_u``, for any finite
    ``alpha``: no tolerance, no iteration limit. A square scipy.sparse matrix (``A[u, v]`` is the
    weight of edge ``u -> v``) or a networkx graph that is acyclic gets the same exact pass in
    topological order; a cyclic one is solved by power iteration, which stops when the L1 change
    falls below ``n * tol`` and raises when it has not after ``max_iter`` iterations.

    Args:
        graph: a growcore Graph, a square scipy.sparse matrix or array, or a networkx graph.
        alpha: attenuation factor; any finite value on an acyclic graph, positive on a cyclic one.
        beta: constant term, a number or one value per node.
        weights: for a growcore Graph, per-edge weights of some blocks,
            ``{(a, b): values aligned with g.csr(a, b)[1]}`` (blocks not named weigh 1); for a
            networkx graph, the name of the edge attribute holding weights (None: unweighted); for
            a scipy matrix it must be None (the stored values are the weights).
        direction: ``"in"`` (a node is central when central nodes point to it; networkx's
            convention for directed graphs) or ``"out"`` (when it points to central nodes).
        normalized: divide by ``sign(sum x) * ||x||_2``, as ``networkx.katz_centrality_numpy`` does.
        tol, max_iter: stopping rule of the power iteration (cyclic graphs only).

    Returns:
        float64 array: for a growcore Graph over all neurons in global slot order (layer 0's slots
        first); for a scipy matrix in row order; for a networkx graph in ``list(graph)`` order.

    Raises:
        TypeError: ``graph`` is none of the accepted kinds.
        InvalidArgumentError: a non-square matrix; non-finite ``alpha``, ``beta`` or weights;
            weights not aligned with a block; an unknown block or direction; a power iteration
            that does not converge (alpha not below 1 / spectral radius); an overflow.
    """
    if isinstance(graph, Graph):
        return _core.katz(graph, alpha, beta, weights, direction, normalized)
    nodes: list[Any] = []  # a networkx graph's nodes, in matrix order
    if sp.issparse(graph):
        if weights is not None:
            raise InvalidArgumentError(
                "weights: must be None for a scipy.sparse matrix, whose stored values are the weights"
            )
        matrix = graph
    elif _is_networkx(graph):
        import networkx as nx  # type: ignore[import-untyped]

        nodes = list(graph)
        matrix = nx.to_scipy_sparse_array(graph, nodelist=nodes, weight=weights, format="csr")
    else:
        raise TypeError(
            f"graph: expected a growcore.Graph, a scipy.sparse matrix or a networkx graph, "
            f"got {type(graph).__name__}"
        )
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InvalidArgumentError(f"graph: the adjacency matrix must be square, got shape {matrix.shape}")
    csr = sp.csr_array(matrix)  # may share the caller's arrays: never changed in place
    if np.iscomplexobj(csr.data):
        raise TypeError(f"graph: expected real edge weights, got dtype {csr.dtype}")
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    data = np.asarray(csr.data, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(data))
    if len(bad):
        # Named as the caller knows the edge: by matrix position, or by nodes and attribute.
        k = int(bad[0])
        u, v = int(np.searchsorted(csr.indptr, k, side="right") - 1), int(csr.indices[k])
        edge = f"A[{u}, {v}]" if sp.issparse(graph) else f"edge {nodes[u]!r} -> {nodes[v]!r} ({weights!r})"
        raise InvalidArgumentError(f"graph: {edge} is {data[k]}; edge weights must be finite")
    return _core.katz_adjacency(
        csr.shape[0], csr.indptr, csr.indices, data, alpha, beta, direction, normalized, tol, max_iter
    )


def _is_networkx(graph: Any) -> bool:
    return type(graph).__module__.startswith("networkx.")


def _indicator(graph: Graph, layer: int) -> npt.NDArray[np.float64]:
    off = np.cumsum([0, *graph.layer_sizes])
    beta = np.zeros(graph.num_neurons)
    beta[off[layer] : off[layer + 1]] = 1.0
    return beta


def path_counts(graph: Graph) -> dict[str, npt.NDArray[np.float64]]:
    """Number of input -> output paths through each neuron, in global slot order.

    ``from_inputs[v]`` counts the paths from any input neuron to ``v`` (1 for an input),
    ``to_outputs[v]`` the paths from ``v`` to any output neuron (1 for an output), and
    ``through[v]`` is their product. Computed exactly by the Katz pass with ``alpha = 1``.

    Counts are float64 so that they cannot overflow in practice (up to ~1.8e308): they are exact
    integers up to 2**53 (about 9e15 paths) and carry a relative error of at most about
    1e-16 per layer beyond that.
    """
    first, last = 0, graph.num_layers - 1
    try:
        forward = _core.katz(graph, 1.0, _indicator(graph, first), None, "in", False)
        backward = _core.katz(graph, 1.0, _indicator(graph, last), None, "out", False)
    except InvalidArgumentError as err:  # the pass names alpha, which the caller did not give
        raise InvalidArgumentError(f"graph: more paths than float64 can count ({err})") from None
    return {"from_inputs": forward, "to_outputs": backward, "through": forward * backward}


def reachability(graph: Graph) -> dict[str, npt.NDArray[np.bool_]]:
    """Which neurons have a path from the inputs, a path to the outputs, or neither.

    Returns boolean arrays in global slot order: ``from_inputs``, ``to_outputs`` and ``dead``
    (neither). An input counts as reached from the inputs, an output as reaching the outputs.
    """
    # One boolean pass each way (path counts could overflow on deep dense graphs): blocks in the
    # order of their target layer forward, of their source layer backward.
    sizes, blocks = graph.layer_sizes, graph.blocks
    forward = [np.zeros(n, dtype=bool) for n in sizes]
    backward = [np.zeros(n, dtype=bool) for n in sizes]
    forward[0][:] = True
    backward[-1][:] = True
    for a, b in sorted(blocks, key=lambda k: k[1]):
        forward[b] |= graph.to_scipy(a, b).astype(np.int64) @ forward[a].astype(np.int64) > 0
    for a, b in sorted(blocks, key=lambda k: -k[0]):
        backward[a] |= graph.to_scipy(a, b).T.astype(np.int64) @ backward[b].astype(np.int64) > 0
    from_inputs, to_outputs = np.concatenate(forward), np.concatenate(backward)
    return {"from_inputs": from_inputs, "to_outputs": to_outputs, "dead": ~from_inputs & ~to_outputs}


def degrees(graph: Graph) -> dict[str, npt.NDArray[np.int64]]:
    """In- and out-degree of every neuron (global slot order) and their totals per layer.

    Keys: ``in``, ``out`` (per neuron, over every block) and ``layer_in``, ``layer_out`` (per layer).
    """
    fan_in = [graph.fan_in(layer) for layer in range(graph.num_layers)]
    fan_out = [graph.fan_out(layer) for layer in range(graph.num_layers)]
    return {
        "in": np.concatenate(fan_in),
        "out": np.concatenate(fan_out),
        "layer_in": np.array([f.sum() for f in fan_in], dtype=np.int64),
        "layer_out": np.array([f.sum() for f in fan_out], dtype=np.int64),
    }


__all__ = ["degrees", "katz", "path_counts", "reachability"]
