"""Every bad input of the contract: specific class, builtin base, message, and no state change."""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest

import growcore
import growcore.errors
from _model import csr_rows, exception_classes, num_pattern, raises_unchanged, snapshot, assert_unchanged
from growcore import (
    BlockError,
    EdgeError,
    FrozenEdgeError,
    Graph,
    GrowcoreError,
    InvalidArgumentError,
    NonFiniteError,
    OutOfRangeError,
    StateDictError,
)

SIZES = [13, 17, 11, 7]


def rich_graph():
    """A graph with a skip block, frozen edges, dead ids (removed and reset), statistics and step > 0."""
    g = Graph(SIZES, 0.3, seed=3)
    g.add_block(0, 2)
    g.add_edges(0, 2, [0, 5], [1, 12])
    indptr, indices = g.csr(0, 1)
    rows = csr_rows(indptr)
    g.freeze_edges(0, 1, rows[:2], indices[:2])
    g.advance(4)
    g.add_neurons(2, 2, [[0, 14], []])
    g.remove_neurons(3, [6])
    g.reset_neurons(1, [3])
    rng = np.random.default_rng(0)
    mean = rng.normal(size=17)
    g.observe(1, mean=mean, sq_mean=mean**2 + 1, frac_high=np.full(17, 0.5), frac_low=np.full(17, 0.25), grad_norm=np.ones(17))
    g.observe(1, grad_norm=np.full(17, np.nan))
    g.validate()
    return g


@pytest.fixture
def g():
    return rich_graph()


def edges(g, a, b, frozen):
    indptr, indices = g.csr(a, b)
    rows = csr_rows(indptr)
    sel = g.edge_frozen(a, b) == frozen
    return list(zip(rows[sel].tolist(), indices[sel].tolist()))


def absent_edges(g, a, b):
    return [tuple(x) for x in np.argwhere(~g.to_dense(a, b)).tolist()]


def dead_ids(g):
    lin = g.lineage()
    return lin["id"][lin["slot"] == -1].tolist()


def word(w):
    return rf"\b{w}\b"


def block_pat(a, b):
    return rf"\b{a}\b\D+\b{b}\b"


# ---------------------------------------------------------------------------------------------
# the hierarchy


def test_exception_hierarchy():
    cls = exception_classes()
    assert issubclass(cls["GrowcoreError"], Exception)
    for name, base in [
        ("InvalidArgumentError", ValueError),
        ("OutOfRangeError", IndexError),
        ("BlockError", ValueError),
        ("EdgeError", ValueError),
        ("FrozenEdgeError", ValueError),
        ("NonFiniteError", ValueError),
        ("StateDictError", ValueError),
    ]:
        assert issubclass(cls[name], cls["GrowcoreError"]), name
        assert issubclass(cls[name], base), name
        assert getattr(growcore.errors, name) is cls[name]
    assert issubclass(FrozenEdgeError, EdgeError)
    assert not issubclass(OutOfRangeError, ValueError)
    assert not issubclass(EdgeError, FrozenEdgeError)
    assert growcore.Graph is growcore._core.Graph
    assert growcore.errors.GrowcoreError is GrowcoreError


# ---------------------------------------------------------------------------------------------
# construction


@pytest.mark.parametrize("sizes, bad", [([5], None), ([], None), ([3, 0], 0), ([3, 4, 0, 2], 0), ([3, -2], -2)])
def test_bad_layer_sizes(sizes, bad):
    with pytest.raises(InvalidArgumentError) as ei:
        Graph(sizes)
    assert "layer_sizes" in str(ei.value)
    if bad is not None:
        assert re.search(num_pattern(bad), str(ei.value))


@pytest.mark.parametrize("density", [1.5, -0.1, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("distribution", ["uniform", "erk"])
def test_bad_density(density, distribution):
    with pytest.raises(InvalidArgumentError) as ei:
        Graph([3, 4], density, distribution=distribution)
    assert isinstance(ei.value, ValueError)
    assert "density" in str(ei.value)
    if density == density:
        assert re.search(num_pattern(density), str(ei.value))


def test_bad_distribution():
    with pytest.raises(InvalidArgumentError) as ei:
        Graph([3, 4], 0.5, distribution="gaussian")
    assert "distribution" in str(ei.value) and "gaussian" in str(ei.value)


def test_bad_from_blocks_type_errors():
    with pytest.raises(TypeError):
        Graph.from_blocks([2, 2], {(0, 1): np.ones((2, 2), dtype=np.float64)})
    with pytest.raises(TypeError):
        Graph.from_bytes("not bytes")


# ---------------------------------------------------------------------------------------------
# blocks


def test_add_existing_block(g):
    raises_unchanged(g, lambda: g.add_block(0, 1), BlockError, builtin=ValueError, patterns=(block_pat(0, 1),))
    raises_unchanged(g, lambda: g.add_block(0, 2), BlockError, builtin=ValueError, patterns=(block_pat(0, 2),))


@pytest.mark.parametrize("a, b", [(2, 1), (1, 1), (3, 0)])
def test_add_block_not_forward(g, a, b):
    raises_unchanged(g, lambda: g.add_block(a, b), InvalidArgumentError, builtin=ValueError)


@pytest.mark.parametrize("a, b, bad", [(0, 4, 4), (2, 9, 9), (-1, 2, -1)])
def test_add_block_layer_out_of_range(g, a, b, bad):
    raises_unchanged(g, lambda: g.add_block(a, b), OutOfRangeError, builtin=IndexError, patterns=(num_pattern(bad),))


@pytest.mark.parametrize("a, b", [(1, 3), (0, 3)])
def test_remove_missing_block(g, a, b):
    raises_unchanged(g, lambda: g.remove_block(a, b), BlockError, builtin=ValueError, patterns=(block_pat(a, b),))


def test_remove_block_with_frozen_edges(g):
    err = raises_unchanged(g, lambda: g.remove_block(0, 1), FrozenEdgeError, builtin=ValueError)
    assert isinstance(err, EdgeError)


ABSENT_BLOCK_CALLS = {
    "csr": lambda g: g.csr(1, 3),
    "to_scipy": lambda g: g.to_scipy(1, 3),
    "to_dense": lambda g: g.to_dense(1, 3),
    "edge_births": lambda g: g.edge_births(1, 3),
    "edge_frozen": lambda g: g.edge_frozen(1, 3),
    "block_nnz": lambda g: g.block_nnz(1, 3),
    "density": lambda g: g.density(1, 3),
    "has_edges": lambda g: g.has_edges(1, 3, [0], [0]),
    "add_edges": lambda g: g.add_edges(1, 3, [0], [0]),
    "remove_edges": lambda g: g.remove_edges(1, 3, [0], [0]),
    "freeze_edges": lambda g: g.freeze_edges(1, 3, [0], [0]),
    "unfreeze_edges": lambda g: g.unfreeze_edges(1, 3, [0], [0]),
    "remove_block": lambda g: g.remove_block(1, 3),
}


@pytest.mark.parametrize("name", sorted(ABSENT_BLOCK_CALLS))
def test_absent_block(g, name):
    assert not g.has_block(1, 3)
    raises_unchanged(g, lambda: ABSENT_BLOCK_CALLS[name](g), BlockError, builtin=ValueError, patterns=(block_pat(1, 3),))


@pytest.mark.parametrize("name", sorted(ABSENT_BLOCK_CALLS))
def test_block_with_layer_out_of_range(g, name):
    call = ABSENT_BLOCK_CALLS[name]
    fn = lambda: call(_Shift(g))  # noqa: E731
    err = raises_unchanged(g, fn, (BlockError, OutOfRangeError))
    assert isinstance(err, (ValueError, IndexError))


class _Shift:
    """Proxy that replaces block (1, 3) by (1, 9) (layer 9 does not exist) in any call."""

    def __init__(self, g):
        self._g = g

    def __getattr__(self, name):
        fn = getattr(self._g, name)

        def call(a, b, *rest):
            return fn(a, 9 if b == 3 else b, *rest)

        return call


# ---------------------------------------------------------------------------------------------
# edges


EDGE_OPS = ("add_edges", "remove_edges", "freeze_edges", "unfreeze_edges")


@pytest.mark.parametrize("op", EDGE_OPS)
@pytest.mark.parametrize(
    "arg, bad",
    [("rows", 17), ("rows", -1), ("rows", 40), ("cols", 13), ("cols", -5)],
)
def test_edge_index_out_of_range(g, op, arg, bad):
    rows, cols = [0, 1], [0, 1]
    (rows if arg == "rows" else cols)[1] = bad
    raises_unchanged(
        g,
        lambda: getattr(g, op)(0, 1, rows, cols),
        OutOfRangeError,
        builtin=IndexError,
        patterns=(word(arg), num_pattern(bad)),
    )


@pytest.mark.parametrize("arg", ["drop_rows", "drop_cols", "grow_rows", "grow_cols"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_large_rewire_index_out_of_range(arg, contiguous):
    """Batches large enough to be converted in parallel name the right argument and position."""
    g = Graph([300, 400], 0.5, seed=1)
    mask = g.to_dense(0, 1)
    present, absent = np.nonzero(mask), np.nonzero(~mask)
    k = 40_000  # four lists of 40k: above the bindings' parallel threshold
    lists = {
        "drop_rows": present[0][:k].copy(), "drop_cols": present[1][:k].copy(),
        "grow_rows": absent[0][:k].copy(), "grow_cols": absent[1][:k].copy(),
    }
    bad_at, bad = 31_234, (400 if arg.endswith("rows") else -3)
    lists[arg][bad_at] = bad
    if not contiguous:  # a strided view of the same values
        lists = {name: np.repeat(v, 2)[::2] for name, v in lists.items()}
        assert not lists[arg].flags.c_contiguous
    raises_unchanged(
        g,
        lambda: g.rewire(0, 1, lists["drop_rows"], lists["drop_cols"], lists["grow_rows"], lists["grow_cols"]),
        OutOfRangeError,
        builtin=IndexError,
        words=(f"{arg}[{bad_at}]",),
        patterns=(num_pattern(bad),),
    )


@pytest.mark.parametrize("op", EDGE_OPS + ("has_edges",))
def test_edge_lengths_differ(g, op):
    raises_unchanged(
        g,
        lambda: getattr(g, op)(0, 1, [0, 1, 2], [0, 1]),
        InvalidArgumentError,
        builtin=ValueError,
        patterns=(r"\brows\b|\bcols\b",),
    )


@pytest.mark.parametrize("op", EDGE_OPS + ("has_edges",))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arg", ["rows", "cols"])
def test_edge_float_indices_are_type_errors(g, op, dtype, arg):
    rows, cols = np.array([0, 1]), np.array([0, 1])
    if arg == "rows":
        rows = rows.astype(dtype)
    else:
        cols = cols.astype(dtype)
    raises_unchanged(g, lambda: getattr(g, op)(0, 1, rows, cols), TypeError, words=(arg,))


def test_has_edges_out_of_range(g):
    raises_unchanged(g, lambda: g.has_edges(0, 1, [17], [0]), OutOfRangeError, builtin=IndexError, patterns=(word("rows"), num_pattern(17)))


def test_add_present_edge(g):
    (r, c) = edges(g, 0, 1, frozen=False)[3]
    (r2, c2) = absent_edges(g, 0, 1)[0]
    err = raises_unchanged(
        g,
        lambda: g.add_edges(0, 1, [r2, r], [c2, c]),
        EdgeError,
        builtin=ValueError,
        patterns=(word(r), word(c)),
    )
    assert not isinstance(err, FrozenEdgeError)


def test_add_repeated_in_batch(g):
    (r, c), (r2, c2) = absent_edges(g, 0, 1)[:2]
    err = raises_unchanged(g, lambda: g.add_edges(0, 1, [r, r2, r], [c, c2, c]), EdgeError, builtin=ValueError, patterns=(word(r), word(c)))
    assert not isinstance(err, FrozenEdgeError)


def test_remove_absent_edge(g):
    (r, c) = absent_edges(g, 1, 2)[2]
    (r2, c2) = edges(g, 1, 2, frozen=False)[0]
    err = raises_unchanged(g, lambda: g.remove_edges(1, 2, [r2, r], [c2, c]), EdgeError, builtin=ValueError, patterns=(word(r), word(c)))
    assert not isinstance(err, FrozenEdgeError)


def test_remove_repeated_in_batch(g):
    (r, c), (r2, c2) = edges(g, 1, 2, frozen=False)[:2]
    err = raises_unchanged(g, lambda: g.remove_edges(1, 2, [r, r2, r], [c, c2, c]), EdgeError, builtin=ValueError)
    assert not isinstance(err, FrozenEdgeError)


def test_remove_frozen_edge(g):
    (r, c) = edges(g, 0, 1, frozen=True)[1]
    (r2, c2) = edges(g, 0, 1, frozen=False)[5]
    raises_unchanged(g, lambda: g.remove_edges(0, 1, [r2, r], [c2, c]), FrozenEdgeError, builtin=ValueError, patterns=(word(r), word(c)))


@pytest.mark.parametrize("op", ["freeze_edges", "unfreeze_edges"])
def test_freeze_absent_edge(g, op):
    (r, c) = absent_edges(g, 0, 2)[7]
    (r2, c2) = edges(g, 0, 2, frozen=False)[0]
    err = raises_unchanged(g, lambda: getattr(g, op)(0, 2, [r2, r], [c2, c]), EdgeError, builtin=ValueError, patterns=(word(r), word(c)))
    assert not isinstance(err, FrozenEdgeError)


# ---------------------------------------------------------------------------------------------
# layers and neurons

LAYER_CALLS = {
    "ids": lambda g, l: g.ids(l),
    "births": lambda g, l: g.births(l),
    "ages": lambda g, l: g.ages(l),
    "generations": lambda g, l: g.generations(l),
    "fan_in": lambda g, l: g.fan_in(l),
    "fan_out": lambda g, l: g.fan_out(l),
    "stats": lambda g, l: g.stats(l),
    "fitness": lambda g, l: g.fitness(l),
    "add_neurons": lambda g, l: g.add_neurons(l, 1),
    "remove_neurons": lambda g, l: g.remove_neurons(l, [0]),
    "reset_neurons": lambda g, l: g.reset_neurons(l, [0]),
    "observe": lambda g, l: g.observe(l, grad_norm=[1.0]),
}


@pytest.mark.parametrize("name", sorted(LAYER_CALLS))
@pytest.mark.parametrize("layer", [4, 100, -1])
def test_layer_out_of_range(g, name, layer):
    raises_unchanged(
        g, lambda: LAYER_CALLS[name](g, layer), OutOfRangeError, builtin=IndexError, patterns=(word("layer"), num_pattern(layer))
    )


@pytest.mark.parametrize("name", sorted(LAYER_CALLS))
def test_layer_string_is_type_error(g, name):
    raises_unchanged(g, lambda: LAYER_CALLS[name](g, "1"), TypeError, words=("layer",))


def test_locate_errors(g):
    n = g.num_ids
    raises_unchanged(g, lambda: g.locate([0, n]), OutOfRangeError, builtin=IndexError, patterns=(word("ids"), num_pattern(n)))
    raises_unchanged(g, lambda: g.locate([-1]), OutOfRangeError, builtin=IndexError, patterns=(word("ids"), num_pattern(-1)))
    for dead in dead_ids(g):
        raises_unchanged(
            g, lambda: g.locate([0, dead]), InvalidArgumentError, builtin=ValueError, patterns=(word("ids"), num_pattern(dead))
        )
    raises_unchanged(g, lambda: g.locate(np.array([0.0, 1.0])), TypeError, words=("ids",))


def test_advance_negative(g):
    err = raises_unchanged(g, lambda: g.advance(-1), (GrowcoreError, ValueError, OverflowError))
    assert "steps" in str(err) or isinstance(err, OverflowError)


def test_add_neurons_bad_parents(g):
    n = g.num_ids
    dead = dead_ids(g)[0]
    raises_unchanged(g, lambda: g.add_neurons(1, 2, [[0]]), InvalidArgumentError, builtin=ValueError, words=("parents",))
    raises_unchanged(g, lambda: g.add_neurons(1, 1, [[0], [1]]), InvalidArgumentError, builtin=ValueError, words=("parents",))
    raises_unchanged(g, lambda: g.add_neurons(1, 1, [[0, 1, 2]]), InvalidArgumentError, builtin=ValueError, words=("parents",))
    raises_unchanged(
        g, lambda: g.add_neurons(1, 2, [[0], [dead, n]]), OutOfRangeError, builtin=IndexError, patterns=(word("parents"), num_pattern(n))
    )
    raises_unchanged(g, lambda: g.add_neurons(1, 1, [[-1]]), OutOfRangeError, builtin=IndexError, words=("parents",))
    # a parent that is created in the same call does not exist yet
    raises_unchanged(g, lambda: g.add_neurons(1, 2, [[], [n]]), OutOfRangeError, builtin=IndexError)


def test_add_neurons_dead_parent_is_fine(g):
    dead = dead_ids(g)[0]
    gen = int(g.lineage()["generation"][dead])
    new = g.add_neurons(0, 1, [[dead]])
    assert g.generations(0)[-1] == gen + 1
    assert g.lineage()["parent_a"][new[0]] == dead


def test_add_neurons_negative_count(g):
    raises_unchanged(g, lambda: g.add_neurons(1, -1), (GrowcoreError, ValueError, OverflowError))


@pytest.mark.parametrize("op", ["remove_neurons", "reset_neurons"])
def test_duplicate_slots(g, op):
    raises_unchanged(
        g, lambda: getattr(g, op)(2, [1, 4, 1]), InvalidArgumentError, builtin=ValueError, patterns=(word("slots"), num_pattern(1))
    )


@pytest.mark.parametrize("op", ["remove_neurons", "reset_neurons"])
@pytest.mark.parametrize("bad", [13, 50, -1])
def test_slots_out_of_range(g, op, bad):
    assert g.layer_sizes[2] == 13
    raises_unchanged(
        g, lambda: getattr(g, op)(2, [0, bad]), OutOfRangeError, builtin=IndexError, patterns=(word("slots"), num_pattern(bad))
    )


@pytest.mark.parametrize("op", ["remove_neurons", "reset_neurons"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_slots_are_type_errors(g, op, dtype):
    raises_unchanged(g, lambda: getattr(g, op)(2, np.array([0, 1], dtype=dtype)), TypeError, words=("slots",))


def test_remove_every_neuron_of_a_layer(g):
    n = g.layer_sizes[3]
    raises_unchanged(g, lambda: g.remove_neurons(3, np.arange(n)[::-1]), InvalidArgumentError, builtin=ValueError, words=("slots",))
    h = Graph([1, 1], 0.0)
    raises_unchanged(h, lambda: h.remove_neurons(0, [0]), InvalidArgumentError, builtin=ValueError)


def test_remove_neuron_with_frozen_edge(g):
    (r, c) = edges(g, 0, 1, frozen=True)[0]
    raises_unchanged(g, lambda: g.remove_neurons(1, [r]), FrozenEdgeError, builtin=ValueError)  # target side
    raises_unchanged(g, lambda: g.remove_neurons(0, [c]), FrozenEdgeError, builtin=ValueError)  # source side
    # a frozen edge does not stop a reset (edges are kept)
    g.reset_neurons(1, [r])


# ---------------------------------------------------------------------------------------------
# statistics arguments (value checks are in test_stats.py)


def test_observe_errors(g):
    n = 17
    ok = dict(mean=np.zeros(n), sq_mean=np.ones(n), frac_high=np.zeros(n), frac_low=np.zeros(n))
    raises_unchanged(g, lambda: g.observe(1), InvalidArgumentError, builtin=ValueError)
    raises_unchanged(g, lambda: g.observe(1, mean=ok["mean"], grad_norm=np.ones(n)), InvalidArgumentError, builtin=ValueError)
    raises_unchanged(g, lambda: g.observe(1, **dict(ok, mean=np.zeros(n + 1))), InvalidArgumentError, builtin=ValueError, words=("mean",))
    raises_unchanged(g, lambda: g.observe(1, **dict(ok, frac_high=np.full(n, 1.25))), InvalidArgumentError, words=("frac_high", "1.25"))
    raises_unchanged(g, lambda: g.observe(1, grad_norm=np.full(n, -0.5)), InvalidArgumentError, words=("grad_norm", "-0.5"))
    g.set_stats_config(strict=True)
    bad = np.ones(n)
    bad[11] = np.inf
    raises_unchanged(g, lambda: g.observe(1, grad_norm=bad), NonFiniteError, builtin=ValueError, patterns=(word("grad_norm"), word(11)))
    raises_unchanged(g, lambda: g.set_stats_config(decay=1.0), InvalidArgumentError, words=("decay",))


# ---------------------------------------------------------------------------------------------
# persistence


def test_corrupt_bytes(g):
    data = g.to_bytes()
    assert Graph.from_bytes(data) == g
    bad_inputs = [b"", b"\x00", b"growcore", bytes(64), b"\xff" * 64, data[:1], data[:8], data[: len(data) // 2], data[:-1]]
    for bad in bad_inputs:
        with pytest.raises(StateDictError):
            Graph.from_bytes(bad)


def test_trailing_bytes_are_corrupt(g):
    with pytest.raises(StateDictError):
        Graph.from_bytes(g.to_bytes() + b"\x00")


def test_every_flipped_byte_is_refused():
    # A flip that still decodes (another edge, another age) must not load as a different graph.
    g = Graph([3, 4, 2], 0.5, seed=1)
    g.add_neurons(1, 1, [[0, 2]])
    g.freeze_edges(0, 1, *[np.array(x) for x in zip(*edges(g, 0, 1, frozen=False)[:1])])
    data = g.to_bytes()
    for i in range(len(data)):
        for val in {data[i] ^ 0x01, 0xFF} - {data[i]}:
            b = bytearray(data)
            b[i] = val
            with pytest.raises(StateDictError, match="corrupt|header|truncated"):
                Graph.from_bytes(bytes(b))


def test_every_flipped_byte_of_a_senescence_state_is_refused():
    g = Graph([2, 3, 1], 1.0)
    tracker = growcore.Senescence()
    for _ in range(3):
        g.advance(1)
        tracker.update(g, 1, np.arange(3.0), window=2)
    data = tracker.to_bytes()
    assert growcore.Senescence.from_bytes(data) == tracker
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 0x04
        with pytest.raises(StateDictError, match="corrupt|header|truncated"):
            growcore.Senescence.from_bytes(bytes(b))


def test_load_state_dict_wrong_type():
    t = Graph([2, 2])
    snap = snapshot(t)
    with pytest.raises((TypeError, StateDictError)):
        t.load_state_dict([("version", 1)])
    assert_unchanged(t, snap)


def _leaves(tree, path=()):
    """(path, array) for every numpy array in a nested dict/list state."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaves(v, path + (i,))
    elif isinstance(tree, np.ndarray):
        yield path, tree


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree[k]
    if isinstance(tree, tuple):
        raise TypeError("tuples in state dicts are not supported by this helper")
    tree[path[-1]] = value


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _containers_with(tree, *keys, path=()):
    if isinstance(tree, dict):
        if all(k in tree for k in keys):
            yield path
        for k, v in tree.items():
            yield from _containers_with(v, *keys, path=path + (k,))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _containers_with(v, *keys, path=path + (i,))


@pytest.fixture
def target():
    t = Graph([3, 2], 0.5, seed=9)
    t.advance(2)
    return t


def _load_fails(target, sd, *, names):
    err = raises_unchanged(target, lambda: target.load_state_dict(sd), StateDictError, builtin=ValueError)
    msg = str(err)
    assert any(n in msg for n in names), f"none of {names} named in {msg!r}"


def test_state_dict_missing_keys(g, target):
    sd = g.state_dict()
    assert sd["version"] == 1
    for key in sd:
        bad = copy.deepcopy(sd)
        del bad[key]
        _load_fails(target, bad, names=(key,))


def test_state_dict_extra_key(g, target):
    bad = g.state_dict()
    bad["definitely_not_a_key"] = 1
    _load_fails(target, bad, names=("definitely_not_a_key",))


@pytest.mark.parametrize("version", [0, 2, "1", 1.0, None])
def test_state_dict_bad_version(g, target, version):
    bad = g.state_dict()
    bad["version"] = version
    _load_fails(target, bad, names=("version",))


def test_state_dict_wrong_dtypes(g, target):
    sd = g.state_dict()
    leaves = list(_leaves(sd))
    assert leaves, "state dict holds no arrays"
    for path, arr in leaves:
        bad = copy.deepcopy(sd)
        kind = arr.dtype.kind
        if kind in "fb":
            new = arr.astype(np.int64)
        elif kind in "iu":
            new = arr.astype(np.float64)
        else:  # strings / objects
            new = np.zeros(arr.shape, dtype=np.float64)
        _set(bad, path, new)
        _load_fails(target, bad, names=(str(path[0]), str(path[-1])))


def test_state_dict_wrong_lengths(g, target):
    sd = g.state_dict()
    for path, arr in _leaves(sd):
        if arr.ndim != 1 or len(arr) == 0:
            continue
        bad = copy.deepcopy(sd)
        _set(bad, path, arr[:-1].copy())
        raises_unchanged(target, lambda: target.load_state_dict(bad), StateDictError)


def test_state_dict_unsorted_indices(target):
    g = Graph([3, 4, 3], 1.0)
    sd = g.state_dict()
    found = list(_containers_with(sd, "indptr", "indices"))
    assert found, "no block with indptr/indices in the state dict"
    for path in found:
        bad = copy.deepcopy(sd)
        blk = _get(bad, path)
        idx = np.array(blk["indices"], copy=True)
        ip = np.asarray(blk["indptr"])
        assert ip[1] - ip[0] >= 2
        idx[ip[0]], idx[ip[0] + 1] = idx[ip[0] + 1], idx[ip[0]]
        blk["indices"] = idx
        _load_fails(target, bad, names=(str(path[0]) if path else "indices", "indices"))
        # duplicates in a row are inconsistent too
        bad = copy.deepcopy(sd)
        blk = _get(bad, path)
        idx = np.array(blk["indices"], copy=True)
        idx[ip[0] + 1] = idx[ip[0]]
        blk["indices"] = idx
        _load_fails(target, bad, names=(str(path[0]) if path else "indices", "indices"))


def test_state_dict_non_monotone_indptr(target):
    g = Graph([3, 4, 3], 1.0)
    sd = g.state_dict()
    found = list(_containers_with(sd, "indptr", "indices"))
    assert found
    for path in found:
        bad = copy.deepcopy(sd)
        blk = _get(bad, path)
        ip = np.array(blk["indptr"], copy=True)
        assert len(ip) >= 3
        ip[1] = ip[2] + 1  # still within [0, nnz] but decreasing from 1 to 2
        assert ip[1] <= ip[-1]
        blk["indptr"] = ip
        _load_fails(target, bad, names=(str(path[0]) if path else "indptr", "indptr"))


@pytest.mark.parametrize("row, value", [(1, 13), (2, 100), (1, 2**40)])
def test_state_dict_indptr_beyond_nnz(target, row, value):
    # the ends are right (0 and nnz) but an interior entry points past the end of indices
    g = Graph([3, 4, 3], 1.0)
    sd = g.state_dict()
    found = list(_containers_with(sd, "indptr", "indices"))
    assert found
    for path in found:
        bad = copy.deepcopy(sd)
        blk = _get(bad, path)
        ip = np.array(blk["indptr"], copy=True)
        ip[row] = value
        blk["indptr"] = ip
        _load_fails(target, bad, names=(str(path[0]) if path else "indptr", "indptr"))


def test_state_dict_column_out_of_range(target):
    g = Graph([3, 4, 2], 1.0)
    sd = g.state_dict()
    for path in _containers_with(sd, "indptr", "indices"):
        bad = copy.deepcopy(sd)
        blk = _get(bad, path)
        idx = np.array(blk["indices"], copy=True)
        idx[-1] = 1000
        blk["indices"] = idx
        raises_unchanged(target, lambda: target.load_state_dict(bad), StateDictError)


def test_pickle_of_corrupt_payload_fails():
    g = Graph([2, 3], 0.5)
    fn, args = g.__reduce__()
    assert fn(*args) == g
    with pytest.raises(StateDictError):
        fn(args[0][:-3])
    assert pickle.loads(pickle.dumps(g)) == g


def _scalar_leaves(tree, path=()):
    """(path, value) for every non-array scalar (int, float, bool, str, bytes) in a nested state."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _scalar_leaves(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _scalar_leaves(v, path + (i,))
    elif isinstance(tree, (bool, int, float, str, bytes)):
        yield path, tree


def test_state_dict_wrong_scalar_types(g, target):
    sd = g.state_dict()
    leaves = [(p, v) for p, v in _scalar_leaves(sd) if p != ("version",)]
    assert leaves
    for path, value in leaves:
        bad = copy.deepcopy(sd)
        _set(bad, path, "x" if not isinstance(value, str) else [1])
        _load_fails(target, bad, names=(str(path[0]), str(path[-1])))


def test_state_dict_wrong_container_types(g, target):
    sd = g.state_dict()
    for key, value in sd.items():
        if isinstance(value, (dict, list)):
            bad = copy.deepcopy(sd)
            bad[key] = 7
            _load_fails(target, bad, names=(key,))


# The remaining malformed states need to know where things live; the contract does not name
# these keys, so the helper fails loudly (rather than skipping) if the layout changes.


def _need(sd, *path):
    try:
        return _get(sd, path)
    except (KeyError, IndexError, TypeError):
        pytest.fail(f"state dict layout changed: no {path}; update this test")


def test_state_dict_inconsistent_slot_ids(target):
    g = Graph([3, 4, 2], 0.5, seed=2)
    sd = g.state_dict()
    ids0 = _need(sd, "slot_ids", 0)
    ids1 = _need(sd, "slot_ids", 1)
    # the same id alive in two slots
    bad = copy.deepcopy(sd)
    x = np.array(ids1, copy=True)
    x[0] = ids0[0]
    _set(bad, ("slot_ids", 1), x)
    # which key is "at fault" is a judgement call, but it must be a key of the state dict
    _load_fails(target, bad, names=tuple(f"'{k}'" for k in sd) + tuple(f'"{k}"' for k in sd))
    # an id that was never issued
    bad = copy.deepcopy(sd)
    x = np.array(ids1, copy=True)
    x[1] = g.num_ids
    _set(bad, ("slot_ids", 1), x)
    raises_unchanged(target, lambda: target.load_state_dict(bad), StateDictError)
    # layer sizes no longer match the blocks (one slot dropped from layer 1)
    bad = copy.deepcopy(sd)
    _set(bad, ("slot_ids", 1), np.array(ids1[:-1], copy=True))
    raises_unchanged(target, lambda: target.load_state_dict(bad), StateDictError)


@pytest.mark.parametrize("src, dst", [(1, 0), (1, 1), (0, 3), (2, 5)])
def test_state_dict_bad_block_keys(target, src, dst):
    g = Graph([3, 4, 3], 0.0)
    sd = g.state_dict()
    _need(sd, "blocks", 0, "src")
    bad = copy.deepcopy(sd)
    bad["blocks"][0]["src"], bad["blocks"][0]["dst"] = src, dst
    _load_fails(target, bad, names=("blocks",))


def test_state_dict_duplicate_block(target):
    g = Graph([3, 4, 3], 0.5)
    sd = g.state_dict()
    _need(sd, "blocks", 1)
    bad = copy.deepcopy(sd)
    bad["blocks"][1] = copy.deepcopy(bad["blocks"][0])
    _load_fails(target, bad, names=("blocks",))


def test_equality_covers_the_whole_state():
    base = Graph([3, 4, 2], 0.5, seed=5)
    mutations = [
        lambda h: h.observe(0, grad_norm=[1.0, 2.0, 3.0]),
        lambda h: h.observe(0, grad_norm=[1.0, np.nan, 3.0]),
        lambda h: h.set_stats_config(gamma=0.5),
        lambda h: h.freeze_edges(0, 1, *[np.array([x]) for x in edges(h, 0, 1, frozen=False)[0]]),
        lambda h: h.reset_neurons(2, [1]),
        lambda h: h.advance(),
        lambda h: h.add_block(0, 2),
    ]
    for mutate in mutations:
        h = base.copy()
        mutate(h)
        assert h != base and not (h == base)


def _lineage_graph():
    """Ids 0-5 in layers [2, 2, 2]; id 6 resets id 2 at step 3 (generation 1, parent 2)."""
    g = Graph([2, 2, 2], 1.0)
    g.advance(3)
    g.reset_neurons(1, [0])
    g.advance(2)
    return g


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        (("stats", 1, "mean", 0), np.nan, ["stats", "mean[0] = NaN is not finite"]),
        (("stats", 1, "sq_mean", 1), -1.0, ["stats", "sq_mean[1] = -1 is not finite and non-negative"]),
        (("stats", 0, "frac_high", 0), 1.5, ["stats", "frac_high[0] = 1.5 is not in [0, 1]"]),
        (("stats", 2, "grad_norm", 0), np.inf, ["stats", "grad_norm[0] = inf"]),
        (("neurons", "death", 2), 99, ["neurons", "id 2", "after the graph's step"]),
        (("neurons", "birth", 2), 4, ["neurons", "id 2", "before its birth"]),
        (("neurons", "generation", 6), 5, ["neurons", "id 6", "generation 5"]),
        (("neurons", "generation", 2), 2**32 - 1, ["neurons", "id 6", "generation 1"]),
        (("neurons", "parent_b", 6), 3, ["neurons", "id 6"]),
    ],
)
def test_state_dict_values_that_no_graph_could_hold(where, value, words):
    g = _lineage_graph()
    state = g.state_dict()
    assert state["neurons"]["parent_a"][6] == 2 and state["neurons"]["death"][2] == 3
    bad = copy.deepcopy(state)
    array = np.array(_get(bad, where[:-1]), copy=True)
    array[where[-1]] = value
    _set(bad, where[:-1], array)
    if where[0] == "neurons" and where[1] == "parent_b":
        bad["neurons"]["parent_a"] = np.where(np.arange(7) == 6, -1, bad["neurons"]["parent_a"])
    target = _lineage_graph()
    err = raises_unchanged(target, lambda: target.load_state_dict(bad), StateDictError, builtin=ValueError)
    for word in words:
        assert word in str(err), (word, str(err))
    assert Graph.from_bytes(g.to_bytes()) == g  # the good state still loads


@pytest.mark.parametrize("word_pos", [2**68, 2**68 + 5, 2**127])
def test_state_dict_rng_position_beyond_the_generator(g, target, word_pos):
    bad = g.state_dict()
    bad["rng"]["word_pos"] = word_pos
    _load_fails(target, bad, names=("rng.word_pos",))
    last = g.state_dict()
    last["rng"]["word_pos"] = 2**68 - 1  # the last position is fine
    target.load_state_dict(last)
    assert target.state_dict()["rng"]["word_pos"] == 2**68 - 1


@pytest.mark.parametrize("value", [-1, 2**31, 2**40, 2**64, 2**200])
def test_a_step_argument_out_of_range_gives_the_step_range(value):
    g = Graph([2, 3, 2], 1.0)
    before = g.copy()
    with pytest.raises(InvalidArgumentError, match=r"^mature: must be an integer in \[0, 2\*\*31\)"):
        g.stages(1, value, 2)
    with pytest.raises(InvalidArgumentError, match=r"^maturity_age: must be an integer in \[0, 2\*\*31\)"):
        g.apoptosis(1, 0.5, maturity_age=value)
    assert g == before


# Every integer option the bindings read, given a bool: Python counts True as 1, but
# `seed=True` or `count=False` is a slip. PyO3 names the argument in a note of the TypeError.
BOOL_AS_INT_CALLS = {
    "seed": lambda g: Graph([3, 2], 0.5, seed=True),
    "steps": lambda g: g.advance(True),
    "count": lambda g: g.prune_and_grow(0, 1, np.ones((17, 13)), "random", True),
    "min_observations": lambda g: g.extrema(1, min_observations=False),
    "clone_budget": lambda g: g.grow({1: [0]}, {1: [1]}, clone_budget=True),
    "max_layer_size": lambda g: g.grow({1: [0]}, {1: [1]}, max_layer_size=True),
    "radius": lambda g: g.grow({1: [0]}, {1: [1]}, radius=True),
    "fan_in_cap": lambda g: g.grow({1: [0]}, {1: [1]}, fan_in_cap=True),
    "window": lambda g: growcore.Senescence().update(g, 1, window=True),
    "min_age": lambda g: growcore.Senescence().update(g, 1, min_age=False),
    "max_iter": lambda g: growcore._core.katz_adjacency(2, [0, 0, 1], [1], max_iter=True),
}


@pytest.mark.parametrize("name", sorted(BOOL_AS_INT_CALLS))
def test_bools_are_not_integers(g, name):
    snap = snapshot(g)
    with pytest.raises(TypeError, match="expected an integer, got bool") as info:
        BOOL_AS_INT_CALLS[name](g)
    assert name in str(info.value) or f"while processing '{name}'" in getattr(info.value, "__notes__", [])
    assert_unchanged(g, snap)
