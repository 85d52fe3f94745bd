"""Katz centrality on growcore graphs, cross-checked against networkx and an exact sparse solve."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import assume, given
from hypothesis import strategies as st

import growcore
from growcore import Graph, InvalidArgumentError

from _model import layered_graph


def offsets(g: Graph) -> np.ndarray:
    return np.cumsum([0, *g.layer_sizes])


def global_edges(g: Graph, weights: dict | None):
    """(sources, targets, weights) of every edge in global slot numbering."""
    off = offsets(g)
    src, dst, wts = [], [], []
    for a, b in g.blocks:
        indptr, cols = g.csr(a, b)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        src.append(off[a] + cols)
        dst.append(off[b] + rows)
        w = (weights or {}).get((a, b))
        wts.append(np.ones(len(cols)) if w is None else np.asarray(w, dtype=float))
    if not src:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(wts)


def to_networkx(g: Graph, weights: dict | None) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(range(g.num_neurons))
    for u, v, w in zip(*global_edges(g, weights)):
        G.add_edge(int(u), int(v), weight=float(w))
    return G


@st.composite
def katz_case(draw):
    g = draw(layered_graph())
    weights = None
    if draw(st.booleans()):
        weights = {}
        for a, b in g.blocks:
            if draw(st.booleans()):
                n = g.block_nnz(a, b)
                weights[(a, b)] = np.array(draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n)))
    alpha = draw(st.floats(-3, 3))
    if draw(st.booleans()):
        beta = draw(st.floats(-2, 2))
    else:
        beta = np.array(draw(st.lists(st.floats(-2, 2), min_size=g.num_neurons, max_size=g.num_neurons)))
    return g, weights, alpha, beta, draw(st.sampled_from(["in", "out"]))


@given(katz_case(), st.booleans())
def test_matches_networkx_katz_centrality_numpy(case, normalized):
    g, weights, alpha, beta, direction = case
    G = to_networkx(g, weights)
    if direction == "out":
        G = G.reverse()
    nx_beta = dict(enumerate(beta.tolist())) if isinstance(beta, np.ndarray) else beta
    raw = nx.katz_centrality_numpy(G, alpha=alpha, beta=nx_beta, normalized=False, weight="weight")
    raw = np.array([raw[i] for i in range(g.num_neurons)])
    if normalized:
        assume(abs(raw.sum()) > 1e-6 * max(1.0, np.abs(raw).max()))  # networkx divides by sign(sum)
        expected = nx.katz_centrality_numpy(G, alpha=alpha, beta=nx_beta, normalized=True, weight="weight")
        expected = np.array([expected[i] for i in range(g.num_neurons)])
    else:
        expected = raw
    got = growcore.katz(g, alpha=alpha, beta=beta, weights=weights, direction=direction, normalized=normalized)
    assert got.dtype == np.float64 and got.shape == (g.num_neurons,)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(expected).max()))


@given(katz_case())
def test_equals_an_exact_sparse_solve(case):
    g, weights, alpha, beta, direction = case
    src, dst, w = global_edges(g, weights)
    n = g.num_neurons
    A = sp.csr_array((w, (src, dst)), shape=(n, n))  # A[u, v] = weight of u -> v
    M = A.T if direction == "in" else A
    b = np.broadcast_to(np.asarray(beta, dtype=float), (n,)).copy()
    expected = spla.spsolve(sp.identity(n, format="csc") - alpha * M.tocsc(), b)
    got = growcore.katz(g, alpha=alpha, beta=beta, weights=weights, direction=direction, normalized=False)
    np.testing.assert_allclose(got, np.atleast_1d(expected), rtol=1e-9, atol=1e-9 * max(1.0, np.abs(expected).max()))


def test_hand_computed_chain_with_a_skip_edge():
    g = Graph.from_blocks([1, 1, 1], {(0, 1): ([0, 1], [0]), (1, 2): ([0, 1], [0]), (0, 2): ([0, 1], [0])})
    # in: x0 = 1, x1 = 1 + 0.5 x0, x2 = 1 + 0.5 (x1 + 2 x0) with the skip edge weighted 2
    x = growcore.katz(g, alpha=0.5, weights={(0, 2): [2.0]}, normalized=False)
    np.testing.assert_array_equal(x, [1.0, 1.5, 2.75])
    y = growcore.katz(g, alpha=0.5, direction="out", normalized=False)
    np.testing.assert_array_equal(y, [2.25, 1.5, 1.0])


def test_alpha_above_one_is_exact_on_a_dag():
    g = Graph([3, 4, 2], 1.0)
    x = growcore.katz(g, alpha=10.0, normalized=False)
    np.testing.assert_array_equal(x, np.r_[np.ones(3), np.full(4, 31.0), np.full(2, 1 + 10 * 4 * 31.0)])


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": np.ones(3)}, "beta"),
        ({"weights": {(0, 1): np.ones(5)}}, "weights[(0, 1)]"),
        ({"weights": {(0, 1): np.full(12, np.nan)}}, "weights[(0, 1)]"),
        ({"weights": {(0, 2): np.ones(1)}}, "weights"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_bad_input_names_the_argument(kwargs, named):
    g = Graph([3, 4, 2], 1.0)
    before = g.copy()
    with pytest.raises(InvalidArgumentError) as err:
        growcore.katz(g, **kwargs)
    assert named in str(err.value)
    assert g == before




@given(layered_graph(max_size=4))
def test_path_counts_and_reachability_match_brute_force(g):
    G = to_networkx(g, None)
    off = offsets(g)
    inputs = range(off[0], off[1])
    outputs = range(off[-2], off[-1])
    counts = growcore.path_counts(g)
    reach = growcore.reachability(g)
    for v in range(g.num_neurons):
        from_in = sum(len(list(nx.all_simple_paths(G, s, v))) if s != v else 1 for s in inputs)
        to_out = sum(len(list(nx.all_simple_paths(G, v, t))) if t != v else 1 for t in outputs)
        assert counts["from_inputs"][v] == from_in
        assert counts["to_outputs"][v] == to_out
        assert counts["through"][v] == from_in * to_out
        reached = v in inputs or any(v in nx.descendants(G, s) for s in inputs)
        reaches = v in outputs or any(t in nx.descendants(G, v) for t in outputs)
        assert reach["from_inputs"][v] == reached
        assert reach["to_outputs"][v] == reaches
        assert reach["dead"][v] == (not reached and not reaches)


@given(layered_graph(max_size=4))
def test_degrees_match_networkx(g):
    G = to_networkx(g, None)
    d = growcore.degrees(g)
    np.testing.assert_array_equal(d["in"], [G.in_degree(v) for v in range(g.num_neurons)])
    np.testing.assert_array_equal(d["out"], [G.out_degree(v) for v in range(g.num_neurons)])
    off = offsets(g)
    np.testing.assert_array_equal(d["layer_in"], [d["in"][off[i] : off[i + 1]].sum() for i in range(g.num_layers)])
    assert d["layer_out"].sum() == d["layer_in"].sum() == g.nnz


def test_path_counts_grow_past_int64_without_overflow():
    # 70 fully connected layers of 2 neurons: 2**69 paths leave each input, beyond int64's range.
    g = Graph([2] * 70, 1.0)
    counts = growcore.path_counts(g)
    assert counts["to_outputs"][0] == 2.0**69 > np.iinfo(np.int64).max
    assert counts["through"][-1] == 2.0**69


# -- general graphs (scipy.sparse, networkx) -------------------------------------------------


@st.composite
def weighted_digraph(draw, acyclic):
    """A random weighted digraph as a scipy matrix (A[u, v] = weight of u -> v)."""
    n = draw(st.integers(1, 8))
    dense = np.array(draw(st.lists(st.floats(0.1, 2) if not acyclic else st.floats(-2, 2), min_size=n * n, max_size=n * n)))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n)))
    a = (dense * mask).reshape(n, n)
    if acyclic:
        a = np.triu(a, 1)
        perm = np.array(draw(st.permutations(range(n))))
        a = a[np.ix_(perm, perm)]  # still acyclic, no longer in topological order
    else:
        np.fill_diagonal(a, 0)
        if n >= 2:
            a[0, 1] = a[1, 0] = 1.0  # at least one cycle
    return sp.csr_array(a)


def exact_solution(a, alpha, beta, direction):
    n = a.shape[0]
    m = a.T if direction == "in" else a
    b = np.broadcast_to(np.asarray(beta, dtype=float), (n,)).copy()
    return np.atleast_1d(spla.spsolve(sp.identity(n, format="csc") - alpha * sp.csc_array(m), b))


@given(weighted_digraph(acyclic=True), st.floats(-3, 3), st.floats(-2, 2), st.sampled_from(["in", "out"]))
def test_general_acyclic_graphs_are_exact_for_any_alpha(a, alpha, beta, direction):
    got = growcore.katz(a, alpha=alpha, beta=beta, direction=direction, normalized=False)
    expected = exact_solution(a, alpha, beta, direction)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(expected).max()))
    G = nx.from_scipy_sparse_array(a, create_using=nx.DiGraph)
    via_nx = growcore.katz(G if direction == "in" else G.reverse(), alpha=alpha, beta=beta, weights="weight", normalized=False)
    np.testing.assert_allclose(via_nx, expected, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(expected).max()))


@given(weighted_digraph(acyclic=False), st.floats(0.05, 0.8), st.sampled_from(["in", "out"]))
def test_cyclic_graphs_converge_below_one_over_the_spectral_radius(a, fraction, direction):
    rho = max(abs(np.linalg.eigvals(a.toarray())))
    assume(rho > 1e-9)
    alpha = fraction / rho
    got = growcore.katz(a, alpha=alpha, direction=direction, normalized=False, tol=1e-13, max_iter=100_000)
    expected = exact_solution(a, alpha, 1.0, direction)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_cyclic_graph_matches_networkx_power_iteration():
    G = nx.DiGraph([(0, 1), (1, 2), (2, 0), (2, 3), (3, 1)])
    expected = nx.katz_centrality(G, alpha=0.2, tol=1e-12, max_iter=10_000)
    got = growcore.katz(G, alpha=0.2, tol=1e-12, max_iter=10_000)
    np.testing.assert_allclose(got, [expected[v] for v in G], rtol=1e-8)


def test_divergent_power_iteration_says_why():
    a = sp.csr_array(np.array([[0.0, 1.0], [1.0, 0.0]]))  # spectral radius 1
    with pytest.raises(InvalidArgumentError, match="spectral radius"):
        growcore.katz(a, alpha=1.5, max_iter=200)
    with pytest.raises(InvalidArgumentError, match="positive on a cyclic graph"):
        growcore.katz(a, alpha=-0.1)


def test_general_graph_bad_input():
    with pytest.raises(InvalidArgumentError, match="square"):
        growcore.katz(sp.csr_array(np.ones((2, 3))))
    # A stored weight is named by its place in the caller's matrix or graph, not as `weights`.
    with pytest.raises(InvalidArgumentError, match=r"^graph: A\[1, 2\] is nan; edge weights must be finite"):
        growcore.katz(sp.csr_array(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, np.nan], [0.0, 0.0, 0.0]])))
    G = nx.DiGraph()
    G.add_edge("x", "y", w=1.0)
    G.add_edge("y", "z", w=np.inf)
    with pytest.raises(InvalidArgumentError, match=r"^graph: edge 'y' -> 'z' \('w'\) is inf"):
        growcore.katz(G, weights="w")
    with pytest.raises(InvalidArgumentError, match="weights: must be None"):
        growcore.katz(sp.identity(2, format="csr"), weights={(0, 1): [1.0]})
    with pytest.raises(TypeError, match="graph: expected"):
        growcore.katz([[0, 1], [0, 0]])


def test_networkx_results_follow_node_order():
    G = nx.DiGraph()
    G.add_edge("b", "a", w=2.0)
    G.add_node("c")
    x = growcore.katz(G, alpha=1.0, weights="w", normalized=False)
    assert list(G) == ["b", "a", "c"]
    np.testing.assert_array_equal(x, [1.0, 3.0, 1.0])


def test_reachability_of_a_graph_with_more_paths_than_float64_counts():
    # 320 fully connected layers of 10: 10**319 paths, beyond float64; one neuron cut off.
    g = Graph([10] * 320, 1.0)
    g.remove_edges(100, 101, np.full(10, 3), np.arange(10))  # neuron 3 of layer 101: no inputs
    reach = growcore.reachability(g)
    v = 101 * 10 + 3
    assert reach["to_outputs"].all() and not reach["dead"].any()
    assert reach["from_inputs"].sum() == g.num_neurons - 1 and not reach["from_inputs"][v]
    with pytest.raises(growcore.InvalidArgumentError, match="graph: more paths than float64 can count"):
        growcore.path_counts(g)
