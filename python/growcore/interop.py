"""A whole growcore graph as one global adjacency (scipy.sparse or networkx), and back.

Neurons are numbered in global slot order: layer 0's slots first, then layer 1's, and so on;
``offsets = np.cumsum([0, *g.layer_sizes])`` gives where each layer starts, so slot ``s`` of
layer ``l`` is global node ``offsets[l] + s``. ``A[u, v]`` is the edge ``u -> v``. A block's CSR
has rows = targets in layer ``b`` and columns = sources in layer ``a``, so its entry
``(row, col)`` is ``A[offsets[a] + col, offsets[b] + row]``.

What an import preserves: the layer sizes, the edges (hence every block's CSR) and, on request,
the weights. It builds a fresh graph: ids are issued in slot order, every birth step is 0, there is
no lineage or statistics. Every adjacent block ``(a, a + 1)`` exists (empty when it has no edge),
as in ``Graph(layer_sizes, density)``; a skip block exists when it has an edge, so an empty skip
block does not survive a round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from growcore._core import Graph
from growcore.errors import InvalidArgumentError

Weights = dict[tuple[int, int], npt.NDArray[np.float64]]
_I64 = npt.NDArray[np.int64]


def _offsets(sizes: Sequence[int]) -> _I64:
    return np.cumsum([0, *sizes], dtype=np.int64)


def _block_weights(graph: Graph, weights: Mapping[tuple[int, int], npt.ArrayLike] | None) -> Weights | None:
    """``weights`` checked against the graph (known blocks, one value per edge) as float64."""
    if weights is None:
        return None
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights: expected a dict {{(a, b): values}} or None, got {type(weights).__name__}")
    blocks = set(graph.blocks)
    out: Weights = {}
    for key, values in weights.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, (int, np.integer)) for k in key)):
            raise TypeError(f"weights: keys must be (a, b) pairs of layers, got {key!r}")
        a, b = int(key[0]), int(key[1])
        if (a, b) not in blocks:
            raise InvalidArgumentError(f"weights: names block ({a}, {b}), which the graph does not have")
        w = np.asarray(values, dtype=np.float64)
        nnz = graph.block_nnz(a, b)
        if w.shape != (nnz,):
            raise InvalidArgumentError(
                f"weights[({a}, {b})]: has shape {w.shape}, but the block has {nnz} edges "
                f"(align weights with csr({a}, {b})[1])"
            )
        out[(a, b)] = w
    return out


def _global_edges(graph: Graph, weights: Weights | None) -> tuple[_I64, _I64, npt.NDArray[np.float64] | None, list[tuple[int, int]]]:
    """(sources, targets, weights or None, blocks) of every edge in global slot numbering, block
    by block in ``graph.blocks`` order and, within a block, in CSR order."""
    off = _offsets(graph.layer_sizes)
    src: list[_I64] = []
    dst: list[_I64] = []
    wts: list[npt.NDArray[np.float64]] = []
    blocks = graph.blocks
    for a, b in blocks:
        indptr, cols = graph.csr(a, b)
        rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        src.append(off[a] + cols)
        dst.append(off[b] + rows)
        if weights is not None:
            wts.append(weights.get((a, b), np.ones(len(cols))))
    empty = np.zeros(0, np.int64)
    return (
        np.concatenate([empty, *src]),
        np.concatenate([empty, *dst]),
        None if weights is None else np.concatenate([np.zeros(0), *wts]),
        blocks,
    )


def to_scipy_adjacency(
    graph: Graph,
    weights: Mapping[tuple[int, int], npt.ArrayLike] | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> tuple[Any, _I64]:
    """The whole graph as one square adjacency matrix over all neurons, and the layer offsets.

    Args:
        graph: the growcore Graph.
        weights: per-edge weights of some blocks, ``{(a, b): values aligned with
            graph.csr(a, b)[1]}``; edges of blocks not named weigh 1.
        dtype: the matrix's dtype (float64 by default; weights are cast to it).

    Returns:
        ``(A, offsets)``: ``A`` a ``scipy.sparse.csr_array`` of shape ``(n, n)``, ``n =
        graph.num_neurons``, with ``A[u, v]`` the weight of edge ``u -> v`` in global slot order
        (sorted indices, no duplicates; a weight of 0 stays a stored entry, so the structure
        survives); ``offsets = np.cumsum([0, *graph.layer_sizes])``.

    Raises:
        InvalidArgumentError: ``weights`` names a block the graph does not have, or its values do
            not match the block's edge count. TypeError: ``weights`` is not such a dict.
    """
    block_weights = _block_weights(graph, weights)
    src, dst, w, _ = _global_edges(graph, block_weights)
    n = graph.num_neurons
    data = np.ones(len(src), dtype=dtype) if w is None else w.astype(dtype, copy=False)
    # Edges come block by block, blocks sorted by (a, b), each in CSR order, so within one source
    # row the targets already increase: scipy's COO -> CSR conversion is then a linear counting
    # sort by row whose canonical-format check passes without sorting.
    index = np.int32 if max(n, len(src)) < 2**31 else np.int64  # as Graph.to_scipy does
    matrix = sp.coo_array((data, (src.astype(index), dst.astype(index))), shape=(n, n)).tocsr()
    return matrix, _offsets(graph.layer_sizes)


def _layer_sizes_arg(layer_sizes: Any, n: int) -> list[int]:
    sizes = np.asarray(layer_sizes)
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu":
        raise TypeError(f"layer_sizes: expected a sequence of ints, got {layer_sizes!r}")
    if len(sizes) < 2:
        raise InvalidArgumentError(f"layer_sizes: needs at least 2 layers (inputs and outputs), got {len(sizes)}")
    bad = np.flatnonzero(sizes < 1)
    if len(bad):
        raise InvalidArgumentError(f"layer_sizes[{bad[0]}]: must be positive, got {sizes[bad[0]]}")
    sizes_list = [int(s) for s in sizes]
    total = sum(sizes_list)  # in Python ints: numpy's sum wraps around at 2**63
    if total != n:
        raise InvalidArgumentError(
            f"layer_sizes: {sizes_list} add up to {total} neurons, but A has {n} rows and columns"
        )
    return sizes_list


class _Backward(Exception):
    """Raised by ``_graph_from_adjacency`` with the first edge that does not go forward; each
    caller turns it into an error that names its own argument and nodes."""

    def __init__(self, u: int, v: int, layer_u: int, layer_v: int, count: int) -> None:
        super().__init__(u, v, layer_u, layer_v, count)
        self.u, self.v, self.layer_u, self.layer_v, self.count = u, v, layer_u, layer_v, count

    def describe(self, edge: str) -> str:
        more = f" ({self.count} such edges in all)" if self.count > 1 else ""
        return (
            f"edge {edge} goes from layer {self.layer_u} to layer {self.layer_v}; every edge must go "
            f"from a lower layer to a strictly higher one{more}"
        )


def _graph_from_adjacency(matrix: Any, sizes: list[int], seed: int) -> tuple[Graph, Weights]:
    """The graph with layer sizes ``sizes`` whose edges are the stored entries of the square
    ``matrix`` (``matrix[u, v]`` is ``u -> v``), and the entries' values per block, aligned with
    the blocks' CSR. Checks everything before building; raises ``_Backward`` for a bad edge."""
    n_layers = len(sizes)
    off = _offsets(sizes).tolist()
    # Rows of the transpose are targets and its columns sources, as in a block's CSR; each target
    # layer is then one contiguous run of rows, and each block a column range of it.
    at = sp.csr_array(matrix.T)
    if not at.has_canonical_format:
        at = at.copy()  # never reorder the caller's arrays in place
        at.sum_duplicates()
    indptr, indices = at.indptr, at.indices
    # An edge into layer b must come from a source below off[b]: one comparison per edge, no
    # per-edge layer lookup.
    first: tuple[int, int] | None = None
    count = 0
    for b in range(n_layers):
        lo, hi = int(indptr[off[b]]), int(indptr[off[b + 1]])
        bad = np.flatnonzero(indices[lo:hi] >= off[b])
        if len(bad) and first is None:
            k = lo + int(bad[0])
            first = (int(indices[k]), int(np.searchsorted(indptr, k, side="right")) - 1)
        count += len(bad)
    if first is not None:
        u, v = first
        layer = np.searchsorted(off, [u, v], side="right") - 1
        raise _Backward(u, v, int(layer[0]), int(layer[1]), count)
    blocks: dict[tuple[int, int], tuple[_I64, _I64]] = {}
    weights: Weights = {}
    for b in range(1, n_layers):
        into_b = at[off[b] : off[b + 1]]
        for a in range(b):
            block = into_b[:, off[a] : off[a + 1]]  # keeps the entries' order and explicit zeros
            # Every adjacent block exists, even empty, as in Graph(...); a skip block if it has an edge.
            if block.nnz or a == b - 1:
                blocks[(a, b)] = (block.indptr, block.indices)
                weights[(a, b)] = np.asarray(block.data, dtype=np.float64)
    return Graph.from_blocks(sizes, blocks, seed=seed), weights


@overload
def from_scipy_adjacency(
    A: Any, layer_sizes: Sequence[int], *, return_weights: Literal[False] = False, seed: int = 0
) -> Graph: ...
@overload
def from_scipy_adjacency(
    A: Any, layer_sizes: Sequence[int], *, return_weights: Literal[True], seed: int = 0
) -> tuple[Graph, Weights]: ...
def from_scipy_adjacency(
    A: Any, layer_sizes: Sequence[int], *, return_weights: bool = False, seed: int = 0
) -> Graph | tuple[Graph, Weights]:
    """The growcore Graph whose edges are the stored entries of a square adjacency matrix.

    Args:
        A: a square scipy.sparse matrix or array in global slot order (layer 0's neurons first);
            every stored entry ``A[u, v]`` is an edge ``u -> v`` (explicit zeros included, so call
            ``A.eliminate_zeros()`` first to drop them; duplicates are one edge).
        layer_sizes: neurons per layer; they must add up to ``A.shape[0]``.
        return_weights: also return the stored values as per-block weights, ``{(a, b): float64
            values aligned with graph.csr(a, b)[1]}``, ready for ``growcore.katz``.
        seed: the new graph's random seed.

    Returns:
        the Graph, or ``(graph, weights)`` with ``return_weights=True``. See the module's
        docstring for what the import preserves.

    Raises:
        TypeError: ``A`` is not a scipy.sparse matrix, or ``layer_sizes`` not a sequence of ints.
        InvalidArgumentError: ``A`` is not square; ``layer_sizes`` has fewer than 2 layers, a
            size below 1, or does not add up to ``A``'s size; an edge does not go from a lower
            layer to a strictly higher one (the message names the first such edge). Nothing is
            built then.
    """
    if not sp.issparse(A):
        raise TypeError(f"A: expected a scipy.sparse matrix or array, got {type(A).__name__}")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InvalidArgumentError(f"A: the adjacency matrix must be square, got shape {A.shape}")
    sizes = _layer_sizes_arg(layer_sizes, A.shape[0])
    try:
        graph, weights = _graph_from_adjacency(A, sizes, seed)
    except _Backward as e:
        raise InvalidArgumentError(f"A: {e.describe(f'{e.u} -> {e.v} (A[{e.u}, {e.v}])')}") from None
    return (graph, weights) if return_weights else graph


def to_networkx(graph: Graph, weights: Mapping[tuple[int, int], npt.ArrayLike] | None = None) -> Any:
    """The whole graph as a ``networkx.DiGraph`` over global slot numbers.

    Node ``offsets[l] + s`` (``offsets = np.cumsum([0, *graph.layer_sizes])``) is slot ``s`` of
    layer ``l``, with node attributes ``layer``, ``slot`` and ``id`` (the neuron's stable id).
    Every edge ``u -> v`` has attributes ``birth`` (the step it was added) and ``frozen``, and
    ``weight`` when ``weights`` (``{(a, b): values aligned with graph.csr(a, b)[1]}``, other
    blocks weigh 1) is given. networkx keeps a Python dict per node and per edge, so this costs
    far more memory and time than ``to_scipy_adjacency`` on large graphs.

    Raises:
        ImportError: networkx is not installed.
        InvalidArgumentError, TypeError: bad ``weights``, as for ``to_scipy_adjacency``.
    """
    import networkx as nx  # type: ignore[import-untyped]  # optional dependency

    block_weights = _block_weights(graph, weights)
    src, dst, w, blocks = _global_edges(graph, block_weights)
    sizes = graph.layer_sizes
    layers = np.repeat(np.arange(len(sizes)), sizes).tolist()
    slots = np.concatenate([np.arange(s) for s in sizes]).tolist()
    ids = np.concatenate([graph.ids(layer) for layer in range(len(sizes))]).tolist()
    G = nx.DiGraph()
    G.add_nodes_from(
        (node, {"layer": layer, "slot": slot, "id": nid})
        for node, (layer, slot, nid) in enumerate(zip(layers, slots, ids))
    )
    edges = list(zip(src.tolist(), dst.tolist()))
    G.add_edges_from(edges)
    births = np.concatenate([np.zeros(0, np.int64), *(graph.edge_births(a, b) for a, b in blocks)])
    frozen = np.concatenate([np.zeros(0, bool), *(graph.edge_frozen(a, b) for a, b in blocks)])
    nx.set_edge_attributes(G, dict(zip(edges, births.tolist())), "birth")
    nx.set_edge_attributes(G, dict(zip(edges, frozen.tolist())), "frozen")
    if w is not None:
        nx.set_edge_attributes(G, dict(zip(edges, w.tolist())), "weight")
    return G


@overload
def from_networkx(
    G: Any, layer: str = "layer", slot: str | None = "slot", weight: None = None, *, seed: int = 0
) -> Graph: ...
@overload
def from_networkx(
    G: Any, layer: str = "layer", slot: str | None = "slot", *, weight: str, seed: int = 0
) -> tuple[Graph, Weights]: ...
def from_networkx(
    G: Any, layer: str = "layer", slot: str | None = "slot", weight: str | None = None, *, seed: int = 0
) -> Graph | tuple[Graph, Weights]:
    """The growcore Graph of a directed networkx graph whose nodes carry their layer.

    Args:
        G: a networkx DiGraph (a MultiDiGraph's parallel edges become one edge, their weights
            summed). Every edge must go from a lower layer to a strictly higher one.
        layer: the node attribute holding each node's layer, an int from 0; every layer from 0 to
            the highest must have a node.
        slot: the node attribute holding each node's slot within its layer. When every node has
            it, each layer's slots must be ``0..size - 1`` (as ``to_networkx`` writes them); when
            no node has it (or ``slot=None``), a layer's nodes take slots in ``list(G)`` order.
        weight: the edge attribute holding weights (edges without it weigh 1); when given, the
            result is ``(graph, weights)`` with weights aligned with ``graph.csr(a, b)[1]``.
        seed: the new graph's random seed.

    Raises:
        ImportError: networkx is not installed. TypeError: ``G`` is not a networkx graph.
        InvalidArgumentError: ``G`` is undirected or empty; a node lacks the layer attribute or
            has a bad layer or slot; a layer has no node; an edge does not go forward. The
            message names the node or edge. Nothing is built then.
    """
    import networkx as nx

    if not isinstance(G, nx.Graph):
        raise TypeError(f"G: expected a networkx graph, got {type(G).__name__}")
    if not G.is_directed():
        raise InvalidArgumentError(f"G: must be directed (a DiGraph), got an undirected {type(G).__name__}")
    nodes = list(G)
    if not nodes:
        raise InvalidArgumentError("G: has no nodes")
    layers = np.empty(len(nodes), np.int64)
    slots = np.empty(len(nodes), np.int64)
    slot_given = np.zeros(len(nodes), bool)
    for i, (node, data) in enumerate(G.nodes(data=True)):
        value = data.get(layer)
        if value is None:
            raise InvalidArgumentError(f"G: node {node!r} has no {layer!r} attribute")
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise InvalidArgumentError(f"G: node {node!r} has {layer!r} = {value!r}; expected an int >= 0")
        if value >= len(nodes):  # n nodes fill at most n layers without a gap
            raise InvalidArgumentError(
                f"G: node {node!r} has {layer!r} = {value}, but {len(nodes)} nodes cannot fill "
                f"layers 0..{value} without a gap"
            )
        layers[i] = value
        s = None if slot is None else data.get(slot)
        if s is not None:
            if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
                raise InvalidArgumentError(f"G: node {node!r} has {slot!r} = {s!r}; expected an int")
            if not 0 <= s < len(nodes):  # no layer has more than n slots
                raise InvalidArgumentError(
                    f"G: node {node!r} has {slot!r} = {s}, outside every layer of a {len(nodes)}-node graph"
                )
            slots[i] = s
            slot_given[i] = True
    sizes_arr = np.bincount(layers)
    empty = np.flatnonzero(sizes_arr == 0)
    if len(empty):
        raise InvalidArgumentError(
            f"G: no node has {layer!r} = {empty[0]}; layers must be 0..{len(sizes_arr) - 1} without gaps"
        )
    if len(sizes_arr) < 2:
        raise InvalidArgumentError("G: all nodes are in layer 0; a graph needs at least 2 layers")
    off = _offsets(sizes_arr.tolist())
    if slot_given.all():
        bad = np.flatnonzero((slots < 0) | (slots >= sizes_arr[layers]))
        if len(bad):
            i = bad[0]
            raise InvalidArgumentError(
                f"G: node {nodes[i]!r} has {slot!r} = {slots[i]}, outside layer {layers[i]}'s "
                f"0..{sizes_arr[layers[i]] - 1}"
            )
        position = off[layers] + slots
        seen = np.bincount(position, minlength=len(nodes))
        twice = np.flatnonzero(seen > 1)
        if len(twice):
            i, j = np.flatnonzero(position == twice[0])[:2]
            raise InvalidArgumentError(
                f"G: nodes {nodes[i]!r} and {nodes[j]!r} both have {layer!r} = {layers[i]} and {slot!r} = {slots[i]}"
            )
    elif slot_given.any():
        i = int(np.flatnonzero(~slot_given)[0])
        raise InvalidArgumentError(
            f"G: node {nodes[i]!r} has no {slot!r} attribute but other nodes do; give every node a "
            f"slot or none (then a layer's nodes take slots in node order)"
        )
    else:
        # Rank within the layer, in node order: a stable sort by layer lists each layer's nodes
        # in node order.
        order = np.argsort(layers, kind="stable")
        position = np.empty(len(nodes), np.int64)
        position[order] = np.arange(len(nodes))
    nodelist = [nodes[i] for i in np.argsort(position)]
    matrix = nx.to_scipy_sparse_array(G, nodelist=nodelist, weight=weight, dtype=np.float64, format="csr")
    try:
        graph, weights = _graph_from_adjacency(matrix, sizes_arr.tolist(), seed)
    except _Backward as e:
        raise InvalidArgumentError(f"G: {e.describe(f'{nodelist[e.u]!r} -> {nodelist[e.v]!r}')}") from None
    return graph if weight is None else (graph, weights)


__all__ = ["from_networkx", "from_scipy_adjacency", "to_networkx", "to_scipy_adjacency"]
