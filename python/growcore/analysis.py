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
    forward = _core.katz(graph, 1.0, _indicator(graph, first), None, "in", False)
    backward = _core.katz(graph, 1.0, _indicator(graph, last), None, "out", False)
    return {"from_inputs": forward, "to_outputs": backward, "through": forward * backward}


def reachability(graph: Graph) -> dict[str, npt.NDArray[np.bool_]]:
    """Which neurons have a path from the inputs, a path to the outputs, or neither.

    Returns boolean arrays in global slot order: ``from_inputs``, ``to_outputs`` and ``dead``
    (neither). An input counts as reached from the inputs, an output as reaching the outputs.
    """
    counts = path_counts(graph)
    from_inputs = counts["from_inputs"] > 0
    to_outputs = counts["to_outputs"] > 0
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
