"""Construction (random initialisers and from_blocks) and read-only queries, cross-checked with numpy/scipy."""

from __future__ import annotations

import math
import types
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from _model import (
    LINEAGE_KEYS,
    STAT_KEYS,
    acceptable_counts,
    csr_rows,
    erk_targets,
    round_half_away,
)
import growcore
from growcore import GrowcoreError, Graph, InvalidArgumentError, OutOfRangeError

sizes_st = st.lists(st.integers(1, 12), min_size=2, max_size=5)


def adjacent(sizes):
    return [(a, a + 1) for a in range(len(sizes) - 1)]


def capacity(sizes, key):
    a, b = key
    return sizes[a] * sizes[b]


# ---------------------------------------------------------------------------------------------
# uniform


@given(sizes=sizes_st, density=st.floats(0.0, 1.0), seed=st.integers(0, 2**63 - 1))
def test_uniform_exact_count_per_block(sizes, density, seed):
    g = Graph(sizes, density, seed=seed)
    assert g.layer_sizes == sizes and g.num_layers == len(sizes)
    assert g.blocks == adjacent(sizes)
    total = 0
    for a, b in g.blocks:
        n = g.block_nnz(a, b)
        assert n in acceptable_counts(density, sizes[b], sizes[a]), (a, b, n)
        assert int(g.to_dense(a, b).sum()) == n
        total += n
    assert g.nnz == total
    caps = sum(capacity(sizes, k) for k in g.blocks)
    assert g.density() == pytest.approx(total / caps, rel=1e-12)


@pytest.mark.parametrize(
    "sizes, density, expected",
    [
        ([1, 5], 0.5, [3]),  # 2.5 -> 3 (Python's round would give 2)
        ([2, 5], 0.25, [3]),  # 2.5 -> 3
        ([1, 1], 0.5, [1]),  # 0.5 -> 1
        ([2, 1], 0.25, [1]),  # 0.5 -> 1
        ([4, 8, 2], 0.0625, [2, 1]),  # 2.0, 1.0
        ([3, 3], 0.125, [1]),  # 1.125 -> 1
        ([2, 7], 0.75, [11]),  # 10.5 -> 11
        ([2, 9], 0.25, [5]),  # 4.5 -> 5
    ],
)
def test_uniform_rounds_half_away_from_zero(sizes, density, expected):
    g = Graph(sizes, density)
    assert [g.block_nnz(a, b) for a, b in g.blocks] == expected
    for (a, b), e in zip(g.blocks, expected):
        assert e == round_half_away(density * sizes[a] * sizes[b])


def test_uniform_positions_are_uniform():
    # each of the 100 positions should be chosen with probability 0.3; over 400 seeds the count of a
    # position is Binomial(400, 0.3) (mean 120, sd 9.2). 7 sd is far beyond chance for 100 cells.
    counts = np.zeros((10, 10))
    for seed in range(400):
        counts += Graph([10, 10], 0.3, seed=seed).to_dense(0, 1)
    assert counts.sum() == 400 * 30
    assert np.abs(counts - 120).max() < 7 * math.sqrt(400 * 0.3 * 0.7)
    # rows and columns are not favoured either
    assert np.abs(counts.sum(axis=0) - 1200).max() < 7 * math.sqrt(4000 * 0.3 * 0.7)
    assert np.abs(counts.sum(axis=1) - 1200).max() < 7 * math.sqrt(4000 * 0.3 * 0.7)


@pytest.mark.parametrize("distribution", ["uniform", "erk"])
def test_density_extremes(distribution):
    sizes = [3, 7, 2, 5]
    empty = Graph(sizes, 0.0, distribution=distribution)
    assert empty.nnz == 0 and empty.density() == 0.0 and empty.blocks == adjacent(sizes)
    full = Graph(sizes, 1.0, distribution=distribution)
    for a, b in full.blocks:
        assert full.to_dense(a, b).all()
    assert full.nnz == sum(capacity(sizes, k) for k in adjacent(sizes)) and full.density() == 1.0


def test_default_density_is_full():
    g = Graph([4, 3, 2])
    assert g.nnz == 4 * 3 + 3 * 2


# ---------------------------------------------------------------------------------------------
# ERK


@given(sizes=sizes_st, density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32))
def test_erk_exact_total_caps_and_proportions(sizes, density, seed):
    g = Graph(sizes, density, seed=seed, distribution="erk")
    keys = adjacent(sizes)
    assert g.blocks == keys
    caps = [capacity(sizes, k) for k in keys]
    nnz = [g.block_nnz(*k) for k in keys]
    assert sum(nnz) in acceptable_counts(density, sum(caps), 1)
    assert g.nnz == sum(nnz)
    for n, c in zip(nnz, caps):
        assert 0 <= n <= c
    targets = erk_targets([(sizes[b], sizes[a]) for a, b in keys], density * sum(caps))
    tol = len(keys) + 0.5  # integer apportionment of real-valued targets
    for n, t in zip(nnz, targets):
        assert abs(n - t) <= tol, (nnz, targets)


def test_erk_example_with_cap_redistribution():
    # block (0,1): 2x2, weight 4; block (1,2): 100x2, weight 102. total round(0.8*204)=163.
    # proportional share of block (0,1) is 163*4/106 = 6.2 > 4 -> capped at 4, the rest (159) moves.
    g = Graph([2, 2, 100], 0.8, distribution="erk", seed=3)
    assert g.block_nnz(0, 1) == 4
    assert g.block_nnz(1, 2) == 159


def test_erk_example_proportional():
    # weights 20 and 50, capacities 100 and 400, total 100 -> 28.57 and 71.43 (uniform: 20 and 80)
    g = Graph([10, 10, 40], 0.2, distribution="erk")
    assert g.nnz == 100
    assert abs(g.block_nnz(0, 1) - 100 * 20 / 70) < 1
    assert abs(g.block_nnz(1, 2) - 100 * 50 / 70) < 1


def test_erk_favours_small_blocks():
    g = Graph([200, 200, 4], 0.1, distribution="erk", seed=1)
    # (r+c)/(r*c): 0.01 for the 200x200 block, 0.255 for the 4x200 block
    assert g.density(1, 2) > 5 * g.density(0, 1)


# ---------------------------------------------------------------------------------------------
# block_density


@given(
    sizes=sizes_st,
    density=st.floats(0.0, 1.0),
    distribution=st.sampled_from(["uniform", "erk"]),
    data=st.data(),
)
def test_block_density_fixes_blocks(sizes, density, distribution, data):
    keys = adjacent(sizes)
    fixed_keys = data.draw(st.lists(st.sampled_from(keys), unique=True))
    fixed = {k: data.draw(st.floats(0.0, 1.0)) for k in fixed_keys}
    g = Graph(sizes, density, distribution=distribution, block_density=fixed, seed=data.draw(st.integers(0, 99)))
    assert g.blocks == keys
    for (a, b), d in fixed.items():
        assert g.block_nnz(a, b) in acceptable_counts(d, sizes[b], sizes[a])
    rest = [k for k in keys if k not in fixed]
    if distribution == "uniform":
        for a, b in rest:
            assert g.block_nnz(a, b) in acceptable_counts(density, sizes[b], sizes[a])
    else:
        rest_cap = sum(capacity(sizes, k) for k in rest)
        got = sum(g.block_nnz(*k) for k in rest)
        assert got in acceptable_counts(density, rest_cap, 1)
        for k in rest:
            assert g.block_nnz(*k) <= capacity(sizes, k)


def test_block_density_example():
    g = Graph([4, 5, 6], 0.5, block_density={(1, 2): 0.1}, distribution="erk")
    assert g.block_nnz(1, 2) == 3  # round(0.1 * 30)
    assert g.block_nnz(0, 1) == 10  # the remaining capacity 20 at density 0.5
    g = Graph([4, 5, 6], 0.5, block_density={(0, 1): 1.0, (1, 2): 0.0})
    assert g.to_dense(0, 1).all() and g.block_nnz(1, 2) == 0


@pytest.mark.parametrize("bad", [{(0, 2): 0.5}, {(1, 0): 0.5}, {(0, 3): 0.5}, {(2, 3): 0.5}])
def test_block_density_bad_key(bad):
    with pytest.raises(GrowcoreError) as ei:
        Graph([2, 3, 4], 0.5, block_density=bad)
    assert isinstance(ei.value, (ValueError, IndexError))


def test_chosen_blocks_only_are_created_and_erk_spans_them():
    # Two disjoint (input, output) pairs, as the torch controller lays out unrelated modules.
    g = Graph([30, 20, 8, 4], 0.2, blocks=[(0, 1), (2, 3), (0, 3)], distribution="erk", seed=3)
    assert g.blocks == [(0, 1), (0, 3), (2, 3)]
    total = 30 * 20 + 8 * 4 + 30 * 4
    assert g.nnz == round(0.2 * total)
    assert g.density(2, 3) > g.density(0, 1)  # ERK favours the small block
    h = Graph([30, 20, 8, 4], 0.2, blocks=[(2, 3)], block_density={(2, 3): 0.5})
    assert h.blocks == [(2, 3)] and h.block_nnz(2, 3) == 16


@pytest.mark.parametrize(
    ("blocks", "error", "words"),
    [
        ([(1, 0)], InvalidArgumentError, ["blocks", "(1, 0)"]),
        ([(0, 1), (0, 1)], InvalidArgumentError, ["blocks", "twice"]),
        ([(0, 9)], IndexError, ["blocks", "9"]),
        (5, TypeError, ["blocks", "5"]),
    ],
)
def test_chosen_blocks_bad(blocks, error, words):
    with pytest.raises(error) as ei:
        Graph([2, 3, 4], 0.5, blocks=blocks)
    for word in words:
        assert word in str(ei.value)
    with pytest.raises(InvalidArgumentError, match="block_density"):
        Graph([2, 3, 4], 0.5, blocks=[(0, 2)], block_density={(0, 1): 0.5})


@pytest.mark.parametrize("d", [-0.1, 1.5, float("nan"), float("inf")])
def test_block_density_bad_value(d):
    with pytest.raises(InvalidArgumentError):
        Graph([2, 3, 4], 0.5, block_density={(0, 1): d})


# ---------------------------------------------------------------------------------------------
# determinism and initial bookkeeping


@given(
    sizes=sizes_st,
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**63 - 1),
    distribution=st.sampled_from(["uniform", "erk"]),
)
def test_same_seed_same_graph(sizes, density, seed, distribution):
    g = Graph(sizes, density, seed=seed, distribution=distribution)
    h = Graph(sizes, density, seed=seed, distribution=distribution)
    assert g == h and not (g != h)
    for a, b in g.blocks:
        assert np.array_equal(g.to_dense(a, b), h.to_dense(a, b))


@pytest.mark.parametrize("distribution", ["uniform", "erk"])
def test_different_seeds_differ(distribution):
    graphs = [Graph([20, 20, 20], 0.5, seed=s, distribution=distribution) for s in range(5)]
    masks = [g.to_dense(0, 1).tobytes() + g.to_dense(1, 2).tobytes() for g in graphs]
    assert len(set(masks)) == 5
    for i in range(5):
        for j in range(i + 1, 5):
            assert graphs[i] != graphs[j]


@given(sizes=sizes_st, density=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_initial_bookkeeping(sizes, density, seed):
    g = Graph(sizes, density, seed=seed)
    n = sum(sizes)
    assert g.num_neurons == n and g.num_ids == n and g.step == 0
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for layer, s in enumerate(sizes):
        assert g.ids(layer).tolist() == list(range(offsets[layer], offsets[layer + 1]))
        assert g.births(layer).tolist() == [0] * s
        assert g.ages(layer).tolist() == [0] * s
        assert g.generations(layer).tolist() == [0] * s
        st_ = g.stats(layer)
        assert set(st_) == STAT_KEYS
        for k, v in st_.items():
            assert len(v) == s and not np.any(v), k
    for a, b in g.blocks:
        assert not g.edge_births(a, b).any()
        assert not g.edge_frozen(a, b).any()
        assert len(g.edge_births(a, b)) == g.block_nnz(a, b)
    ls, ss = g.locate(np.arange(n))
    assert ls.tolist() == np.repeat(np.arange(len(sizes)), sizes).tolist()
    assert ss.tolist() == np.concatenate([np.arange(s) for s in sizes]).tolist()
    lin = g.lineage()
    assert set(lin) == LINEAGE_KEYS
    assert lin["id"].tolist() == list(range(n))
    assert lin["layer"].tolist() == ls.tolist() and lin["slot"].tolist() == ss.tolist()
    for k in ("birth_step", "generation"):
        assert lin[k].tolist() == [0] * n
    for k in ("death_step", "parent_a", "parent_b"):
        assert lin[k].tolist() == [-1] * n
    assert [str(c) for c in lin["cause"]] == ["alive"] * n
    assert g.nonfinite_counts == [0] * len(sizes)
    g.validate()


# ---------------------------------------------------------------------------------------------
# from_blocks


@st.composite
def block_specs(draw):
    L = draw(st.integers(2, 4))
    sizes = draw(st.lists(st.integers(1, 7), min_size=L, max_size=L))
    pairs = [(a, b) for a in range(L) for b in range(a + 1, L)]
    keys = draw(st.lists(st.sampled_from(pairs), unique=True))
    masks = {}
    for a, b in keys:
        bits = draw(st.lists(st.booleans(), min_size=sizes[a] * sizes[b], max_size=sizes[a] * sizes[b]))
        masks[(a, b)] = np.array(bits, dtype=bool).reshape(sizes[b], sizes[a])
    forms = {k: draw(st.sampled_from(FORMS)) for k in keys}
    return sizes, masks, forms


def _tuple_form(mask, shuffle_seed=None, dtype=np.int64):
    m = sp.csr_array(mask)
    indptr, indices = m.indptr.astype(dtype), m.indices.astype(dtype)
    if shuffle_seed is not None:  # shuffle the columns within each row
        rng = np.random.default_rng(shuffle_seed)
        for r in range(len(indptr) - 1):
            seg = indices[indptr[r] : indptr[r + 1]]
            rng.shuffle(seg)
    return indptr, indices


FORMS = ("mask", "tuple", "tuple_list", "tuple_unsorted", "csr_array", "csr_matrix", "csc_array", "coo_array", "unsorted_csr")


def to_form(mask, form):
    if form == "mask":
        return mask
    if form == "tuple":
        return _tuple_form(mask)
    if form == "tuple_list":
        ip, ix = _tuple_form(mask, dtype=np.int32)
        return (ip.tolist(), ix.tolist())
    if form == "tuple_unsorted":
        return _tuple_form(mask, shuffle_seed=1)
    if form == "csr_array":
        return sp.csr_array(mask)
    if form == "csr_matrix":
        return sp.csr_matrix(mask)
    if form == "csc_array":
        return sp.csc_array(mask)
    if form == "coo_array":
        return sp.coo_array(mask)
    if form == "unsorted_csr":
        ip, ix = _tuple_form(mask, shuffle_seed=2)
        return sp.csr_array((np.ones(len(ix), dtype=bool), ix, ip), shape=mask.shape)
    raise AssertionError(form)


@given(spec=block_specs(), seed=st.integers(0, 100))
def test_from_blocks_matches_masks_and_queries_agree(spec, seed):
    sizes, masks, forms = spec
    g = Graph.from_blocks(sizes, {k: to_form(m, forms[k]) for k, m in masks.items()}, seed=seed)
    g.validate()
    assert g.layer_sizes == sizes
    assert g.blocks == sorted(masks)
    L = len(sizes)
    for a in range(L):
        for b in range(L):
            assert g.has_block(a, b) == ((a, b) in masks)
    caps = 0
    for (a, b), mask in masks.items():
        R, C = sizes[b], sizes[a]
        indptr, indices = g.csr(a, b)
        assert indptr.dtype == np.int64 and indices.dtype == np.int64
        ref = sp.csr_array(mask)
        ref.sort_indices()
        assert np.array_equal(indptr, ref.indptr) and np.array_equal(indices, ref.indices)
        s = g.to_scipy(a, b)
        assert isinstance(s, sp.csr_array)
        assert s.shape == (R, C) and s.dtype == np.bool_
        assert s.data.all() and len(s.data) == len(indices)
        assert np.array_equal(s.indptr, indptr) and np.array_equal(s.indices, indices)
        dense = g.to_dense(a, b)
        assert dense.dtype == np.bool_ and dense.shape == (R, C)
        assert np.array_equal(dense, mask)
        assert np.array_equal(s.toarray(), mask)
        assert g.block_nnz(a, b) == mask.sum()
        assert g.density(a, b) == pytest.approx(mask.sum() / (R * C), rel=1e-12)
        assert len(g.edge_births(a, b)) == len(indices) and not g.edge_births(a, b).any()
        assert g.edge_frozen(a, b).dtype == np.bool_ and not g.edge_frozen(a, b).any()
        rr, cc = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
        he = g.has_edges(a, b, rr.ravel(), cc.ravel())
        assert he.dtype == np.bool_ and np.array_equal(he, mask.ravel())
        caps += R * C
    nnz = sum(int(m.sum()) for m in masks.values())
    assert g.nnz == nnz
    assert g.density() == (pytest.approx(nnz / caps, rel=1e-12) if caps else 0.0)
    for layer in range(L):
        fin = sum((m.sum(axis=1) for (a, b), m in masks.items() if b == layer), np.zeros(sizes[layer], int))
        fout = sum((m.sum(axis=0) for (a, b), m in masks.items() if a == layer), np.zeros(sizes[layer], int))
        assert g.fan_in(layer).dtype == np.int64 and g.fan_out(layer).dtype == np.int64
        assert np.array_equal(g.fan_in(layer), fin)
        assert np.array_equal(g.fan_out(layer), fout)
    assert g.num_ids == sum(sizes) and g.ids(L - 1).tolist() == list(range(sum(sizes) - sizes[-1], sum(sizes)))


def test_from_blocks_explicit_zeros_are_edges():
    m = sp.csr_array((np.array([1, 0, 0]), np.array([0, 2, 1]), np.array([0, 2, 2, 3])), shape=(3, 3))
    assert m.nnz == 3 and (m.data == 0).sum() == 2
    g = Graph.from_blocks([3, 3], {(0, 1): m})
    assert g.nnz == 3
    expected = np.zeros((3, 3), dtype=bool)
    expected[[0, 0, 2], [0, 2, 1]] = True
    assert np.array_equal(g.to_dense(0, 1), expected)
    g2 = Graph.from_blocks([3, 3], {(0, 1): sp.coo_matrix((np.zeros(2), ([1, 2], [2, 0])), shape=(3, 3))})
    assert g2.nnz == 2 and g2.to_dense(0, 1)[1, 2] and g2.to_dense(0, 1)[2, 0]


def test_from_blocks_unsorted_columns_are_sorted():
    indptr = np.array([0, 3, 3, 5])
    indices = np.array([4, 0, 2, 3, 1])
    g = Graph.from_blocks([5, 3], {(0, 1): (indptr, indices)})
    ip, ix = g.csr(0, 1)
    assert ip.tolist() == [0, 3, 3, 5]
    assert ix.tolist() == [0, 2, 4, 1, 3]
    assert g.edge_births(0, 1).tolist() == [0] * 5
    g.validate()


def test_from_blocks_absent_adjacent_and_skip_blocks():
    g = Graph.from_blocks([2, 3, 4], {(0, 2): np.ones((4, 2), dtype=bool)})
    assert g.blocks == [(0, 2)]
    assert not g.has_block(0, 1) and not g.has_block(1, 2)
    assert g.fan_in(2).tolist() == [2, 2, 2, 2]
    assert g.fan_out(0).tolist() == [4, 4]
    assert g.fan_in(1).tolist() == [0, 0, 0] and g.fan_out(1).tolist() == [0, 0, 0]
    assert g.density() == 1.0
    e = Graph.from_blocks([2, 3], {})
    assert e.blocks == [] and e.nnz == 0 and e.density() == 0.0


def test_from_blocks_seed_and_stats_config_are_accepted():
    g = Graph.from_blocks([2, 2], {(0, 1): np.eye(2, dtype=bool)}, seed=7, stats_config={"decay": 0.5})
    assert g.stats_config["decay"] == 0.5
    assert g == Graph.from_blocks([2, 2], {(0, 1): np.eye(2, dtype=bool)}, seed=7, stats_config={"decay": 0.5})


@pytest.mark.parametrize(
    "block",
    [
        (np.array([0, 2, 3]), np.array([1, 1, 0])),
        (np.array([0, 1, 3]), np.array([2, 0, 0])),
        sp.csr_array((np.ones(3, dtype=bool), np.array([0, 0, 1]), np.array([0, 2, 3])), shape=(2, 3)),
    ],
    ids=["tuple-row0", "tuple-row1", "csr"],
)
def test_from_blocks_duplicates_rejected(block):
    with pytest.raises(InvalidArgumentError):
        Graph.from_blocks([3, 2], {(0, 1): block})


@pytest.mark.parametrize(
    "block",
    [
        np.ones((3, 2), dtype=bool),  # transposed
        np.ones((2, 2), dtype=bool),
        sp.csr_array(np.ones((3, 2), dtype=bool)),
        sp.csr_array(np.ones((2, 4), dtype=bool)),
        (np.array([0, 1]), np.array([0])),  # indptr too short for 2 rows
        (np.array([0, 1, 1, 1]), np.array([0])),  # too long
        np.ones(6, dtype=bool),  # 1-D
    ],
)
def test_from_blocks_wrong_shape_rejected(block):
    with pytest.raises(InvalidArgumentError):
        Graph.from_blocks([3, 2], {(0, 1): block})


@pytest.mark.parametrize(
    "block",
    [
        (np.array([0, 1, 2]), np.array([0, 3])),  # column 3 >= 3
        (np.array([0, 1, 2]), np.array([0, -1])),  # negative column
        (np.array([0, 1, 3]), np.array([0, 1])),  # indptr[-1] != len(indices)
        (np.array([0, 2, 1]), np.array([0, 1])),  # indptr not monotone
        (np.array([1, 2, 2]), np.array([0, 1])),  # indptr[0] != 0
    ],
)
def test_from_blocks_inconsistent_csr_rejected(block):
    with pytest.raises(GrowcoreError) as ei:
        Graph.from_blocks([3, 2], {(0, 1): block})
    assert isinstance(ei.value, (InvalidArgumentError, OutOfRangeError))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float64, np.float32])
def test_from_blocks_non_bool_dense_is_type_error(dtype):
    with pytest.raises(TypeError):
        Graph.from_blocks([3, 2], {(0, 1): np.ones((2, 3), dtype=dtype)})


@pytest.mark.parametrize("key", [(1, 0), (1, 1), (0, 3), (3, 4), (-1, 1)])
def test_from_blocks_bad_keys(key):
    with pytest.raises(GrowcoreError) as ei:
        Graph.from_blocks([2, 2, 2], {key: np.zeros((2, 2), dtype=bool)})
    assert isinstance(ei.value, (ValueError, IndexError))


# ---------------------------------------------------------------------------------------------
# misc queries


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_has_edges_accepts_integer_dtypes(dtype):
    mask = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    g = Graph.from_blocks([3, 2], {(0, 1): mask})
    rows = np.array([0, 0, 1, 1, 0], dtype=dtype)
    cols = np.array([0, 1, 1, 2, 2], dtype=dtype)
    assert g.has_edges(0, 1, rows, cols).tolist() == mask[rows.astype(int), cols.astype(int)].tolist()
    assert g.has_edges(0, 1, rows.tolist(), tuple(cols.tolist())).tolist() == mask[rows.astype(int), cols.astype(int)].tolist()
    assert g.has_edges(0, 1, np.array([], dtype=dtype), np.array([], dtype=dtype)).shape == (0,)


def test_nbytes_is_compact_for_large_graphs():
    sizes = [1000, 1000, 500]
    g = Graph(sizes, 0.5, seed=0)
    rows = sum(sizes[b] + 1 for a, b in g.blocks)
    assert g.nnz == 750_000
    assert g.nbytes >= g.nnz  # at least one byte per edge is stored
    assert g.nbytes <= 9 * g.nnz + 64 * (rows + g.num_neurons) + 65_536, g.nbytes / g.nnz
    small = Graph(sizes, 0.1, seed=0)
    assert small.nbytes < g.nbytes


def test_density_of_one_block_and_of_empty_graph():
    g = Graph.from_blocks([4, 5, 3], {(0, 1): np.eye(5, 4, dtype=bool), (1, 2): np.zeros((3, 5), dtype=bool)})
    assert g.density(0, 1) == 4 / 20 and g.density(1, 2) == 0.0
    assert g.density() == 4 / 35
    g.remove_block(0, 1)
    g.remove_block(1, 2)
    assert g.density() == 0.0


def test_equality_and_hash():
    g = Graph([3, 2], 0.5)
    assert g == g.copy()
    assert (g == 5) is False and (g != "x") is True
    assert g != Graph([3, 3], 0.5)
    h = g.copy()
    h.advance()
    assert g != h  # the step is part of the state
    with pytest.raises(TypeError):
        hash(g)


def test_csr_to_scipy_to_dense_after_mutations_agree():
    rng = np.random.default_rng(5)
    g = Graph([6, 7, 5], 0.4, seed=2)
    g.add_block(0, 2)
    g.add_edges(0, 2, [0, 4, 2], [5, 0, 3])
    g.remove_neurons(1, [3, 0])
    g.add_neurons(1, 2)
    absent = np.argwhere(~g.to_dense(0, 1))
    pick = absent[rng.choice(len(absent), 4, replace=False)]
    g.add_edges(0, 1, pick[:, 0], pick[:, 1])
    for a, b in g.blocks:
        indptr, indices = g.csr(a, b)
        dense = np.zeros((g.layer_sizes[b], g.layer_sizes[a]), dtype=bool)
        dense[csr_rows(indptr), indices] = True
        assert np.array_equal(dense, g.to_dense(a, b))
        assert np.array_equal(g.to_scipy(a, b).toarray(), dense)
        assert g.block_nnz(a, b) == dense.sum()


class _Blocks(Mapping):  # type: ignore[type-arg]
    """A read-only mapping that is not a dict."""

    def __init__(self, items: dict[Any, Any]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@pytest.mark.parametrize("wrap", [types.MappingProxyType, _Blocks], ids=["mappingproxy", "abc-mapping"])
def test_mapping_arguments_need_not_be_dicts(wrap: Any) -> None:
    as_dict = Graph([6, 4, 3], 0.5, seed=1, block_density={(0, 1): 0.25}, stats_config={"decay": 0.5})
    as_mapping = Graph([6, 4, 3], 0.5, seed=1, block_density=wrap({(0, 1): 0.25}), stats_config=wrap({"decay": 0.5}))
    assert as_mapping == as_dict
    blocks = {(0, 1): as_dict.to_dense(0, 1), (1, 2): as_dict.to_dense(1, 2)}
    assert Graph.from_blocks([6, 4, 3], wrap(blocks)) == Graph.from_blocks([6, 4, 3], blocks)
    weights = {(0, 1): np.linspace(1.0, 2.0, as_dict.block_nnz(0, 1))}
    np.testing.assert_array_equal(
        growcore.katz(as_dict, weights=wrap(weights)), growcore.katz(as_dict, weights=weights)
    )


@pytest.mark.parametrize("arg", ["block_density", "stats_config"])
def test_a_mapping_argument_that_is_not_a_mapping_is_named(arg: str) -> None:
    with pytest.raises(TypeError, match=rf"^{arg}: expected a mapping .*got list"):
        Graph([3, 2], 0.5, **{arg: [((0, 1), 0.5)]})
    with pytest.raises(TypeError, match=r"^blocks: expected a mapping .*got list"):
        Graph.from_blocks([3, 2], [((0, 1), np.ones((2, 3), bool))])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^weights: expected a mapping .*got list"):
        growcore.katz(Graph([3, 2], 1.0), weights=[np.ones(6)])  # type: ignore[arg-type]
