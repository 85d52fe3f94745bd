"""Graph.prune_and_grow from Python: dense, listed and random scores against a numpy reference,
and the error contract (argument named, nothing changed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import growcore


def same_plan(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def reference(mask: np.ndarray, w: np.ndarray, s: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices dropped and grown, by definition: smallest |w| present, largest |s| absent,
    ties to the smaller (row, col)."""
    flat = np.arange(mask.size)
    present, absent = flat[mask.ravel()], flat[~mask.ravel()]
    drops = present[np.lexsort((present, np.abs(w.ravel()[present])))][:count]
    grows = absent[np.lexsort((absent, -np.abs(s.ravel()[absent])))][: len(drops)]
    return np.sort(drops[: len(grows)]), np.sort(grows)


@given(
    rows=st.integers(1, 7),
    cols=st.integers(1, 7),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    count=st.integers(0, 60),
)
def test_dense_and_listed_scores_match_the_reference(rows, cols, density, seed, count) -> None:
    g = growcore.Graph([cols, rows], density, seed=seed)
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, (rows, cols)).astype(np.float32)  # many ties
    s = rng.integers(-3, 4, (rows, cols)).astype(np.float64)  # converted to float32
    mask = g.to_dense(0, 1)
    want_drop, want_grow = reference(mask, w, s, count)

    listed = g.copy()
    r, c = np.nonzero(np.ones_like(mask))
    plan_listed = listed.prune_and_grow(0, 1, (r, c, w[r, c]), (r, c, s[r, c]), count)

    plan = g.prune_and_grow(0, 1, w, s, count)
    assert np.array_equal(plan["drop_rows"] * cols + plan["drop_cols"], want_drop)
    assert np.array_equal(plan["grow_rows"] * cols + plan["grow_cols"], want_grow)
    for key in plan:
        assert plan[key].dtype == np.int64
        assert np.array_equal(plan[key], plan_listed[key])
    assert listed == g
    after = mask.copy()
    after.ravel()[want_drop] = False
    after.ravel()[want_grow] = True
    assert np.array_equal(g.to_dense(0, 1), after)


def test_frozen_edges_are_never_dropped_and_counts_stay_equal() -> None:
    g = growcore.Graph([6, 5], 0.5, seed=1)
    r, c = g.csr(0, 1)
    rows = np.repeat(np.arange(5), np.diff(r))
    g.freeze_edges(0, 1, rows[:4], c[:4])
    w = np.zeros((5, 6), np.float32)  # every edge ties; frozen ones must still stay
    plan = g.prune_and_grow(0, 1, w, "random", 1000)
    dropped = set(zip(plan["drop_rows"], plan["drop_cols"]))
    assert not dropped & set(zip(rows[:4], c[:4]))
    assert len(plan["drop_rows"]) == len(plan["grow_rows"]) == min(g.nnz - 4, 30 - g.nnz)


def test_random_growth_is_seeded_and_avoids_just_dropped_edges() -> None:
    def run() -> dict[str, np.ndarray]:
        g = growcore.Graph([50, 40], 0.2, seed=9)
        return g.prune_and_grow(0, 1, np.ones((40, 50), np.float32), "random", 100)

    a, b = run(), run()
    for key in a:
        assert np.array_equal(a[key], b[key])
    dropped = set(zip(a["drop_rows"], a["drop_cols"]))
    assert not dropped & set(zip(a["grow_rows"], a["grow_cols"]))


def test_regrow_dropped_lets_top_scores_come_back() -> None:
    g = growcore.Graph([4, 1], 1.0, seed=0)  # one full row: only dropped edges can be grown
    w = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    assert len(g.prune_and_grow(0, 1, w, w, 2)["grow_rows"]) == 0
    g.advance(3)
    plan = g.prune_and_grow(0, 1, w, w, 2, regrow_dropped=True)
    assert plan["drop_cols"].tolist() == [0, 1] and plan["grow_cols"].tolist() == [0, 1]
    assert g.nnz == 4
    assert g.edge_births(0, 1).tolist() == [3, 3, 0, 0]


def test_noncontiguous_and_other_dtypes_are_read() -> None:
    g = growcore.Graph([6, 5], 0.5, seed=2)
    w = np.arange(30, dtype=np.float64).reshape(6, 5).T  # Fortran order, float64
    h = g.copy()
    plan = g.prune_and_grow(0, 1, w, "random", 3)
    assert same_plan(plan, h.prune_and_grow(0, 1, np.ascontiguousarray(w, np.float32), "random", 3))
    assert len(plan["drop_rows"]) == 3


@pytest.mark.parametrize(
    ("drop", "grow", "count", "error", "words"),
    [
        (np.ones((5, 5)), "random", 1, growcore.InvalidArgumentError, ["drop_scores", "(5, 6)", "(5, 5)"]),
        (np.ones((5, 6)), "bogus", 1, growcore.InvalidArgumentError, ["grow_scores", "bogus"]),
        ("random", "random", 1, growcore.InvalidArgumentError, ["drop_scores", "random"]),
        (np.ones((5, 6)), np.full((5, 6), np.nan), 1, growcore.NonFiniteError, ["grow_scores"]),
        (np.ones((5, 6)), ([0], [0]), 1, growcore.InvalidArgumentError, ["grow_scores", "2 items"]),
        (np.ones((5, 6)), ([0], [9], [1.0]), 1, growcore.OutOfRangeError, ["grow_scores.cols[0]", "9"]),
        (np.ones((5, 6)), ([0, 0], [1, 1], [1.0, 2.0]), 1, growcore.InvalidArgumentError, ["more than once"]),
        (np.ones((5, 6)), "random", -1, growcore.InvalidArgumentError, ["count", "-1"]),
        (np.ones((5, 6), dtype=complex), "random", 1, TypeError, ["drop_scores", "complex"]),
    ],
)
def test_bad_arguments_are_named_and_change_nothing(drop, grow, count, error, words) -> None:
    g = growcore.Graph([6, 5], 0.5, seed=4)
    before = g.copy()
    with pytest.raises(error) as info:
        g.prune_and_grow(0, 1, drop, grow, count)
    for word in words:
        assert word in str(info.value)
    assert g == before
    # The RNG did not move either: the same random step gives the same plan.
    w = np.ones((5, 6), np.float32)
    assert same_plan(g.prune_and_grow(0, 1, w, "random", 3), before.prune_and_grow(0, 1, w, "random", 3))
