"""Whole-graph export and import: growcore Graph <-> one scipy.sparse / networkx adjacency."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import growcore
from growcore import Graph, InvalidArgumentError

from _model import layered_graph, random_mutations


def offsets(g: Graph) -> np.ndarray:
    return np.cumsum([0, *g.layer_sizes])


@st.composite
def mutated_graph(draw):
    """A random layered graph, then random mutations (removed and reset neurons move ids and
    slots apart, removed blocks leave gaps)."""
    g = draw(layered_graph())
    random_mutations(g, np.random.default_rng(draw(st.integers(0, 2**32))), draw(st.integers(0, 8)))
    return g


@st.composite
def weighted_graph(draw):
    g = draw(mutated_graph())
    weights = {}
    for a, b in g.blocks:
        if draw(st.booleans()):
            n = g.block_nnz(a, b)
            weights[(a, b)] = np.array(draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n)))
    return g, weights


def dense_reference(g: Graph, weights: dict) -> np.ndarray:
    """The global adjacency assembled densely, block by block, from each block's dense mask."""
    off = offsets(g)
    out = np.zeros((g.num_neurons, g.num_neurons))
    for a, b in g.blocks:
        rows, cols = np.nonzero(g.to_dense(a, b))  # rows: targets in b, cols: sources in a
        w = weights.get((a, b))
        # to_dense lists entries row-major, which is CSR order, so weights line up with them.
        out[off[a] + cols, off[b] + rows] = 1.0 if w is None else w
    return out


def surviving_blocks(g: Graph) -> list[tuple[int, int]]:
    """Blocks an import rebuilds: every block with an edge, and every adjacent block."""
    keep = {k for k in g.blocks if g.block_nnz(*k) > 0}
    keep |= {(a, a + 1) for a in range(g.num_layers - 1)}
    return sorted(keep)


def assert_same_structure(g: Graph, h: Graph) -> None:
    assert h.layer_sizes == g.layer_sizes
    assert h.blocks == surviving_blocks(g)
    for a, b in h.blocks:
        got = h.csr(a, b)
        if g.has_block(a, b):
            np.testing.assert_array_equal(got[0], g.csr(a, b)[0])
            np.testing.assert_array_equal(got[1], g.csr(a, b)[1])
        else:
            assert h.block_nnz(a, b) == 0
    # A fresh graph: ids issued in slot order, everything born at step 0.
    ids = np.concatenate([h.ids(layer) for layer in range(h.num_layers)])
    np.testing.assert_array_equal(ids, np.arange(h.num_neurons))
    assert h.step == 0
    assert all(not h.edge_births(a, b).any() and not h.edge_frozen(a, b).any() for a, b in h.blocks)


def assert_weights_survive(g: Graph, weights: dict, got: dict) -> None:
    assert sorted(got) == surviving_blocks(g)
    for key, values in got.items():
        assert values.dtype == np.float64
        expected = weights.get(key, np.ones(g.block_nnz(*key) if g.has_block(*key) else 0))
        np.testing.assert_array_equal(values, expected)


# -- scipy ------------------------------------------------------------------------------------


@given(weighted_graph())
def test_scipy_export_matches_a_dense_assembly(case):
    g, weights = case
    A, off = growcore.to_scipy_adjacency(g, weights=weights or None)
    assert isinstance(A, sp.csr_array)
    assert A.shape == (g.num_neurons, g.num_neurons) and A.dtype == np.float64
    assert A.has_canonical_format and A.nnz == g.nnz  # a weight of 0 stays a stored entry
    assert A.indices.dtype == np.int32
    np.testing.assert_array_equal(off, offsets(g))
    np.testing.assert_array_equal(A.toarray(), dense_reference(g, weights))


@given(weighted_graph())
def test_scipy_round_trip_keeps_structure_and_weights(case):
    g, weights = case
    A, _ = growcore.to_scipy_adjacency(g, weights=weights)
    h = growcore.from_scipy_adjacency(A, g.layer_sizes)
    assert_same_structure(g, h)
    h2, got = growcore.from_scipy_adjacency(A, g.layer_sizes, return_weights=True)
    assert h2 == h
    assert_weights_survive(g, weights, got)


@given(weighted_graph(), st.floats(-2, 2), st.sampled_from(["in", "out"]))
def test_katz_on_the_scipy_export_agrees(case, alpha, direction):
    g, weights = case
    A, _ = growcore.to_scipy_adjacency(g, weights=weights)
    expected = growcore.katz(g, alpha=alpha, weights=weights, direction=direction, normalized=False)
    got = growcore.katz(A, alpha=alpha, direction=direction, normalized=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(expected).max()))
    h, w = growcore.from_scipy_adjacency(A, g.layer_sizes, return_weights=True)
    back = growcore.katz(h, alpha=alpha, weights=w, direction=direction, normalized=False)
    np.testing.assert_array_equal(back, expected)  # the same pass over the same edges


def test_scipy_import_accepts_any_sparse_format_and_keeps_explicit_zeros():
    # 2 -> 3 -> 1 neurons; A[0, 2] = 0 is stored, so it is an edge; (1, 4) is given twice.
    rows = np.array([0, 0, 1, 1, 2, 3, 4])
    cols = np.array([2, 5, 4, 4, 5, 5, 5])
    vals = np.array([0.0, 7.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(6, 6))
    for A in (coo, coo.tocsr(), sp.csc_array(coo), sp.lil_matrix(coo)):
        g, w = growcore.from_scipy_adjacency(A, [2, 3, 1], return_weights=True)
        assert g.blocks == [(0, 1), (0, 2), (1, 2)]
        np.testing.assert_array_equal(g.to_dense(0, 1), [[True, False], [False, False], [False, True]])
        np.testing.assert_array_equal(w[(0, 1)], [0.0, 3.0])  # duplicates add up, as in scipy
        np.testing.assert_array_equal(g.to_dense(0, 2), [[True, False]])
        np.testing.assert_array_equal(w[(0, 2)], [7.0])
    assert coo.nnz == 7 and not coo.has_canonical_format  # the caller's matrix is left alone


def test_scipy_import_makes_empty_adjacent_blocks():
    g = growcore.from_scipy_adjacency(sp.csr_array((5, 5)), [2, 2, 1])
    assert g.blocks == [(0, 1), (1, 2)] and g.nnz == 0


def test_weights_with_another_dtype():
    g = Graph([2, 2], 1.0)
    A, _ = growcore.to_scipy_adjacency(g, weights={(0, 1): [1, 2, 3, 4]}, dtype=np.float32)
    assert A.dtype == np.float32
    np.testing.assert_array_equal(A.toarray()[:2, 2:], [[1, 3], [2, 4]])  # A[src, dst] = block.T


# -- networkx ---------------------------------------------------------------------------------


@given(weighted_graph())
def test_networkx_export_carries_layers_slots_ids_births_and_weights(case):
    g, weights = case
    weights = weights if weights else None  # None: no weight attribute at all
    G = growcore.to_networkx(g, weights=weights)
    assert isinstance(G, nx.DiGraph)
    assert list(G) == list(range(g.num_neurons))
    off = offsets(g)
    for layer in range(g.num_layers):
        ids = g.ids(layer)
        for slot in range(g.layer_sizes[layer]):
            assert G.nodes[off[layer] + slot] == {"layer": layer, "slot": slot, "id": ids[slot]}
    A = dense_reference(g, weights or {})
    assert G.number_of_edges() == g.nnz
    for a, b in g.blocks:
        indptr, cols = g.csr(a, b)
        births, frozen = g.edge_births(a, b), g.edge_frozen(a, b)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        for k, (r, c) in enumerate(zip(rows, cols)):
            data = G.edges[off[a] + c, off[b] + r]
            assert data["birth"] == births[k] and data["frozen"] == frozen[k]
            if weights is not None:
                assert data["weight"] == A[off[a] + c, off[b] + r]
            else:
                assert "weight" not in data


@given(weighted_graph(), st.randoms(use_true_random=False))
def test_networkx_round_trip_in_any_node_order(case, rnd):
    g, weights = case
    G = growcore.to_networkx(g, weights=weights)
    h, got = growcore.from_networkx(G, weight="weight")
    assert_same_structure(g, h)
    assert_weights_survive(g, weights, got)
    assert growcore.from_networkx(G) == h
    # The slot attribute, not the node order, places nodes; node names are free.
    shuffled = nx.DiGraph()
    nodes = list(G.nodes(data=True))
    rnd.shuffle(nodes)
    shuffled.add_nodes_from((f"n{v}", d) for v, d in nodes)
    shuffled.add_edges_from((f"n{u}", f"n{v}", d) for u, v, d in G.edges(data=True))
    h2, got2 = growcore.from_networkx(shuffled, weight="weight")
    assert h2 == h
    assert all(np.array_equal(got[k], got2[k]) for k in got)


@given(weighted_graph(), st.floats(-2, 2))
def test_katz_on_the_networkx_export_agrees(case, alpha):
    g, weights = case
    G = growcore.to_networkx(g, weights=weights)
    expected = growcore.katz(g, alpha=alpha, weights=weights, normalized=False)
    got = growcore.katz(G, alpha=alpha, weights="weight", normalized=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(expected).max()))


def test_networkx_import_without_slots_uses_node_order():
    G = nx.DiGraph()
    G.add_node("out", layer=1)
    G.add_node("x1", layer=0)
    G.add_node("x0", layer=0)
    G.add_edge("x0", "out")  # x0 is the second layer-0 node in node order: slot 1
    g = growcore.from_networkx(G)
    assert g.layer_sizes == [2, 1]
    np.testing.assert_array_equal(g.to_dense(0, 1), [[False, True]])
    G.nodes["x1"]["slot"] = 1
    G.nodes["x0"]["slot"] = 0
    G.nodes["out"]["slot"] = 0
    np.testing.assert_array_equal(growcore.from_networkx(G).to_dense(0, 1), [[True, False]])
    np.testing.assert_array_equal(growcore.from_networkx(G, slot=None).to_dense(0, 1), [[False, True]])


def test_networkx_multigraph_parallel_edges_become_one():
    G = nx.MultiDiGraph()
    G.add_nodes_from([(0, {"layer": 0}), (1, {"layer": 1})])
    G.add_edge(0, 1, w=2.0)
    G.add_edge(0, 1, w=3.0)
    g, w = growcore.from_networkx(G, weight="w")
    assert g.nnz == 1
    np.testing.assert_array_equal(w[(0, 1)], [5.0])


# -- errors -----------------------------------------------------------------------------------


def chain_matrix() -> sp.csr_array:
    """2 -> 2 -> 1 neurons, fully connected between adjacent layers."""
    a = np.zeros((5, 5))
    a[:2, 2:4] = 1
    a[2:4, 4] = 1
    return sp.csr_array(a)


def with_edge(u: int, v: int) -> sp.csr_array:
    a = chain_matrix().toarray()
    a[u, v] = 1
    return sp.csr_array(a)


@pytest.mark.parametrize(
    ("A", "sizes", "error", "words"),
    [
        (sp.csr_array(np.zeros((2, 3))), [1, 1], InvalidArgumentError, ["A:", "square", "(2, 3)"]),
        (chain_matrix(), [2, 2, 2], InvalidArgumentError, ["layer_sizes", "[2, 2, 2]", "6", "5"]),
        (chain_matrix(), [5], InvalidArgumentError, ["layer_sizes", "at least 2 layers", "got 1"]),
        (chain_matrix(), [2, 0, 3], InvalidArgumentError, ["layer_sizes[1]", "positive", "got 0"]),
        (chain_matrix(), [2.0, 3.0], TypeError, ["layer_sizes"]),
        # Sizes whose int64 sum wraps around to the row count.
        (chain_matrix(), [2**62] * 4 + [5], InvalidArgumentError, ["layer_sizes", f"add up to {2**64 + 5}"]),
        (chain_matrix(), np.array([2**63, 2**63, 5], np.uint64), InvalidArgumentError, ["layer_sizes", f"add up to {2**64 + 5}"]),
        (with_edge(4, 0), [2, 2, 1], InvalidArgumentError, ["A: edge 4 -> 0", "A[4, 0]", "layer 2 to layer 0"]),
        (with_edge(2, 3), [2, 2, 1], InvalidArgumentError, ["A: edge 2 -> 3", "layer 1 to layer 1"]),
        (with_edge(1, 1), [2, 2, 1], InvalidArgumentError, ["A: edge 1 -> 1", "layer 0 to layer 0"]),
        (np.zeros((5, 5)), [2, 2, 1], TypeError, ["A:", "ndarray"]),
    ],
)
def test_scipy_import_errors_name_the_argument_and_value(A, sizes, error, words):
    before = A.copy()
    with pytest.raises(error) as err:
        growcore.from_scipy_adjacency(A, sizes)
    for w in words:
        assert w in str(err.value)
    assert (A != before).sum() == 0 if sp.issparse(A) else np.array_equal(A, before)


def test_scipy_import_counts_every_backward_edge():
    a = chain_matrix().toarray()
    a[3, 0] = a[4, 2] = a[4, 3] = 1
    with pytest.raises(InvalidArgumentError, match=r"edge 3 -> 0 .*\(3 such edges in all\)"):
        growcore.from_scipy_adjacency(sp.csr_array(a), [2, 2, 1])


def layered_digraph() -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from([("a", {"layer": 0}), ("b", {"layer": 0}), ("c", {"layer": 1}), ("d", {"layer": 2})])
    G.add_edges_from([("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")])
    return G


def networkx_case(change):
    G = layered_digraph()
    change(G)
    return G


@pytest.mark.parametrize(
    ("G", "error", "words"),
    [
        (networkx_case(lambda G: G.add_node("e")), InvalidArgumentError, ["G: node 'e' has no 'layer' attribute"]),
        (networkx_case(lambda G: G.add_edge("d", "b")), InvalidArgumentError, ["G: edge 'd' -> 'b'", "layer 2 to layer 0"]),
        (networkx_case(lambda G: G.add_edge("a", "b")), InvalidArgumentError, ["G: edge 'a' -> 'b'", "layer 0 to layer 0"]),
        (networkx_case(lambda G: G.nodes["d"].update(layer=3)), InvalidArgumentError, ["'layer' = 2", "without gaps"]),
        (networkx_case(lambda G: G.nodes["d"].update(layer=9)), InvalidArgumentError, ["node 'd'", "'layer' = 9"]),
        (networkx_case(lambda G: G.nodes["d"].update(layer=-1)), InvalidArgumentError, ["node 'd'", "'layer' = -1"]),
        (networkx_case(lambda G: G.nodes["d"].update(layer=2**70)), InvalidArgumentError, ["node 'd'", f"'layer' = {2**70}"]),
        (
            networkx_case(lambda G: G.nodes["d"].update(layer=np.uint64(2**64 - 1))),
            InvalidArgumentError,
            ["node 'd'", f"'layer' = {2**64 - 1}"],
        ),
        (
            networkx_case(lambda G: nx.set_node_attributes(G, {"a": 0, "b": 2**70, "c": 0, "d": 0}, "slot")),
            InvalidArgumentError,
            ["node 'b'", f"'slot' = {2**70}", "outside every layer"],
        ),
        (networkx_case(lambda G: G.nodes["d"].update(layer=1.5)), InvalidArgumentError, ["node 'd'", "'layer' = 1.5"]),
        (networkx_case(lambda G: G.nodes["a"].update(slot=0)), InvalidArgumentError, ["node 'b' has no 'slot'"]),
        (
            networkx_case(lambda G: nx.set_node_attributes(G, {"a": 0, "b": 0, "c": 0, "d": 0}, "slot")),
            InvalidArgumentError,
            ["nodes 'a' and 'b'", "'slot' = 0"],
        ),
        (
            networkx_case(lambda G: nx.set_node_attributes(G, {"a": 0, "b": 2, "c": 0, "d": 0}, "slot")),
            InvalidArgumentError,
            ["node 'b'", "'slot' = 2", "0..1"],
        ),
        (nx.Graph([(0, 1)]), InvalidArgumentError, ["G: must be directed", "Graph"]),
        (nx.DiGraph(), InvalidArgumentError, ["G: has no nodes"]),
        ({"a": ["b"]}, TypeError, ["G:", "dict"]),
    ],
)
def test_networkx_import_errors_name_the_node(G, error, words):
    before = (list(G.nodes(data=True)), list(G.edges)) if isinstance(G, nx.Graph) else None
    with pytest.raises(error) as err:
        growcore.from_networkx(G)
    for w in words:
        assert w in str(err.value)
    if before is not None:
        assert (list(G.nodes(data=True)), list(G.edges)) == before


def test_networkx_import_of_one_layer_is_refused():
    G = nx.DiGraph()
    G.add_node(0, layer=0)
    with pytest.raises(InvalidArgumentError, match="G: all nodes are in layer 0"):
        growcore.from_networkx(G)


@pytest.mark.parametrize("export", [growcore.to_scipy_adjacency, growcore.to_networkx])
@pytest.mark.parametrize(
    ("weights", "error", "words"),
    [
        ({(0, 2): [1.0]}, InvalidArgumentError, ["weights: names block (0, 2)"]),
        ({(0, 1): np.ones(5)}, InvalidArgumentError, ["weights[(0, 1)]", "(5,)", "12 edges"]),
        ({(0, 1): np.ones((3, 4))}, InvalidArgumentError, ["weights[(0, 1)]", "(3, 4)"]),
        ({0: np.ones(12)}, TypeError, ["weights: keys must be (a, b)", "0"]),
        ([np.ones(12)], TypeError, ["weights: expected a dict", "list"]),
    ],
)
def test_export_weight_errors_name_the_block(export, weights, error, words):
    g = Graph([3, 4, 2], 1.0)
    before = g.copy()
    with pytest.raises(error) as err:
        export(g, weights=weights)
    for w in words:
        assert w in str(err.value)
    assert g == before
