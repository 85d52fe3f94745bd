"""growcore's SparseController against the plain-torch dense-mask way of rigl-torch
(re-implemented in ``torch_common.py``), as pytest-benchmark groups; the conftest prints the
ratio of medians (plain / growcore, > 1 means growcore is faster).

- one RigL update of an ``nn.Linear(4096, 4096)`` at 10% density, drop fraction 0.3, Adam:
  growcore's ``controller.step()`` at an update step (decision in the core, plan applied to the
  mask, weights and Adam moments, weights re-masked) against the rigl-torch update; weights and
  gradient refilled before each round, outside the timer;
- a whole RigL training run (MLP 784-512-512-10, batch 128, Adam, 300 steps, RigL every 100
  steps), growcore with its statistics on and off against the plain loop.

``benches/torch_table.py`` measures the same with more repeats and prints tables; its training-run
figures are the ones to quote: it interleaves the loops repeat by repeat, while pytest-benchmark
runs all rounds of one test before the next, so a change in the machine's load between tests
shows up in the ratio (on a shared 2-core machine the run groups here have come out anywhere
from 0.9x to 1.16x).

    python -m pytest benches/test_torch_bench.py --benchmark-only
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")  # the `run` extra

from growcore.torch import SparseController  # noqa: E402
from growcore.torch.policies import RigL  # noqa: E402
from torch_common import rigl_torch_update, topk_dense_update  # noqa: E402
from torch_table import DENSITY, FRACTION, Run, _linear_with_adam, _refill  # noqa: E402

UPDATE = "one RigL update, 4096x4096 at 10%, Adam"


@pytest.fixture(scope="module")
def gen():  # -> torch.Generator
    return torch.Generator().manual_seed(1)


def test_update_growcore(benchmark, gen) -> None:
    benchmark.group = UPDATE
    benchmark.extra_info["impl"] = "growcore"
    torch.manual_seed(0)
    layer, opt = _linear_with_adam()
    policy = RigL(interval=1, drop_fraction=FRACTION, decay="constant", end=1.0)
    ctl = SparseController(
        layer, opt, density=DENSITY, total_steps=10**9, policy=policy, distribution="uniform", stats=False
    )
    mask = ctl.layers[0].mask
    nnz = int(mask.sum())

    def setup() -> tuple[tuple, dict]:
        _refill(layer, mask, gen)
        return (), {}

    benchmark.pedantic(ctl.step, setup=setup, rounds=10, warmup_rounds=1)
    assert int(mask.sum()) == nnz == ctl.graph.nnz


@pytest.mark.parametrize(
    ("impl", "peer_update"),
    [
        ("plain torch (rigl-torch's update)", rigl_torch_update),
        ("plain torch, leaner (top-k of the count only)", topk_dense_update),
    ],
)
def test_update_plain_torch(benchmark, gen, impl, peer_update) -> None:
    benchmark.group = UPDATE
    benchmark.extra_info["impl"] = impl
    torch.manual_seed(0)
    layer, opt = _linear_with_adam()
    mask = torch.rand(layer.weight.shape) < DENSITY
    with torch.no_grad():
        layer.weight.mul_(mask)
    nnz = int(mask.sum())

    def setup() -> tuple[tuple, dict]:
        _refill(layer, mask, gen)
        return (), {}

    def update() -> None:
        assert layer.weight.grad is not None
        peer_update(layer.weight, mask, layer.weight.grad, FRACTION, opt)

    benchmark.pedantic(update, setup=setup, rounds=5, warmup_rounds=1)
    assert int(mask.sum()) == nnz


SIZES, BATCH, STEPS = [784, 512, 512, 10], 128, 300


@pytest.mark.parametrize("stats", [True, False], ids=["stats on", "stats off"])
def test_run_growcore(benchmark, stats: bool) -> None:
    benchmark.group = f"RigL training run, MLP 784-512-512-10, {STEPS} steps, growcore {'stats on' if stats else 'stats off'}"
    benchmark.extra_info["impl"] = "growcore"
    kind = "growcore, stats on" if stats else "growcore, stats off"

    def setup() -> tuple[tuple, dict]:
        return (Run(kind, SIZES, BATCH, STEPS),), {}

    benchmark.pedantic(lambda run: run(), setup=setup, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("stats", [True, False], ids=["vs stats on", "vs stats off"])
def test_run_plain(benchmark, stats: bool) -> None:
    benchmark.group = f"RigL training run, MLP 784-512-512-10, {STEPS} steps, growcore {'stats on' if stats else 'stats off'}"
    benchmark.extra_info["impl"] = "plain torch masks + rigl-torch's update"

    def setup() -> tuple[tuple, dict]:
        return (Run("plain", SIZES, BATCH, STEPS),), {}

    benchmark.pedantic(lambda run: run(), setup=setup, rounds=3, warmup_rounds=1)
