"""Inputs at the edges of the machine: memory that is not there, Python callbacks that re-enter
the graph while it is being read, threads comparing graphs, magnitudes near the float limits,
numpy scalars, aliased buffers and caller-owned matrices."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

import growcore
from growcore import Graph


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (a hang or an abort fails the test, not the session)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_a_request_for_more_memory_than_there_is_is_an_error_not_an_abort() -> None:
    done = run_python(
        """
        import resource
        import growcore
        # 4 GB of address space: reserving billions of neurons fails the way it would on any machine.
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        for make in (lambda: growcore.Graph([2, 2, 2]).add_neurons(1, 2**31), lambda: growcore.Graph([2**31, 1], 0.0)):
            try:
                make()
            except growcore.InvalidArgumentError as e:
                print("refused:", e)
        g = growcore.Graph([2, 2, 2])
        try:
            g.add_neurons(1, 2**31)
        except growcore.InvalidArgumentError:
            pass
        assert g.layer_sizes == [2, 2, 2] and g.num_ids == 6, "unchanged"
        g.validate()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 2
    assert "cannot allocate memory for 2147483648 more neurons" in done.stdout
    assert "layer_sizes: cannot allocate memory" in done.stdout


@pytest.mark.parametrize("case", ["stats option", "grow key"])
def test_python_callbacks_in_arguments_may_use_the_same_graph(case: str) -> None:
    # Reading an argument may run Python code (__float__, __index__); no lock may be held then.
    done = run_python(
        """
        import growcore
        g = growcore.Graph([3, 4, 4, 2], 1.0)
        class Number:
            def __float__(self):
                return 0.5 + 0 * g.step
        class Layer:
            def __index__(self):
                g.add_edges(0, 1, [], [])  # takes the write lock
                return 1
        case = %r
        if case == "stats option":
            g.set_stats_config(alpha=Number())
            assert g.stats_config["alpha"] == 0.5
        else:
            g.grow({Layer(): [0]}, {}, clone_budget=1)
        print("done")
        """
        % case,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr


def test_threads_comparing_two_graphs_both_ways_while_others_write_finish() -> None:
    done = run_python(
        """
        import threading
        import growcore
        a, b = growcore.Graph([200, 200], 0.5, seed=1), growcore.Graph([200, 200], 0.5, seed=2)
        stop = threading.Event()
        def compare(x, y):
            while not stop.is_set():
                x == y
        def write(g):
            while not stop.is_set():
                g.advance(1)
        threads = [threading.Thread(target=compare, args=(a, b)), threading.Thread(target=compare, args=(b, a)),
                   threading.Thread(target=write, args=(a,)), threading.Thread(target=write, args=(b,))]
        for t in threads:
            t.start()
        stop.wait(3)
        stop.set()
        for t in threads:
            t.join()
        print("done")
        """,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr


def test_activations_that_alias_the_sums_are_refused() -> None:
    sums = np.zeros((4, 3))
    x = sums.view(np.float32).reshape(8, 3, 1)
    with pytest.raises(growcore.InvalidArgumentError, match="x: shares memory"):
        growcore.add_activation_sums(x, sums, 0.0, 1.0)
    assert not sums.any()


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e160])
def test_normalisations_hold_at_any_magnitude(scale: float) -> None:
    # Katz: alpha or weights so large that the squares overflow still give a unit vector.
    g = Graph([1, 1], 1.0)
    x = growcore.katz(g, alpha=scale)
    assert np.isclose(np.linalg.norm(x), 1.0) and np.isclose(x[1] / x[0], 1.0 + scale)
    # Cosine similarity of profiles and z-scores do not depend on the scale.
    profiles = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]) * scale
    np.testing.assert_allclose(growcore.diversity(profiles), [0.0, 0.0, 1 - np.sqrt(0.5)], atol=1e-12)
    pairs = growcore.redundant_pairs(profiles, 0.99)
    assert list(zip(pairs["a"], pairs["b"])) == [(0, 1)]
    fitness = np.array([1.0, -1.0, 0.0, 0.0]) * scale
    g = Graph([2, 4, 2])
    np.testing.assert_allclose(g.normalized_fitness(1, fitness), [np.sqrt(2), -np.sqrt(2), 0.0, 0.0], rtol=1e-12)


def test_katz_of_a_scipy_matrix_leaves_the_callers_matrix_alone() -> None:
    # Not canonical: unsorted, with a duplicate (summed to weight 5).
    m = sp.csr_array((np.array([1.0, 2.0, 3.0]), np.array([2, 1, 1]), np.array([0, 3, 3, 3])), shape=(3, 3))
    data, indices = m.data.copy(), m.indices.copy()
    x = growcore.katz(m, alpha=0.5, normalized=False)
    assert np.array_equal(m.data, data) and np.array_equal(m.indices, indices)
    np.testing.assert_allclose(x, [1.0, 1.0 + 0.5 * 5, 1.0 + 0.5 * 1])
    with pytest.raises(TypeError, match="graph: expected real edge weights, got dtype complex128"):
        growcore.katz(sp.csr_array(np.array([[0, 2j], [0, 0]])))


def test_numpy_scalars_are_scalar_betas() -> None:
    g = Graph([3, 4, 2], 0.5, seed=1)
    expected = growcore.katz(g, 0.1, 2.0, normalized=False)
    for beta in (np.float32(2), np.int64(2), np.array(2.0)):
        np.testing.assert_array_equal(growcore.katz(g, 0.1, beta, normalized=False), expected)


def test_indices_beyond_int64_name_their_position_and_value() -> None:
    g = Graph([4, 4], 0.0)
    rows = np.array([1, 2**63, 2**64 - 1], dtype=np.uint64)
    with pytest.raises(growcore.OutOfRangeError, match=r"rows\[1\]: 9223372036854775808 is out of range"):
        g.add_edges(0, 1, rows, [0, 1, 2])
    with pytest.raises(growcore.OutOfRangeError, match=r"layer: 1180591620717411303424 is out of range"):
        g.fan_in(2**70)
    assert g.nnz == 0


def test_a_radius_past_the_last_layer_reaches_every_layer_ahead() -> None:
    g = Graph([3, 4, 4, 4, 2], 1.0)
    routes = [
        g.copy().grow({1: [0]}, {2: [0, 1], 3: [2]}, clone_budget=0, radius=r, routes_per_source=3)["routes"]
        for r in (100, 2**32 - 1)
    ]
    assert len(routes[0]["dst_slot"]) > 0
    for key in routes[0]:
        np.testing.assert_array_equal(routes[0][key], routes[1][key])


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda g: g.grow({}, {}, radius=2**70), "radius"),
        (lambda g: g.grow({}, {}, clone_budget=-1), "clone_budget"),
        (lambda g: g.extrema(1, "relu", min_observations=2**70), "min_observations"),
        (lambda g: growcore.Senescence().update(g, 1, flat_steps=2**70), "flat_steps"),
        (lambda g: growcore.katz(sp.csr_array(np.array([[0, 1.0], [1.0, 0]])), max_iter=-1), "max_iter"),
    ],
)
def test_integers_beyond_64_bits_or_negative_name_their_argument(call, arg: str) -> None:
    g = Graph([3, 4, 4, 2], 1.0)
    before = g.copy()
    with pytest.raises(growcore.InvalidArgumentError, match=rf"^{arg}: must be an integer in \[0, 2\*\*3[12]\)"):
        call(g)
    assert g == before
