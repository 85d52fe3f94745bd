"""growcore.Senescence against a pure-Python model of its rules; profile diversity and
redundancy against numpy; the error contract. No torch needed."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import growcore


class Model:
    """The documented rules, by neuron id."""

    def __init__(self, window, epsilon, flat_steps, escalate_after, max_fraction, min_age):
        self.o = dict(window=window, epsilon=epsilon, flat_steps=flat_steps,
                      escalate_after=escalate_after, max_fraction=max_fraction, min_age=min_age)
        self.tracks: dict[int, dict] = {}

    def update(self, graph: growcore.Graph, layer: int, fitness: np.ndarray):
        o, step = self.o, graph.step
        alive = {int(i) for l in range(graph.num_layers) for i in graph.ids(l)}
        self.tracks = {i: t for i, t in self.tracks.items() if i in alive}
        spread = float(np.std(fitness))
        spread = spread if spread > 1e-12 * float(np.max(np.abs(fitness), initial=0.0)) else 0.0
        ids, ages = graph.ids(layer).tolist(), graph.ages(layer)
        slope = np.full(len(ids), np.nan)
        flat_for = [None] * len(ids)
        for s, i in enumerate(ids):
            t = self.tracks.setdefault(i, {"samples": [], "flat_since": None, "senescent_since": None})
            t["samples"] = (t["samples"] + [(step, float(fitness[s]))])[-o["window"]:]
            if len(t["samples"]) == o["window"]:
                x = np.array([p[0] for p in t["samples"]], float)
                y = np.array([p[1] for p in t["samples"]])
                sxx = ((x - x.mean()) ** 2).sum()
                r = 0.0 if sxx <= 0 or spread <= 0 else (
                    ((x - x.mean()) * (y - y.mean())).sum() / sxx * (x[-1] - x[0]) / spread)
                slope[s] = r
                if abs(r) < o["epsilon"]:
                    if t["flat_since"] is None:
                        t["flat_since"] = t["samples"][0][0]
                elif t["senescent_since"] is None:
                    t["flat_since"] = None
            if t["flat_since"] is not None:
                flat_for[s] = step - min(t["flat_since"], step)
        cap = int(np.floor(o["max_fraction"] * len(ids)))
        cands = [s for s, i in enumerate(ids)
                 if self.tracks[i]["senescent_since"] is None and ages[s] >= o["min_age"]
                 and flat_for[s] is not None and flat_for[s] >= o["flat_steps"]]
        cands = sorted(sorted(cands, key=lambda s: (abs(slope[s]), s))[:cap])
        for s in cands:
            self.tracks[ids[s]]["senescent_since"] = step
        due = sorted((self.tracks[i]["senescent_since"], s) for s, i in enumerate(ids)
                     if self.tracks[i]["senescent_since"] is not None
                     and step - self.tracks[i]["senescent_since"] >= o["escalate_after"])
        escalated = sorted(s for _, s in due[:cap])
        return slope, cands, escalated


@settings(max_examples=500, deadline=None)
@given(
    n=st.integers(1, 8),
    window=st.integers(2, 4),
    flat_steps=st.integers(0, 30),
    escalate_after=st.integers(0, 30),
    max_fraction=st.floats(0.0, 1.0),
    min_age=st.integers(0, 40),
    history=st.lists(st.tuples(st.lists(st.integers(-2, 2), min_size=8, max_size=8), st.booleans()),
                     min_size=1, max_size=10),
)
def test_tracker_matches_the_model(n, window, flat_steps, escalate_after, max_fraction, min_age, history):
    g = growcore.Graph([2, n, 1], 1.0, seed=0)
    tracker = growcore.Senescence()
    opts = dict(window=window, epsilon=0.3, flat_steps=flat_steps, escalate_after=escalate_after,
                max_fraction=max_fraction, min_age=min_age)
    model = Model(**opts)
    for values, kill in history:
        g.advance(10)
        fitness = np.array(values[:n], float)
        got = tracker.update(g, 1, fitness, **opts)
        slope, newly, escalated = model.update(g, 1, fitness)
        np.testing.assert_allclose(got["slope"], slope, rtol=1e-9, atol=1e-12)
        assert got["newly_senescent"].tolist() == newly
        assert got["escalated"].tolist() == escalated
        assert growcore.Senescence.from_bytes(tracker.to_bytes()) == tracker
        if kill and escalated:
            plan = g.apoptosis(1, 0.0, escalated=escalated)
            assert plan["escalated"].all() and plan["slot"].tolist() == escalated
            # Their slots now hold newborns, which are not senescent.
            assert set(tracker.senescent(g, 1).tolist()).isdisjoint(escalated)


def test_errors_name_the_argument_and_change_nothing() -> None:
    g = growcore.Graph([2, 4, 1], 1.0, seed=0)
    tracker = growcore.Senescence()
    g.advance(5)
    tracker.update(g, 1, np.arange(4.0))
    saved = tracker.to_bytes()
    for kwargs, word in [({"window": 1}, "window"), ({"epsilon": -1.0}, "epsilon"),
                         ({"max_fraction": 2.0}, "max_fraction"), ({"flat_steps": -1}, "flat_steps"),
                         ({"min_age": 2**40}, "min_age")]:
        with pytest.raises(growcore.InvalidArgumentError, match=word):
            tracker.update(g, 1, np.arange(4.0), **kwargs)
    with pytest.raises(growcore.InvalidArgumentError, match="fitness"):
        tracker.update(g, 1, np.arange(3.0))
    with pytest.raises(growcore.InvalidArgumentError, match=r"fitness\[1\]"):
        tracker.update(g, 1, np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(growcore.OutOfRangeError, match="layer"):
        tracker.update(g, 5)
    assert tracker.to_bytes() == saved
    with pytest.raises(growcore.StateDictError):
        growcore.Senescence.from_bytes(b"\x01\x02junk")
    before = g.copy()
    with pytest.raises(growcore.OutOfRangeError, match="escalated"):
        g.apoptosis(1, 0.0, escalated=[9])
    with pytest.raises(growcore.InvalidArgumentError, match="escalated"):
        g.apoptosis(1, 0.0, escalated=[1], maturity_age=100)
    assert g == before


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 7), st.integers(1, 4), st.lists(st.integers(-3, 3), min_size=28, max_size=28))
def test_diversity_and_redundant_pairs_match_numpy(n, k, values) -> None:
    p = np.array(values[: n * k], float).reshape(n, k)
    norms = np.linalg.norm(p, axis=1)
    unit = np.divide(p, norms[:, None], out=np.zeros_like(p), where=norms[:, None] > 0)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    want = np.where(np.isfinite(cos.max(axis=1)), 1 - cos.max(axis=1), 1.0) if n > 1 else np.ones(1)
    np.testing.assert_allclose(growcore.diversity(p), want, atol=1e-12)
    pairs = growcore.redundant_pairs(p, 0.618034)
    got = sorted(zip(pairs["a"].tolist(), pairs["b"].tolist()))
    assert got == [(i, j) for i in range(n) for j in range(i + 1, n) if cos[i, j] >= 0.618034]
    assert (np.diff(pairs["similarity"]) <= 0).all()


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False).filter(lambda x: abs(x) > 1e-3), min_size=1, max_size=6),
       st.integers(2, 4))
def test_an_exact_duplicate_profile_has_similarity_one_and_diversity_zero(row, copies) -> None:
    p = np.array([row] * copies + [[1.0] + [0.0] * (len(row) - 1)])
    assert (growcore.diversity(p)[:copies] == 0.0).all()
    pairs = growcore.redundant_pairs(p, 1.0)
    assert [(a, b) for a, b in zip(pairs["a"].tolist(), pairs["b"].tolist()) if b < copies] == [
        (i, j) for i in range(copies) for j in range(i + 1, copies)
    ]
    assert (pairs["similarity"] <= 1.0).all()


def test_profile_errors() -> None:
    with pytest.raises(growcore.InvalidArgumentError, match="profiles"):
        growcore.diversity(np.zeros(3))
    with pytest.raises(growcore.InvalidArgumentError, match=r"profiles\[0, 1\]"):
        growcore.diversity(np.array([[0.0, np.inf]]))
    with pytest.raises(growcore.InvalidArgumentError, match="threshold"):
        growcore.redundant_pairs(np.ones((2, 2)), 1.5)


def test_a_state_with_a_non_finite_fitness_sample_is_refused() -> None:
    g = growcore.Graph([2, 2, 1], 1.0, seed=0)
    tracker = growcore.Senescence()
    g.advance(5)
    tracker.update(g, 1, np.array([1234.5, 1.0]))
    data = tracker.to_bytes()
    sample = struct.pack("<d", 1234.5)
    assert data.count(sample) == 1
    for bad in (float("nan"), float("inf")):
        with pytest.raises(growcore.StateDictError, match="not finite"):
            growcore.Senescence.from_bytes(reframed(data.replace(sample, struct.pack("<d", bad))))
    assert growcore.Senescence.from_bytes(data) == tracker


def reframed(data: bytes) -> bytes:
    """``data`` (magic, CRC-32, body) with the CRC-32 of its body recomputed: an edited body
    that reaches the decoder, past the corruption check."""
    body = data[12:]
    return data[:8] + struct.pack("<I", zlib.crc32(body)) + body


OPTS = dict(epsilon=0.1, flat_steps=100, escalate_after=10**6, max_fraction=1.0)


def test_a_smaller_window_keeps_only_the_last_samples() -> None:
    base = np.array([1.0, 2.0, 3.0, 4.0])
    g, shrunk = growcore.Graph([2, 4, 2], 1.0, seed=0), growcore.Senescence()
    for _ in range(5):
        g.advance(10)
        shrunk.update(g, 1, base, window=5, **OPTS)
    fresh_g, fresh = growcore.Graph([2, 4, 2], 1.0, seed=0), growcore.Senescence()
    fresh_g.advance(50)
    for i in range(12):
        g.advance(10)
        fresh_g.advance(10)
        got = shrunk.update(g, 1, base * (1 + i) ** 2, window=3, **OPTS)
        want = fresh.update(fresh_g, 1, base * (1 + i) ** 2, window=3, **OPTS)
    np.testing.assert_allclose(got["slope"], want["slope"])
    assert np.isfinite(got["slope"]).all() and got["senescent"].tolist() == want["senescent"].tolist() == []


@pytest.mark.parametrize("scale", [1e-200, 1e-13, 1e160, 1e300])
def test_the_relative_slope_does_not_depend_on_the_scale_of_fitness(scale: float) -> None:
    slopes = []
    for factor in (1.0, scale):
        g, tracker = growcore.Graph([2, 4, 2], 1.0, seed=0), growcore.Senescence()
        for i in range(5):
            g.advance(10)
            out = tracker.update(g, 1, factor * np.array([1.0, 2.0, 3.0, 4.0]) * (1 + i), window=3,
                                 flat_steps=0, escalate_after=10**6, max_fraction=1.0)
        slopes.append(out["slope"])
        assert out["senescent"].tolist() == []
    np.testing.assert_allclose(slopes[1], slopes[0], rtol=1e-9)
    assert (slopes[0] > 0.1).all()


def test_a_graph_behind_the_tracker_is_refused_and_changes_nothing() -> None:
    g, tracker = growcore.Graph([2, 3, 2], 1.0, seed=0), growcore.Senescence()
    g.advance(10)
    earlier = g.copy()
    g.advance(10)
    tracker.update(g, 1, [1.0, 2.0, 3.0])
    saved = tracker.to_bytes()
    with pytest.raises(growcore.InvalidArgumentError, match=r"graph: its step 10 is before .*step 20"):
        tracker.update(earlier, 1, [1.0, 2.0, 3.0])
    assert tracker.to_bytes() == saved
    assert growcore.Senescence.from_bytes(saved) == tracker


def test_a_state_with_a_repeated_neuron_is_refused() -> None:
    g, tracker = growcore.Graph([2, 4, 2], 1.0, seed=0), growcore.Senescence()
    for i in range(3):
        g.advance(3)
        tracker.update(g, 1, [1.0, 2.0, 3.0, 4.0 + i], window=3)
    data = bytearray(tracker.to_bytes())
    ids = g.ids(1).tolist()
    body = 12  # after the magic and the checksum
    assert data[body + 1] == ids[0]  # entry count, then the first track's id (varints below 128)
    data[body + 1] = ids[1]
    with pytest.raises(growcore.StateDictError, match="not strictly increasing"):
        growcore.Senescence.from_bytes(reframed(bytes(data)))


def test_load_bytes_replaces_the_state_in_place_or_changes_nothing() -> None:
    g = growcore.Graph([3, 4, 2], 1.0, seed=0)
    tracker, other = growcore.Senescence(), growcore.Senescence()
    for step in range(3):
        g.advance(1)
        other.update(g, 1, np.array([1.0, 2.0, 3.0, 4.0]) * step, window=2, flat_steps=0)
    held = tracker
    held.load_bytes(other.to_bytes())
    assert held is tracker and tracker == other
    before = tracker.to_bytes()
    with pytest.raises(growcore.StateDictError):
        tracker.load_bytes(b"\x01\x02junk")
    assert tracker.to_bytes() == before
