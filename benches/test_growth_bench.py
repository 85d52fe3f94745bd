"""Growth decisions against one training step of the same network, as a pytest-benchmark group;
the conftest prints the ratio of medians (training step / growth decisions: how many growth
events fit in the time of one step).

The network: a :class:`GrowingMLP` with four hidden layers of 4096 neurons (784 inputs, 10
outputs, ReLU, 10% density per block), with statistics observed for every hidden layer.

- growcore: one growth event's decisions in the core — ``Graph.extrema`` of the four hidden
  layers and ``Graph.grow`` (clones, with the budget 4, and routes from the high to the low
  extrema, applied to the graph), on a fresh copy of the graph each round (copied outside the
  timer);
- training step: one step of the same network at batch 128 with Adam (forward, backward,
  ``optimizer.step()``, the grower's ``step()`` with its re-masking and statistics).

    python -m pytest benches/test_growth_bench.py --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the `run` extra

import growcore  # noqa: E402
from growcore.torch import Grower, GrowingMLP, Interval  # noqa: E402

GROUP = "growth decisions vs one training step, 784-4096x4-10 at 10%"
SIZES = [784, 4096, 4096, 4096, 4096, 10]


@pytest.fixture(scope="module")
def network():  # -> (model, optimizer, grower)
    torch.manual_seed(0)
    model = GrowingMLP(SIZES, activation="relu", density=0.1, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    grower = Grower(model, opt, trigger=Interval(10**9))
    rng = np.random.default_rng(0)
    for layer in range(1, len(SIZES) - 1):
        n = SIZES[layer]
        mean = rng.gamma(2.0, 0.5, n).astype(np.float32)
        sq = (mean**2 + rng.gamma(2.0, 0.2, n)).astype(np.float32)
        low = np.where(rng.random(n) < 0.05, 0.95, 0.3).astype(np.float32)
        model.graph.observe(layer, mean=mean, sq_mean=sq, frac_high=np.zeros(n, np.float32), frac_low=low)
    return model, opt, grower


def test_growth_decisions_growcore(benchmark, network) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["impl"] = "growcore"
    model, _, _ = network
    data = model.graph.to_bytes()

    def setup() -> tuple[tuple, dict]:
        return (growcore.Graph.from_bytes(data),), {}

    def decide(graph: growcore.Graph) -> dict:
        high, low = {}, {}
        for layer in range(1, len(SIZES) - 1):
            e = graph.extrema(layer, "relu")
            high[layer], low[layer] = e["high"], e["low"]
        return graph.grow(high, low)

    plan = benchmark.pedantic(decide, setup=setup, rounds=5, warmup_rounds=1)
    assert len(plan["clones"]["id"]) == 4 and len(plan["routes"]["src_slot"]) > 0


def test_training_step(benchmark, network) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["impl"] = "one training step"
    model, opt, grower = network
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(128, SIZES[0], generator=gen)
    y = torch.randint(0, SIZES[-1], (128,), generator=gen)

    def step() -> None:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        grower.step(loss)

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
