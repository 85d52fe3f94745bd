"""Pure-Python reference model and shared helpers for the growcore test suite.

Everything here is derived from the behavioural contract, never from the implementation:
``GraphModel`` mirrors a graph's structure, neuron bookkeeping, lineage and statistics, and
``NeuronRef`` is the reference for the bias-corrected statistics of one neuron.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import growcore
from growcore import (
    BlockError,
    EdgeError,
    FrozenEdgeError,
    InvalidArgumentError,
    OutOfRangeError,
)

STAT_KEYS = frozenset(
    {
        "mean",
        "sq_mean",
        "variance",
        "frac_high",
        "frac_low",
        "grad_norm",
        "fast_mean",
        "stagnation",
        "fitness",
        "observations",
        "grad_observations",
    }
)
ACT_FIELDS = ("mean", "sq_mean", "frac_high", "frac_low")
LINEAGE_KEYS = frozenset(
    {"id", "layer", "slot", "birth_step", "death_step", "generation", "parent_a", "parent_b", "cause"}
)
DEFAULT_CONFIG = {
    "decay": 0.99,
    "fast_decay": 0.9,
    "alpha": 1.0,
    "beta": 1.0,
    "gamma": 0.1,
    "stagnation_warmup": 10,
    "strict": False,
}


# --------------------------------------------------------------------------------------------
# small numeric helpers


def round_half_away(x: float) -> int:
    """Round half away from zero (Python's round() is half-to-even)."""
    if x >= 0:
        return int(math.floor(x + 0.5))
    return -int(math.floor(-x + 0.5))


def acceptable_counts(density: float, rows: int, cols: int) -> set[int]:
    """Edge counts acceptable for round(density * rows * cols), rounding half away from zero.

    The product is formed in floating point. If the ways of forming it disagree and one lands
    within 1e-9 of a .5 tie, the last bit decides, so both neighbours are accepted there (only).
    """
    variants = {density * (rows * cols), density * rows * cols, density * cols * rows}
    out = {round_half_away(v) for v in variants}
    if len(variants) > 1:
        for v in variants:
            if abs(v - math.floor(v) - 0.5) < 1e-9:
                out.update({math.floor(v), math.floor(v) + 1})
    return out


def csr_rows(indptr: np.ndarray) -> np.ndarray:
    """Row index of every stored entry of a CSR structure."""
    indptr = np.asarray(indptr)
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def erk_targets(shapes: list[tuple[int, int]], total: float) -> list[float]:
    """Real-valued ERK allocation: nnz_i = min(cap_i, k * (rows_i + cols_i)), sum == total.

    Water-filling: blocks whose proportional share exceeds their capacity are capped and the excess
    is redistributed over the others in proportion to (rows + cols).
    """
    caps = [r * c for r, c in shapes]
    weights = [r + c for r, c in shapes]
    capped: set[int] = set()
    while True:
        remaining = total - sum(caps[i] for i in capped)
        active = [i for i in range(len(shapes)) if i not in capped]
        wsum = sum(weights[i] for i in active)
        k = remaining / wsum if wsum else 0.0
        newly = [i for i in active if k * weights[i] > caps[i]]
        if not newly:
            break
        capped.update(newly)
    return [float(caps[i]) if i in capped else k * weights[i] for i in range(len(shapes))]


# --------------------------------------------------------------------------------------------
# comparing graphs / state dicts, and checking that a failed call changed nothing


def assert_tree_equal(a, b, path: str = "state") -> None:
    """Deep equality for state dicts: dicts, sequences, numpy arrays (dtype included), scalars."""
    if isinstance(a, dict):
        assert isinstance(b, dict), f"{path}: dict vs {type(b)}"
        assert set(a) == set(b), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{path}: ndarray vs {type(b)}"
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=path)  # NaN == NaN here
        else:
            assert np.array_equal(a, b), path
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)), f"{path}: sequence vs {type(b)}"
        assert len(a) == len(b), f"{path}: len {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        numeric = (int, float, np.number)
        assert type(a) is type(b) or (isinstance(a, numeric) and isinstance(b, numeric)), (
            f"{path}: {type(a)} vs {type(b)}"
        )
        assert a == b, f"{path}: {a!r} != {b!r}"


def snapshot(g):
    return g.copy(), g.state_dict()


def assert_unchanged(g, snap) -> None:
    copy, sd = snap
    assert g == copy, "graph changed although the call failed"
    assert_tree_equal(g.state_dict(), sd)


def raises_unchanged(g, fn, expected, *, builtin=None, words=(), patterns=()):
    """Call fn(), require an exception of class ``expected`` (a class or tuple), and that g is unchanged.

    ``builtin`` is the builtin exception the class promises to be; ``words`` must appear verbatim in
    the message and ``patterns`` are regexes that must match somewhere in it.
    """
    snap = snapshot(g)
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - we want to see panics too
        err = e
    else:
        raise AssertionError(f"no exception raised, expected {expected}")
    assert isinstance(err, expected), f"expected {expected}, got {type(err).__name__}: {err}"
    if builtin is not None:
        assert isinstance(err, builtin), f"{type(err).__name__} is not a {builtin}"
    msg = str(err)
    for w in words:
        assert w in msg, f"{w!r} not in message {msg!r}"
    for p in patterns:
        assert re.search(p, msg), f"/{p}/ does not match message {msg!r}"
    assert_unchanged(g, snap)
    return err


def assert_graphs_equivalent(g, h) -> None:
    """Compare every public query of two graphs (stronger than ``==`` alone)."""
    assert g.layer_sizes == h.layer_sizes
    assert g.num_layers == h.num_layers
    assert g.num_neurons == h.num_neurons
    assert g.num_ids == h.num_ids
    assert g.step == h.step
    assert g.blocks == h.blocks
    assert g.nnz == h.nnz
    for a, b in g.blocks:
        for x, y in zip(g.csr(a, b), h.csr(a, b)):
            assert np.array_equal(x, y)
        assert np.array_equal(g.edge_births(a, b), h.edge_births(a, b))
        assert np.array_equal(g.edge_frozen(a, b), h.edge_frozen(a, b))
    for layer in range(g.num_layers):
        assert np.array_equal(g.ids(layer), h.ids(layer))
        assert np.array_equal(g.births(layer), h.births(layer))
        assert np.array_equal(g.generations(layer), h.generations(layer))
        sg, sh = g.stats(layer), h.stats(layer)
        assert set(sg) == set(sh)
        for k in sg:
            assert np.array_equal(sg[k], sh[k]), k
    lg, lh = g.lineage(), h.lineage()
    assert set(lg) == set(lh)
    for k in lg:
        assert np.array_equal(lg[k], lh[k]), k
    assert g.stats_config == h.stats_config
    assert g.nonfinite_counts == h.nonfinite_counts


# --------------------------------------------------------------------------------------------
# reference statistics


class NeuronRef:
    """Reference statistics for one neuron: float64 EMAs of float32-cast inputs."""

    def __init__(self) -> None:
        self.m = {k: 0.0 for k in ("mean", "sq_mean", "frac_high", "frac_low", "fast_mean")}
        self.n = 0
        self.mg = 0.0
        self.ng = 0

    def copy(self) -> NeuronRef:
        r = NeuronRef()
        r.m = dict(self.m)
        r.n, r.mg, r.ng = self.n, self.mg, self.ng
        return r

    def update_act(self, mean, sq_mean, frac_high, frac_low, decay, fast_decay) -> None:
        xs = {"mean": mean, "sq_mean": sq_mean, "frac_high": frac_high, "frac_low": frac_low}
        for k, x in xs.items():
            self.m[k] = decay * self.m[k] + (1.0 - decay) * float(x)
        self.m["fast_mean"] = fast_decay * self.m["fast_mean"] + (1.0 - fast_decay) * float(mean)
        self.n += 1

    def update_grad(self, g, decay) -> None:
        self.mg = decay * self.mg + (1.0 - decay) * float(g)
        self.ng += 1

    def report(self, cfg) -> dict[str, float]:
        d, fd = cfg["decay"], cfg["fast_decay"]

        def corr(m, n, dd):
            return 0.0 if n == 0 else m / (1.0 - dd**n)

        out = {k: corr(self.m[k], self.n, d) for k in ("mean", "sq_mean", "frac_high", "frac_low")}
        out["fast_mean"] = corr(self.m["fast_mean"], self.n, fd)
        out["grad_norm"] = corr(self.mg, self.ng, d)
        out["variance"] = max(out["sq_mean"] - out["mean"] ** 2, 0.0)
        if self.n < cfg["stagnation_warmup"]:
            out["stagnation"] = 0.0
        else:
            out["stagnation"] = 1.0 / (
                1.0 + abs(out["fast_mean"] - out["mean"]) / (math.sqrt(out["variance"]) + 1e-8)
            )
        out["fitness"] = cfg["alpha"] * out["grad_norm"] + cfg["beta"] * out["variance"] - cfg["gamma"] * out["stagnation"]
        out["observations"] = self.n
        out["grad_observations"] = self.ng
        return out


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def apply_observation(refs: list[NeuronRef], cfg, kwargs) -> int:
    """Fold one observe() call into the per-slot references; returns the number of skipped samples."""
    skipped = 0
    act = {k: f32(kwargs[k]) for k in ACT_FIELDS if kwargs.get(k) is not None}
    grad = f32(kwargs["grad_norm"]) if kwargs.get("grad_norm") is not None else None
    for i, ref in enumerate(refs):
        if act:
            vals = [act[k][i] for k in ACT_FIELDS]
            if all(np.isfinite(vals)):
                ref.update_act(*vals, cfg["decay"], cfg["fast_decay"])
            else:
                skipped += 1
        if grad is not None:
            if np.isfinite(grad[i]):
                ref.update_grad(grad[i], cfg["decay"])
            else:
                skipped += 1
    return skipped


def expected_stats(refs: list[NeuronRef], cfg) -> dict[str, np.ndarray]:
    reports = [r.report(cfg) for r in refs]
    out = {}
    for k in STAT_KEYS:
        dtype = np.int64 if k in ("observations", "grad_observations") else np.float64
        out[k] = np.array([rep[k] for rep in reports], dtype=dtype)
    return out


def assert_stats_close(actual: dict, expected: dict, *, rtol=1e-9, context="") -> None:
    assert set(actual) == STAT_KEYS, f"{context}: stats keys {sorted(actual)}"
    for k in STAT_KEYS:
        a, e = np.asarray(actual[k]), expected[k]
        assert a.shape == e.shape, f"{context} {k}: shape {a.shape} != {e.shape}"
        if k in ("observations", "grad_observations"):
            assert a.dtype == np.int64, f"{k} dtype {a.dtype}"
            assert np.array_equal(a, e), f"{context} {k}: {a} != {e}"
        else:
            assert a.dtype == np.float64, f"{k} dtype {a.dtype}"
            scale = max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=f"{context} {k}")


# --------------------------------------------------------------------------------------------
# reference graph model


@dataclass
class Record:
    layer: int
    birth: int
    generation: int
    parent_a: int = -1
    parent_b: int = -1
    death: int = -1
    cause: str = "alive"


@dataclass
class GraphModel:
    layers: list[list[int]]
    blocks: dict[tuple[int, int], dict[tuple[int, int], list]]
    next_id: int
    step: int = 0
    lineage: dict[int, Record] = field(default_factory=dict)
    stats: dict[int, NeuronRef] = field(default_factory=dict)
    nonfinite: list[int] = field(default_factory=list)
    cfg: dict = field(default_factory=lambda: dict(DEFAULT_CONFIG))

    @classmethod
    def from_masks(cls, sizes, masks) -> GraphModel:
        layers, nid = [], 0
        for s in sizes:
            layers.append(list(range(nid, nid + s)))
            nid += s
        blocks = {}
        for key, mask in masks.items():
            rr, cc = np.nonzero(np.asarray(mask, dtype=bool))
            blocks[tuple(key)] = {(int(r), int(c)): [0, False] for r, c in zip(rr, cc)}
        m = cls(layers=layers, blocks=blocks, next_id=nid)
        for layer, ids in enumerate(layers):
            for i in ids:
                m.lineage[i] = Record(layer=layer, birth=0, generation=0)
                m.stats[i] = NeuronRef()
        m.nonfinite = [0] * len(sizes)
        return m

    # -- shape
    @property
    def sizes(self) -> list[int]:
        return [len(x) for x in self.layers]

    @property
    def L(self) -> int:
        return len(self.layers)

    # -- expected errors (empty set = the call must succeed)
    def _edge_common(self, a, b, rows, cols) -> set:
        errs = set()
        if (a, b) not in self.blocks:
            errs.add(BlockError)
        R, C = self.sizes[b], self.sizes[a]
        if any(r < 0 or r >= R for r in rows) or any(c < 0 or c >= C for c in cols):
            errs.add(OutOfRangeError)
        return errs

    def _in_range_pairs(self, a, b, rows, cols):
        R, C = self.sizes[b], self.sizes[a]
        return [(r, c) for r, c in zip(rows, cols) if 0 <= r < R and 0 <= c < C]

    def check_add_edges(self, a, b, rows, cols) -> set:
        errs = self._edge_common(a, b, rows, cols)
        if BlockError in errs:
            return errs
        pairs = self._in_range_pairs(a, b, rows, cols)
        blk = self.blocks[(a, b)]
        if len(set(pairs)) != len(pairs) or any(p in blk for p in pairs):
            errs.add(EdgeError)
        return errs

    def check_remove_edges(self, a, b, rows, cols) -> set:
        errs = self._edge_common(a, b, rows, cols)
        if BlockError in errs:
            return errs
        pairs = self._in_range_pairs(a, b, rows, cols)
        blk = self.blocks[(a, b)]
        if len(set(pairs)) != len(pairs) or any(p not in blk for p in pairs):
            errs.add(EdgeError)
        if any(p in blk and blk[p][1] for p in pairs):
            errs.add(FrozenEdgeError)
        return errs

    def check_set_frozen(self, a, b, rows, cols) -> set:
        errs = self._edge_common(a, b, rows, cols)
        if BlockError in errs:
            return errs
        blk = self.blocks[(a, b)]
        if any(p not in blk for p in self._in_range_pairs(a, b, rows, cols)):
            errs.add(EdgeError)
        return errs

    def check_add_block(self, a, b) -> set:
        if a >= b:
            return {InvalidArgumentError}
        if (a, b) in self.blocks:
            return {BlockError}
        return set()

    def check_remove_block(self, a, b) -> set:
        if (a, b) not in self.blocks:
            return {BlockError}
        if any(v[1] for v in self.blocks[(a, b)].values()):
            return {FrozenEdgeError}
        return set()

    def check_add_neurons(self, layer, count, parents) -> set:
        errs = set()
        if parents is None:
            return errs
        if len(parents) != count or any(len(p) > 2 for p in parents):
            errs.add(InvalidArgumentError)
        if any(x < 0 or x >= self.next_id for p in parents for x in p):
            errs.add(OutOfRangeError)
        return errs

    def incident_frozen(self, layer, slots) -> bool:
        s = set(slots)
        for (a, b), blk in self.blocks.items():
            for (r, c), (_, fr) in blk.items():
                if fr and ((b == layer and r in s) or (a == layer and c in s)):
                    return True
        return False

    def check_remove_neurons(self, layer, slots) -> set:
        errs = set()
        n = self.sizes[layer]
        if len(set(slots)) != len(slots):
            errs.add(InvalidArgumentError)
        valid = [s for s in slots if 0 <= s < n]
        if len(valid) != len(slots):
            errs.add(OutOfRangeError)
        if len(set(valid)) == n:
            errs.add(InvalidArgumentError)
        if self.incident_frozen(layer, valid):
            errs.add(FrozenEdgeError)
        return errs

    def check_reset_neurons(self, layer, slots) -> set:
        errs = set()
        if len(set(slots)) != len(slots):
            errs.add(InvalidArgumentError)
        if any(s < 0 or s >= self.sizes[layer] for s in slots):
            errs.add(OutOfRangeError)
        return errs

    # -- applying valid operations
    def add_edges(self, a, b, rows, cols) -> None:
        blk = self.blocks[(a, b)]
        for r, c in zip(rows, cols):
            blk[(r, c)] = [self.step, False]

    def remove_edges(self, a, b, rows, cols) -> None:
        blk = self.blocks[(a, b)]
        for r, c in zip(rows, cols):
            del blk[(r, c)]

    def set_frozen(self, a, b, rows, cols, frozen) -> None:
        blk = self.blocks[(a, b)]
        for r, c in zip(rows, cols):
            blk[(r, c)][1] = frozen

    def add_block(self, a, b) -> None:
        self.blocks[(a, b)] = {}

    def remove_block(self, a, b) -> None:
        del self.blocks[(a, b)]

    def add_neurons(self, layer, new_ids, parents) -> None:
        for i, nid in enumerate(new_ids):
            ps = list(parents[i]) if parents is not None else []
            gen = 1 + max(self.lineage[p].generation for p in ps) if ps else 0
            self.lineage[nid] = Record(
                layer=layer,
                birth=self.step,
                generation=gen,
                parent_a=ps[0] if len(ps) > 0 else -1,
                parent_b=ps[1] if len(ps) > 1 else -1,
            )
            self.stats[nid] = NeuronRef()
            self.layers[layer].append(nid)
        self.next_id += len(new_ids)

    def remove_neurons(self, layer, slots) -> list[int]:
        gone = set(slots)
        kept = [s for s in range(self.sizes[layer]) if s not in gone]
        remap = {old: new for new, old in enumerate(kept)}
        for s in gone:
            rec = self.lineage[self.layers[layer][s]]
            rec.death, rec.cause = self.step, "removed"
        self.layers[layer] = [self.layers[layer][s] for s in kept]
        for (a, b), blk in self.blocks.items():
            if b == layer:
                self.blocks[(a, b)] = {(remap[r], c): v for (r, c), v in blk.items() if r in remap}
            elif a == layer:
                self.blocks[(a, b)] = {(r, remap[c]): v for (r, c), v in blk.items() if c in remap}
        return kept

    def reset_neurons(self, layer, slots, new_ids) -> None:
        for s, nid in zip(slots, new_ids):
            old = self.layers[layer][s]
            rec = self.lineage[old]
            rec.death, rec.cause = self.step, "reset"
            self.lineage[nid] = Record(layer=layer, birth=self.step, generation=rec.generation + 1, parent_a=old)
            self.stats[nid] = NeuronRef()
            self.layers[layer][s] = nid
        self.next_id += len(new_ids)

    def observe(self, layer, kwargs) -> None:
        refs = [self.stats[i] for i in self.layers[layer]]
        self.nonfinite[layer] += apply_observation(refs, self.cfg, kwargs)

    # -- expected query results
    def dense(self, a, b) -> np.ndarray:
        m = np.zeros((self.sizes[b], self.sizes[a]), dtype=bool)
        for r, c in self.blocks[(a, b)]:
            m[r, c] = True
        return m

    def slot_of(self) -> dict[int, tuple[int, int]]:
        return {i: (layer, s) for layer, ids in enumerate(self.layers) for s, i in enumerate(ids)}


def assert_model_matches(g, m: GraphModel) -> None:
    """Every invariant of the contract, checked against the reference model."""
    g.validate()
    sizes = m.sizes
    assert g.layer_sizes == sizes
    assert g.num_layers == m.L
    assert g.num_neurons == sum(sizes)
    assert g.num_ids == m.next_id
    assert g.step == m.step
    assert g.blocks == sorted(m.blocks)
    total = 0
    for (a, b), blk in m.blocks.items():
        assert g.has_block(a, b)
        R, C = sizes[b], sizes[a]
        indptr, indices = g.csr(a, b)
        assert indptr.dtype == np.int64 and indices.dtype == np.int64
        assert indptr.shape == (R + 1,)
        assert indptr[0] == 0 and indptr[-1] == len(indices)
        assert np.all(np.diff(indptr) >= 0)
        rows = csr_rows(indptr)
        if len(indices):
            assert indices.min() >= 0 and indices.max() < C
            same_row = rows[1:] == rows[:-1]
            assert np.all(np.diff(indices)[same_row] > 0), "columns not sorted/unique within a row"
        got = list(zip(rows.tolist(), indices.tolist()))
        assert set(got) == set(blk), f"block {(a, b)} edges differ"
        assert g.block_nnz(a, b) == len(blk)
        births = g.edge_births(a, b)
        frozen = g.edge_frozen(a, b)
        assert births.dtype == np.int64 and frozen.dtype == np.bool_
        assert births.tolist() == [blk[p][0] for p in got]
        assert frozen.tolist() == [blk[p][1] for p in got]
        assert g.density(a, b) == len(blk) / (R * C)
        total += len(blk)
    assert g.nnz == total
    cap = sum(sizes[a] * sizes[b] for a, b in m.blocks)
    assert g.density() == (total / cap if cap else 0.0)

    # neurons
    alive = []
    for layer, ids in enumerate(m.layers):
        got_ids = g.ids(layer)
        assert got_ids.dtype == np.int64
        assert got_ids.tolist() == ids
        alive.extend(ids)
        assert g.births(layer).tolist() == [m.lineage[i].birth for i in ids]
        assert g.ages(layer).tolist() == [m.step - m.lineage[i].birth for i in ids]
        assert g.generations(layer).tolist() == [m.lineage[i].generation for i in ids]
        fin = np.zeros(sizes[layer], dtype=np.int64)
        fout = np.zeros(sizes[layer], dtype=np.int64)
        for (a, b), blk in m.blocks.items():
            for r, c in blk:
                if b == layer:
                    fin[r] += 1
                if a == layer:
                    fout[c] += 1
        assert g.fan_in(layer).tolist() == fin.tolist()
        assert g.fan_out(layer).tolist() == fout.tolist()
    assert len(set(alive)) == len(alive)
    where = m.slot_of()
    if alive:
        ls, ss = g.locate(np.array(alive, dtype=np.int64))
        assert ls.tolist() == [where[i][0] for i in alive]
        assert ss.tolist() == [where[i][1] for i in alive]

    # lineage
    lin = g.lineage()
    assert set(lin) == LINEAGE_KEYS
    n = m.next_id
    for k in LINEAGE_KEYS:
        assert len(lin[k]) == n, k
    assert lin["id"].tolist() == list(range(n))
    recs = [m.lineage[i] for i in range(n)]
    assert lin["layer"].tolist() == [r.layer for r in recs]
    assert lin["slot"].tolist() == [where[i][1] if i in where else -1 for i in range(n)]
    assert lin["birth_step"].tolist() == [r.birth for r in recs]
    assert lin["death_step"].tolist() == [r.death for r in recs]
    assert lin["generation"].tolist() == [r.generation for r in recs]
    assert lin["parent_a"].tolist() == [r.parent_a for r in recs]
    assert lin["parent_b"].tolist() == [r.parent_b for r in recs]
    assert [str(c) for c in lin["cause"]] == [r.cause for r in recs]

    # statistics
    assert g.nonfinite_counts == m.nonfinite
    for layer, ids in enumerate(m.layers):
        assert_stats_close(g.stats(layer), expected_stats([m.stats[i] for i in ids], m.cfg), context=f"layer {layer}")


# --------------------------------------------------------------------------------------------
# random valid mutations (used by round-trip properties)


def _frozen_slots(g, layer) -> set[int]:
    out: set[int] = set()
    for a, b in g.blocks:
        fr = g.edge_frozen(a, b)
        if not fr.any():
            continue
        indptr, indices = g.csr(a, b)
        if b == layer:
            out.update(csr_rows(indptr)[fr].tolist())
        if a == layer:
            out.update(indices[fr].tolist())
    return out


def random_mutations(g, rng: np.random.Generator, n_ops: int) -> None:
    """Apply n_ops random *valid* mutations chosen with rng (all mutation kinds, plus observe)."""
    for _ in range(n_ops):
        op = int(rng.integers(0, 11))
        L = g.num_layers
        sizes = g.layer_sizes
        blocks = g.blocks
        if op in (0, 1, 2, 3) and blocks:
            a, b = blocks[int(rng.integers(len(blocks)))]
            dense = g.to_dense(a, b)
            if op == 0:
                cand = np.argwhere(~dense)
            elif op == 1:
                indptr, indices = g.csr(a, b)
                keep = ~g.edge_frozen(a, b)
                cand = np.stack([csr_rows(indptr)[keep], indices[keep]], axis=1)
            else:
                cand = np.argwhere(dense)
            if len(cand) == 0:
                continue
            k = int(rng.integers(1, min(4, len(cand)) + 1))
            sel = cand[rng.choice(len(cand), size=k, replace=False)]
            fn = [g.add_edges, g.remove_edges, g.freeze_edges, g.unfreeze_edges][op]
            fn(a, b, sel[:, 0], sel[:, 1])
        elif op == 4:
            missing = [(a, b) for a in range(L) for b in range(a + 1, L) if (a, b) not in blocks]
            if missing:
                g.add_block(*missing[int(rng.integers(len(missing)))])
        elif op == 5:
            free = [k for k in blocks if not g.edge_frozen(*k).any()]
            if free:
                g.remove_block(*free[int(rng.integers(len(free)))])
        elif op == 6:
            layer = int(rng.integers(L))
            count = int(rng.integers(0, 3))
            parents = [
                [int(x) for x in rng.choice(g.num_ids, size=min(int(rng.integers(0, 3)), g.num_ids), replace=False)]
                for _ in range(count)
            ]
            g.add_neurons(layer, count, parents)
        elif op == 7:
            layer = int(rng.integers(L))
            candidates = sorted(set(range(sizes[layer])) - _frozen_slots(g, layer))
            if len(candidates) > 0 and sizes[layer] > 1:
                k = int(rng.integers(1, min(len(candidates), sizes[layer] - 1) + 1))
                g.remove_neurons(layer, rng.choice(candidates, size=k, replace=False))
        elif op == 8:
            layer = int(rng.integers(L))
            k = int(rng.integers(0, sizes[layer] + 1))
            g.reset_neurons(layer, rng.choice(sizes[layer], size=k, replace=False))
        elif op == 9:
            g.advance(int(rng.integers(0, 4)))
        elif op == 10:
            layer = int(rng.integers(L))
            n = sizes[layer]
            mean = rng.normal(size=n)
            kw = dict(
                mean=mean,
                sq_mean=mean**2 + rng.uniform(0.01, 2, size=n),
                frac_high=rng.uniform(0, 1, size=n),
                frac_low=rng.uniform(0, 1, size=n),
                grad_norm=rng.uniform(0, 3, size=n),
            )
            if rng.integers(0, 4) == 0:
                kw["mean"][int(rng.integers(n))] = np.nan
            g.observe(layer, **kw)


def exception_classes():
    return {
        name: getattr(growcore, name)
        for name in (
            "GrowcoreError",
            "InvalidArgumentError",
            "OutOfRangeError",
            "BlockError",
            "EdgeError",
            "FrozenEdgeError",
            "NonFiniteError",
            "StateDictError",
        )
    }


def num_pattern(v) -> str:
    """Regex matching how a number may be printed in a message (2.0 may print as 2 or 2.0)."""
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return rf"(?<![\d.]){int(v)}(\.0*)?(?![\d])"
    if isinstance(v, float) and math.isinf(v):
        return "-inf" if v < 0 else r"(?<!-)inf"
    if isinstance(v, float):
        return rf"(?<![\d.]){re.escape(repr(v))}(?![\d])"
    return rf"(?<![\d.]){int(v)}(?![\d])"


# --------------------------------------------------------------------------------------------
# hypothesis strategies


@st.composite
def layered_graph(draw, max_size=6):
    """A random graph with random adjacent blocks and random skip blocks."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=2, max_size=4))
    g = growcore.Graph(sizes, draw(st.floats(0, 1)), seed=draw(st.integers(0, 2**32)))
    for a in range(len(sizes)):
        for b in range(a + 2, len(sizes)):
            if draw(st.booleans()):
                g.add_block(a, b)
                n = sizes[a] * sizes[b]
                mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
                g.add_edges(a, b, *np.nonzero(mask.reshape(sizes[b], sizes[a])))
    return g
