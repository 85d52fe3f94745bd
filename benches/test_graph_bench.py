"""growcore's batch edge mutation against scipy.sparse doing the same work.

The work: on a ~1M-edge block (1000 x 2000 at 50%), drop 10% of the edges and grow as many new
ones (growcore: one `rewire` call, the prune-and-regrow primitive). growcore also validates the
batch (edges present / absent, frozen) and keeps per-edge birth steps and frozen flags; scipy only
keeps the structure.

Two growcore variants: "fresh" rewires a fresh copy of the graph each round (its memory was never
written by a rewire, so the allocator hands out pages the kernel must fault in); "steady" rewires
the same graph round after round, alternately one way and back, as a training loop does.

    python -m pytest benches --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import growcore

ROWS, COLS, DENSITY, CHURN = 2000, 1000, 0.5, 0.1
# Enough rounds that a few slow ones (the VM is noisy) do not move the medians.
ROUNDS = 100


@pytest.fixture(scope="module")
def workload() -> dict:
    g = growcore.Graph([COLS, ROWS], DENSITY, seed=3)
    mask = g.to_dense(0, 1)
    rng = np.random.default_rng(0)
    present_r, present_c = np.nonzero(mask)
    absent_r, absent_c = np.nonzero(~mask)
    k = int(CHURN * g.nnz)
    drop = rng.choice(len(present_r), k, replace=False)
    grow = rng.choice(len(absent_r), k, replace=False)
    return {
        "graph": g,
        "scipy": g.to_scipy(0, 1).astype(np.int8),
        "drop": (present_r[drop], present_c[drop]),
        "grow": (absent_r[grow], absent_c[grow]),
    }


def test_churn_growcore(benchmark, workload) -> None:
    benchmark.group = "drop+grow 10% of 1M edges"
    benchmark.extra_info["impl"] = "growcore"
    (dr, dc), (gr, gc) = workload["drop"], workload["grow"]

    def run(g: growcore.Graph) -> growcore.Graph:
        g.rewire(0, 1, dr, dc, gr, gc)
        return g

    result = benchmark.pedantic(run, setup=lambda: ((workload["graph"].copy(),), {}), rounds=ROUNDS)
    assert result.nnz == workload["graph"].nnz


def test_churn_growcore_steady(benchmark, workload) -> None:
    benchmark.group = "drop+grow 10% of 1M edges, same graph every round"
    benchmark.extra_info["impl"] = "growcore"
    (dr, dc), (gr, gc) = workload["drop"], workload["grow"]
    g = workload["graph"].copy()
    rounds = iter(range(1_000_000))

    def run() -> None:
        if next(rounds) % 2 == 0:
            g.rewire(0, 1, dr, dc, gr, gc)
        else:
            g.rewire(0, 1, gr, gc, dr, dc)

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=2)
    assert g.nnz == workload["graph"].nnz


@pytest.mark.parametrize(
    "group", ["drop+grow 10% of 1M edges", "drop+grow 10% of 1M edges, same graph every round"]
)
def test_churn_scipy(benchmark, workload, group: str) -> None:
    benchmark.group = group
    benchmark.extra_info["impl"] = "scipy.sparse"
    (dr, dc), (gr, gc) = workload["drop"], workload["grow"]
    a = workload["scipy"]
    shape = a.shape

    def run() -> sp.csr_array:
        drop = sp.csr_array((np.ones(len(dr), np.int8), (dr, dc)), shape=shape)
        grow = sp.csr_array((np.ones(len(gr), np.int8), (gr, gc)), shape=shape)
        out = a - drop + grow
        out.eliminate_zeros()
        out.sort_indices()
        return out

    result = benchmark.pedantic(run, rounds=ROUNDS)
    assert result.nnz == a.nnz
