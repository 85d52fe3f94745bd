"""Per-neuron statistics: observe() against a float64 reference of the contract's formulas."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _model import (
    ACT_FIELDS,
    DEFAULT_CONFIG,
    STAT_KEYS,
    NeuronRef,
    apply_observation,
    assert_stats_close,
    expected_stats,
    num_pattern,
    raises_unchanged,
)
import growcore
from growcore import Graph, InvalidArgumentError, NonFiniteError, OutOfRangeError


def valid_obs(n, rng, act=True, grad=True):
    kw = {}
    if act:
        mean = rng.uniform(-2, 2, size=n)
        kw.update(
            mean=mean,
            sq_mean=mean**2 + rng.uniform(0.05, 2, size=n),
            frac_high=rng.uniform(0, 1, size=n),
            frac_low=rng.uniform(0, 1, size=n),
        )
    if grad:
        kw["grad_norm"] = rng.uniform(0, 3, size=n)
    return kw


def copy_kw(kw):
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in kw.items()}


# ---------------------------------------------------------------------------------------------
# reference comparison


@st.composite
def configs(draw):
    return {
        "decay": draw(st.floats(0.5, 0.999)),
        "fast_decay": draw(st.floats(0.05, 0.95)),
        "alpha": draw(st.floats(-2, 2)),
        "beta": draw(st.floats(-2, 2)),
        "gamma": draw(st.floats(-2, 2)),
        "stagnation_warmup": draw(st.integers(1, 6)),
        "strict": False,
    }


def obs_arrays(n):
    """One draw per call: rows of unit floats scaled to mean [-4, 4], variance [0.01, 4],
    fractions [0, 1] and gradient norms [0, 10]."""
    return hnp.arrays(np.float64, (5, n), elements=st.floats(0, 1)).map(
        lambda u: {
            "mean": 8 * u[0] - 4,
            "var": 0.01 + 3.99 * u[1],
            "frac_high": u[2],
            "frac_low": u[3],
            "grad_norm": 10 * u[4],
        }
    )


@given(
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=2),
    cfg=configs(),
    data=st.data(),
)
def test_observe_matches_reference(sizes, cfg, data):
    g = Graph(sizes, 1.0, stats_config=cfg)
    assert g.stats_config == cfg
    refs = [[NeuronRef() for _ in range(n)] for n in sizes]
    for step in range(data.draw(st.integers(1, 20), label="steps")):
        layer = data.draw(st.integers(0, 1), label="layer")
        group = data.draw(st.sampled_from(["act", "grad", "both"]), label="group")
        o = data.draw(obs_arrays(sizes[layer]))
        kw = {}
        if group in ("act", "both"):
            kw = {
                "mean": o["mean"],
                "sq_mean": o["mean"] ** 2 + o["var"],  # variance of every sample >= 0.01
                "frac_high": o["frac_high"],
                "frac_low": o["frac_low"],
            }
        if group in ("grad", "both"):
            kw["grad_norm"] = o["grad_norm"]
        g.observe(layer, **kw)
        assert apply_observation(refs[layer], cfg, kw) == 0
        got = g.stats(layer)
        assert_stats_close(got, expected_stats(refs[layer], cfg), context=f"step {step} layer {layer}")
        assert np.array_equal(g.fitness(layer), got["fitness"])
    for layer in range(2):  # the other layer was not disturbed
        assert_stats_close(g.stats(layer), expected_stats(refs[layer], cfg), context=f"end layer {layer}")
    assert g.nonfinite_counts == [0, 0]


def test_observe_single_sample_is_bias_corrected_exactly():
    g = Graph([3, 1])
    g.observe(0, mean=[1.0, -2.0, 0.5], sq_mean=[4.0, 5.0, 0.25], frac_high=[0.5, 0.0, 1.0], frac_low=[0.25, 1.0, 0.0])
    s = g.stats(0)
    # one sample: the bias-corrected EMA is the sample itself
    np.testing.assert_allclose(s["mean"], [1.0, -2.0, 0.5], rtol=1e-12)
    np.testing.assert_allclose(s["fast_mean"], [1.0, -2.0, 0.5], rtol=1e-12)
    np.testing.assert_allclose(s["sq_mean"], [4.0, 5.0, 0.25], rtol=1e-12)
    np.testing.assert_allclose(s["variance"], [3.0, 1.0, 0.0], rtol=1e-12, atol=1e-12)
    assert s["observations"].tolist() == [1, 1, 1]
    assert s["grad_observations"].tolist() == [0, 0, 0]
    assert s["grad_norm"].tolist() == [0.0, 0.0, 0.0]
    assert s["stagnation"].tolist() == [0.0, 0.0, 0.0]  # warmup 10 not reached
    np.testing.assert_allclose(s["fitness"], s["variance"], rtol=1e-12)


def test_two_samples_weighting():
    d = 0.99
    g = Graph([1, 1])
    g.observe(0, grad_norm=[1.0])
    g.observe(0, grad_norm=[3.0])
    # m = (1-d)*d*1 + (1-d)*3 ; corrected by 1 - d^2
    expected = ((1 - d) * d * 1.0 + (1 - d) * 3.0) / (1 - d**2)
    assert g.stats(0)["grad_norm"][0] == pytest.approx(expected, rel=1e-12)
    assert g.stats(0)["grad_observations"].tolist() == [2]
    assert g.stats(0)["observations"].tolist() == [0]


def test_inputs_are_cast_to_float32():
    x = 0.1  # not representable: float32(0.1) != 0.1
    g = Graph([1, 1])
    g.observe(0, mean=[x], sq_mean=[1.0], frac_high=[0.0], frac_low=[0.0], grad_norm=[x])
    s = g.stats(0)
    assert s["mean"][0] == pytest.approx(float(np.float32(x)), rel=1e-13)
    assert s["mean"][0] != pytest.approx(x, rel=1e-9)
    assert s["grad_norm"][0] == pytest.approx(float(np.float32(x)), rel=1e-13)


def test_variance_is_clamped_and_stagnation_after_warmup():
    g = Graph([2, 1], stats_config={"stagnation_warmup": 3})
    kw = dict(mean=[2.0, 1.0], sq_mean=[1.0, 3.0], frac_high=[0.5, 0.5], frac_low=[0.5, 0.5], grad_norm=[1.0, 0.0])
    g.observe(0, **kw)
    g.observe(0, **kw)
    s = g.stats(0)
    assert s["variance"][0] == 0.0  # sq_mean < mean**2 -> clamped to 0, never negative
    assert s["stagnation"].tolist() == [0.0, 0.0]  # 2 < warmup 3
    g.observe(0, **kw)
    s = g.stats(0)
    # constant inputs: fast_mean == mean, so stagnation = 1 / (1 + 0) = 1
    np.testing.assert_allclose(s["stagnation"], [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(s["variance"], [0.0, 2.0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s["fitness"], [1.0 + 0.0 - 0.1, 0.0 + 2.0 - 0.1], rtol=1e-6)
    # a step change moves fast_mean away from mean -> stagnation drops below 1
    g.observe(0, **dict(kw, mean=[0.0, 3.0], sq_mean=[1.0, 12.0]))
    s = g.stats(0)
    assert (s["stagnation"] < 0.99).all()


def test_stagnation_warmup_boundary():
    rng = np.random.default_rng(0)
    cfg = dict(DEFAULT_CONFIG, stagnation_warmup=4)
    g = Graph([3, 1], stats_config={"stagnation_warmup": 4})
    refs = [NeuronRef() for _ in range(3)]
    for i in range(6):
        kw = valid_obs(3, rng)
        g.observe(0, **kw)
        apply_observation(refs, cfg, kw)
        s = g.stats(0)
        if i + 1 < 4:
            assert (s["stagnation"] == 0).all()
        else:
            assert (s["stagnation"] > 0).all()
        assert_stats_close(s, expected_stats(refs, cfg))


def test_fitness_uses_current_coefficients():
    rng = np.random.default_rng(1)
    g = Graph([4, 2], stats_config={"stagnation_warmup": 1})
    for _ in range(3):
        g.observe(1, **valid_obs(2, rng))
    s = g.stats(1)
    g.set_stats_config(alpha=2.0, beta=-0.5, gamma=3.0)
    expected = 2.0 * s["grad_norm"] - 0.5 * s["variance"] - 3.0 * s["stagnation"]
    np.testing.assert_allclose(g.fitness(1), expected, rtol=1e-12)
    np.testing.assert_allclose(g.stats(1)["fitness"], expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# non-finite values


NONFINITE = [float("nan"), float("inf"), float("-inf")]
FIELDS = ACT_FIELDS + ("grad_norm",)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bad", NONFINITE)
def test_nonfinite_sample_is_skipped_and_counted(field, bad):
    rng = np.random.default_rng(2)
    cfg = dict(DEFAULT_CONFIG)
    g = Graph([4, 3])
    refs = [NeuronRef() for _ in range(4)]
    kw = valid_obs(4, rng)
    g.observe(0, **kw)
    apply_observation(refs, cfg, kw)
    kw = valid_obs(4, rng)
    kw[field][2] = bad
    g.observe(0, **copy_kw(kw))
    assert apply_observation(refs, cfg, kw) == 1
    assert g.nonfinite_counts == [1, 0]
    s = g.stats(0)
    if field == "grad_norm":
        assert s["observations"].tolist() == [2, 2, 2, 2]
        assert s["grad_observations"].tolist() == [2, 2, 1, 2]
    else:
        assert s["observations"].tolist() == [2, 2, 1, 2]
        assert s["grad_observations"].tolist() == [2, 2, 2, 2]
    assert_stats_close(s, expected_stats(refs, cfg))
    assert np.isfinite(s["fitness"]).all()


def test_nonfinite_counting_is_per_neuron_sample():
    rng = np.random.default_rng(3)
    g = Graph([2, 5])
    kw = valid_obs(5, rng)
    kw["mean"][0] = np.nan
    kw["sq_mean"][0] = np.inf  # same neuron, same activation sample -> counted once
    kw["frac_low"][3] = -np.inf  # another neuron
    kw["grad_norm"][0] = np.nan  # gradient sample of neuron 0 -> counted separately
    g.observe(1, **kw)
    assert g.nonfinite_counts == [0, 3]
    s = g.stats(1)
    assert s["observations"].tolist() == [0, 1, 1, 0, 1]
    assert s["grad_observations"].tolist() == [0, 1, 1, 1, 1]
    g.observe(1, grad_norm=[np.nan] * 5)
    assert g.nonfinite_counts == [0, 8]
    assert g.stats(1)["grad_observations"].tolist() == [0, 1, 1, 1, 1]


def test_float32_overflow_counts_as_nonfinite():
    g = Graph([2, 1])
    g.observe(0, grad_norm=[1e39, 1.0])  # finite in float64, inf in float32
    assert g.nonfinite_counts == [1, 0]
    assert g.stats(0)["grad_observations"].tolist() == [0, 1]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bad", NONFINITE)
def test_strict_nonfinite_raises_and_changes_nothing(field, bad):
    rng = np.random.default_rng(4)
    g = Graph([3, 7], stats_config={"strict": True})
    g.observe(1, **valid_obs(7, rng))
    before = {k: v.copy() for k, v in g.stats(1).items()}
    kw = valid_obs(7, rng)
    kw[field][5] = bad
    err = raises_unchanged(g, lambda: g.observe(1, **kw), NonFiniteError, builtin=ValueError, words=(field,), patterns=(r"\b5\b",))
    assert not isinstance(err, InvalidArgumentError)
    assert g.nonfinite_counts == [0, 0]
    after = g.stats(1)
    for k in STAT_KEYS:
        assert np.array_equal(after[k], before[k]), k


def test_strict_can_be_switched_on_later():
    g = Graph([2, 2])
    g.set_stats_config(strict=True)
    assert g.stats_config["strict"] is True
    with pytest.raises(NonFiniteError):
        g.observe(0, grad_norm=[1.0, np.nan])
    g.set_stats_config(strict=False)
    g.observe(0, grad_norm=[1.0, np.nan])
    assert g.nonfinite_counts == [1, 0]


# ---------------------------------------------------------------------------------------------
# invalid finite values and argument errors


@pytest.mark.parametrize(
    "field, value",
    [("frac_high", 1.5), ("frac_high", -0.25), ("frac_low", 2.0), ("frac_low", -0.5), ("sq_mean", -1.0), ("grad_norm", -3.0)],
)
@pytest.mark.parametrize("strict", [False, True])
def test_invalid_finite_values_rejected(field, value, strict):
    rng = np.random.default_rng(5)
    g = Graph([3, 4], stats_config={"strict": strict})
    g.observe(1, **valid_obs(4, rng))
    kw = valid_obs(4, rng)
    kw[field][1] = value
    raises_unchanged(
        g, lambda: g.observe(1, **kw), InvalidArgumentError, builtin=ValueError, words=(field,), patterns=(num_pattern(value),)
    )


def test_boundary_values_are_valid():
    g = Graph([3, 2])
    g.observe(0, mean=[-5.0, 0.0, 5.0], sq_mean=[0.0, 0.0, 0.0], frac_high=[0.0, 1.0, 0.0], frac_low=[1.0, 0.0, 0.0], grad_norm=[0.0, 0.0, 0.0])
    s = g.stats(0)
    assert s["observations"].tolist() == [1, 1, 1] and s["grad_observations"].tolist() == [1, 1, 1]
    assert s["variance"].tolist() == [0.0, 0.0, 0.0]
    assert g.nonfinite_counts == [0, 0]


@pytest.mark.parametrize("missing", ACT_FIELDS)
def test_activation_group_must_be_complete(missing):
    rng = np.random.default_rng(6)
    g = Graph([3, 2])
    kw = valid_obs(3, rng)
    del kw[missing]
    raises_unchanged(g, lambda: g.observe(0, **kw), InvalidArgumentError, builtin=ValueError)


def test_at_least_one_group_required():
    g = Graph([3, 2])
    raises_unchanged(g, lambda: g.observe(0), InvalidArgumentError, builtin=ValueError)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("n", [2, 4, 0])
def test_wrong_length_rejected(field, n):
    rng = np.random.default_rng(7)
    g = Graph([3, 2])
    kw = valid_obs(3, rng)
    kw[field] = np.resize(kw[field], n)
    raises_unchanged(g, lambda: g.observe(0, **kw), InvalidArgumentError, builtin=ValueError, words=(field,))


def test_observe_layer_out_of_range():
    g = Graph([3, 2])
    raises_unchanged(g, lambda: g.observe(2, grad_norm=[1.0, 1.0]), OutOfRangeError, builtin=IndexError, words=("layer", "2"))
    raises_unchanged(g, lambda: g.observe(-1, grad_norm=[1.0, 1.0]), OutOfRangeError, builtin=IndexError, words=("layer", "-1"))


def test_observe_accepts_lists_and_float32():
    g = Graph([2, 1])
    g.observe(0, mean=[1, 2], sq_mean=np.array([2, 5], dtype=np.float32), frac_high=(0.5, 0.5), frac_low=[0.0, 1.0], grad_norm=[1.0, 2.0])
    s = g.stats(0)
    assert s["mean"].tolist() == [1.0, 2.0] and s["grad_norm"].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------
# statistics follow ids


@given(n=st.integers(2, 7), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_stats_follow_ids_through_remove_reset_add(n, seed, data):
    rng = np.random.default_rng(seed)
    cfg = dict(DEFAULT_CONFIG, stagnation_warmup=2)
    g = Graph([3, n, 2], 0.5, seed=seed % 97, stats_config={"stagnation_warmup": 2})
    refs = [NeuronRef() for _ in range(n)]
    for _ in range(data.draw(st.integers(1, 5))):
        act = bool(rng.integers(2))
        kw = valid_obs(n, rng, act=act, grad=not act or bool(rng.integers(2)))
        g.observe(1, **kw)
        apply_observation(refs, cfg, kw)
    old = g.stats(1)
    old_counts = g.nonfinite_counts

    slots = data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n - 1))
    kept = g.remove_neurons(1, slots)
    assert kept.tolist() == [i for i in range(n) if i not in slots]
    new = g.stats(1)
    for k in STAT_KEYS:
        assert np.array_equal(new[k], old[k][kept]), k
    refs = [refs[i] for i in kept]
    assert g.nonfinite_counts == old_counts

    m = len(kept)
    reset = data.draw(st.lists(st.integers(0, m - 1), unique=True, max_size=m))
    before = g.stats(1)
    g.reset_neurons(1, reset)
    after = g.stats(1)
    for k in STAT_KEYS:
        for i in range(m):
            if i in reset:
                assert after[k][i] == 0, (k, i)
            else:
                assert after[k][i] == before[k][i], (k, i)
    for i in reset:
        refs[i] = NeuronRef()

    g.add_neurons(1, 2)
    refs += [NeuronRef(), NeuronRef()]
    s = g.stats(1)
    for k in STAT_KEYS:
        assert len(s[k]) == m + 2
        assert not s[k][m:].any(), k
    assert_stats_close(s, expected_stats(refs, cfg))

    # the accumulators (not just the reported values) moved with the ids
    kw = valid_obs(m + 2, rng)
    g.observe(1, **kw)
    apply_observation(refs, cfg, kw)
    assert_stats_close(g.stats(1), expected_stats(refs, cfg))


def test_stats_of_other_layers_are_untouched():
    rng = np.random.default_rng(8)
    g = Graph([3, 4, 2])
    g.observe(0, **valid_obs(3, rng))
    g.observe(2, **valid_obs(2, rng))
    s0, s2 = g.stats(0), g.stats(2)
    g.observe(1, **valid_obs(4, rng))
    g.remove_neurons(1, [0, 2])
    g.reset_neurons(1, [0])
    for k in STAT_KEYS:
        assert np.array_equal(g.stats(0)[k], s0[k]) and np.array_equal(g.stats(2)[k], s2[k])


# ---------------------------------------------------------------------------------------------
# configuration


def test_default_stats_config():
    cfg = Graph([2, 2]).stats_config
    assert cfg == DEFAULT_CONFIG
    assert set(cfg) == set(DEFAULT_CONFIG)
    assert type(cfg["strict"]) is bool and type(cfg["stagnation_warmup"]) is int


def test_set_stats_config_updates_only_given_keys():
    g = Graph([2, 2])
    g.set_stats_config(decay=0.95, gamma=0.0)
    assert g.stats_config == dict(DEFAULT_CONFIG, decay=0.95, gamma=0.0)
    g.set_stats_config(stagnation_warmup=1, alpha=-1.5, fast_decay=0.5)
    assert g.stats_config == dict(DEFAULT_CONFIG, decay=0.95, gamma=0.0, stagnation_warmup=1, alpha=-1.5, fast_decay=0.5)
    g.set_stats_config()
    assert g.stats_config["decay"] == 0.95


def test_stats_config_is_a_copy():
    g = Graph([2, 2])
    cfg = g.stats_config
    cfg["decay"] = 0.1
    assert g.stats_config["decay"] == 0.99


def test_constructor_stats_config_is_partial():
    g = Graph([2, 2], stats_config={"fast_decay": 0.8, "strict": True})
    assert g.stats_config == dict(DEFAULT_CONFIG, fast_decay=0.8, strict=True)


def test_decay_from_config_is_used():
    g = Graph([1, 1], stats_config={"decay": 0.5, "fast_decay": 0.25})
    g.observe(0, mean=[1.0], sq_mean=[2.0], frac_high=[0.0], frac_low=[0.0])
    g.observe(0, mean=[3.0], sq_mean=[10.0], frac_high=[0.0], frac_low=[0.0])
    s = g.stats(0)
    assert s["mean"][0] == pytest.approx((0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25), rel=1e-12)
    assert s["fast_mean"][0] == pytest.approx((0.25 * 0.75 * 1 + 0.75 * 3) / (1 - 0.0625), rel=1e-12)


BAD_CONFIG = [
    ("decay", 0.0),
    ("decay", 1.0),
    ("decay", -0.5),
    ("decay", 1.5),
    ("decay", float("nan")),
    ("fast_decay", 0.0),
    ("fast_decay", 1.0),
    ("fast_decay", 2.0),
    ("fast_decay", float("nan")),
    ("stagnation_warmup", 0),
    ("stagnation_warmup", -3),
    ("alpha", float("inf")),
    ("alpha", float("nan")),
    ("beta", float("-inf")),
    ("beta", float("nan")),
    ("gamma", float("inf")),
    ("gamma", float("nan")),
]


@pytest.mark.parametrize("key, value", BAD_CONFIG)
def test_set_stats_config_rejects_invalid_values(key, value):
    g = Graph([2, 2])
    g.set_stats_config(decay=0.9)
    before = g.stats_config
    pats = () if (isinstance(value, float) and math.isnan(value)) else (num_pattern(value),)
    raises_unchanged(
        g, lambda: g.set_stats_config(**{key: value}), InvalidArgumentError, builtin=ValueError, words=(key,), patterns=pats
    )
    assert g.stats_config == before
    # a valid key alongside an invalid one is not applied either
    other = "gamma" if key == "alpha" else "alpha"
    raises_unchanged(g, lambda: g.set_stats_config(**{other: 5.0, key: value}), InvalidArgumentError)
    assert g.stats_config == before


@pytest.mark.parametrize("key, value", BAD_CONFIG)
def test_constructor_rejects_invalid_stats_config(key, value):
    with pytest.raises(InvalidArgumentError):
        Graph([2, 2], stats_config={key: value})


def test_unknown_config_key_rejected():
    g = Graph([2, 2])
    before = g.stats_config
    raises_unchanged(g, lambda: g.set_stats_config(bogus_key=1.0), InvalidArgumentError, builtin=ValueError, words=("bogus_key",))
    raises_unchanged(g, lambda: g.set_stats_config(decay=0.5, bogus_key=1.0), InvalidArgumentError)
    assert g.stats_config == before
    with pytest.raises(InvalidArgumentError):
        Graph([2, 2], stats_config={"bogus_key": 1.0})


# ---------------------------------------------------------------- reductions that feed observe()


@st.composite
def activation_batches(draw):
    """(outer, neurons, inner) float32 batches on a grid of quarters, so values hit the thresholds."""
    neurons = draw(st.integers(1, 30))
    inner = draw(st.sampled_from([1, 1, 3, 17]))
    outer = draw(st.integers(0, 700 if inner == 1 else 60))
    values = draw(hnp.arrays(np.int8, (outer, neurons, inner), elements=st.integers(-8, 8)))
    return values.astype(np.float32) / 4


@given(activation_batches(), st.floats(-2, 2))
def test_add_activation_sums_matches_numpy(x, start):
    sums = np.full((4, x.shape[1]), start)
    added = growcore.add_activation_sums(x, sums, 0.0, 1.0)
    assert added == x.shape[0] * x.shape[2]
    samples = x.transpose(0, 2, 1).reshape(-1, x.shape[1]).astype(np.float64)
    want = start + np.stack([samples.sum(0), (samples**2).sum(0), (samples >= 1).sum(0), (samples <= 0).sum(0)])
    np.testing.assert_allclose(sums, want, rtol=1e-6, atol=1e-6)


def test_add_activation_sums_reads_other_dtypes_and_layouts():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    sums = np.zeros((4, 3))
    growcore.add_activation_sums(x[:, :, ::-1], sums, 5.0, 20.0)  # a non-contiguous float64 view
    np.testing.assert_allclose(sums[0], x.sum((0, 2)))
    np.testing.assert_array_equal(sums[2:], [[0, 0, 4], [4, 2, 0]])  # >= 20, <= 5


@pytest.mark.parametrize(
    ("x", "sums", "low", "high", "error", "words"),
    [
        (np.zeros((2, 3)), np.zeros((4, 3)), 0.0, 1.0, InvalidArgumentError, "x: must be 3-D"),
        (np.zeros((2, 3, 1)), np.zeros((4, 2)), 0.0, 1.0, InvalidArgumentError, "sums: must have shape (4, 3)"),
        (np.zeros((2, 3, 1)), np.zeros((4, 3)), 1.0, 1.0, InvalidArgumentError, "thresholds"),
        (np.zeros((2, 3, 1)), np.zeros((4, 3)), math.nan, 1.0, InvalidArgumentError, "thresholds"),
        (np.zeros((2, 3, 1)), np.zeros((4, 3), dtype=np.float32), 0.0, 1.0, TypeError, "sums"),
        (np.zeros((2, 3, 1)), np.zeros((3, 4)).T, 0.0, 1.0, InvalidArgumentError, "sums: must be C-contiguous"),
        (np.array([[["a"]]]), np.zeros((4, 1)), 0.0, 1.0, TypeError, "x: expected real numbers"),
        ([[[1.0]]], np.zeros((4, 1)), 0.0, 1.0, InvalidArgumentError, "x: must be a numpy array"),
    ],
)
def test_add_activation_sums_rejects_bad_input_and_changes_nothing(x, sums, low, high, error, words):
    before = sums.copy()
    with pytest.raises(error, match=re.escape(words)):
        growcore.add_activation_sums(x, sums, low, high)
    np.testing.assert_array_equal(sums, before)


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_row_norms_match_the_masked_dense_norm(rows, cols, density, seed):
    g = Graph([cols, rows], density=density, seed=seed)
    values = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    want = np.sqrt(((values * g.to_dense(0, 1)).astype(np.float64) ** 2).sum(1))
    norms = g.row_norms(0, 1, values)
    assert norms.dtype == np.float32
    np.testing.assert_allclose(norms, want, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(g.row_norms(0, 1, values.astype(np.float64).tolist()), want, rtol=1e-6)


def test_row_norms_name_a_bad_shape_or_block():
    g = Graph([4, 3, 2], density=0.5, seed=0)
    with pytest.raises(InvalidArgumentError, match=re.escape("values: must have shape (3, 4), got shape (4, 3)")):
        g.row_norms(0, 1, np.zeros((4, 3), np.float32))
    with pytest.raises(growcore.BlockError):
        g.row_norms(0, 2, np.zeros((2, 4), np.float32))
