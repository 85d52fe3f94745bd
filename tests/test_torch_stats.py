"""Statistics hooks: the host (core) and device (torch) reductions agree, neurons are the right
axis for every module kind, and the controller feeds the kept weights' gradient norms."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from growcore.torch import ActivationStats, SparseController, Static  # noqa: E402

SUMMARIES = ("mean", "sq_mean", "frac_high", "frac_low")


def reference(samples: torch.Tensor, low: float, high: float) -> dict[str, np.ndarray]:
    """Summaries of a (samples, neurons) tensor, in float64."""
    x = samples.double()
    return {
        "mean": x.mean(0).numpy(),
        "sq_mean": (x * x).mean(0).numpy(),
        "frac_high": (x >= high).double().mean(0).numpy(),
        "frac_low": (x <= low).double().mean(0).numpy(),
    }


CASES = {
    # a new module, input shapes of successive forwards, and its outputs as (samples, neurons)
    "linear": (lambda: nn.Linear(6, 5), [(7, 6), (3, 6)], lambda y: y),
    "linear on sequences": (lambda: nn.Linear(6, 5), [(2, 4, 6), (1, 3, 6)], lambda y: y.reshape(-1, 5)),
    "conv": (lambda: nn.Conv2d(2, 4, 3), [(3, 2, 5, 6), (1, 2, 5, 6)], lambda y: y.movedim(1, -1).reshape(-1, 4)),
    # torch also takes one unbatched sample (channels, height, width)
    "conv, unbatched": (
        lambda: nn.Conv2d(2, 4, 3),
        [(2, 5, 6), (1, 2, 5, 6)],
        lambda y: (y if y.dim() == 4 else y[None]).movedim(1, -1).reshape(-1, 4),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_summaries_are_means_over_every_forward_since_the_last_collection(case):
    torch.manual_seed(0)
    make, shapes, as_samples = CASES[case]
    module = make()
    low, high = -0.2, 0.3
    stats = ActivationStats([("m", module)], (low, high))
    inputs = [torch.randn(*s) for s in shapes]
    outputs = [module(x) for x in inputs]
    got = stats.collect({})["m"]
    want = reference(torch.cat([as_samples(y.detach()) for y in outputs]), low, high)
    for key in SUMMARIES:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert stats.collect({}) == {}, "collecting resets the sums"
    module.eval()
    module(inputs[0])
    assert stats.collect({}) == {}, "evaluation passes are not counted"


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_empty_batch_adds_nothing(case):
    # A convolution's hook failed to reshape an empty batch, and a linear layer's summaries
    # became 0/0 = NaN when only empty batches had run.
    torch.manual_seed(0)
    make, shapes, _ = CASES[case]
    module = make()
    stats = ActivationStats([("m", module)], (-0.2, 0.3))
    empty = torch.randn(0, *shapes[-1][1:])  # the last shape of every case is batched
    module(empty)
    assert stats.collect({}) == {}
    module(empty)
    x = torch.randn(*shapes[-1])
    module(x)
    got = stats.collect({})["m"]
    module(x)
    want = stats.collect({})["m"]
    for key in SUMMARIES:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_host_and_device_reductions_agree(case):
    torch.manual_seed(1)
    make, shapes, _ = CASES[case]
    module = make()
    x = torch.randn(*shapes[0])
    host = ActivationStats([("m", module)], (0.0, 0.5))
    module(x)
    device = ActivationStats([], (0.0, 0.5))  # the path taken for tensors off the CPU
    y = module(x).detach()
    if isinstance(module, nn.Conv2d) and y.dim() == 3:
        y = y[None]  # as the hook does before either path: one unbatched sample
    device._add_on_device("m", y, isinstance(module, nn.Conv2d))
    a, b = host.collect({})["m"], device.collect({})["m"]
    host.remove()
    for key in SUMMARIES:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_inputs_of_a_layer_are_its_features():
    torch.manual_seed(2)
    linear = nn.Linear(6, 3)
    stats = ActivationStats([("m", linear)], (0.0, 1.0), on="input")
    x = torch.randn(2, 4, 6)
    linear(x)
    got = stats.collect({})["m"]
    np.testing.assert_allclose(got["mean"], x.reshape(-1, 6).mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_gradient_norms_given_or_computed_from_masked_gradients():
    stats = ActivationStats([])
    g = torch.randn(4, 6)
    mask = torch.rand(4, 6) < 0.5
    out = stats.collect({"a": g, "b": g}, {"a": mask}, grad_norms={"c": np.arange(4)})
    np.testing.assert_allclose(out["a"]["grad_norm"], (g * mask).norm(dim=1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["b"]["grad_norm"], g.norm(dim=1).numpy(), rtol=1e-6)
    assert out["c"]["grad_norm"].dtype == np.float32 and list(out["c"]["grad_norm"]) == [0, 1, 2, 3]


def test_the_controller_feeds_the_kept_weights_gradient_norms():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay put
    ctl = SparseController(model, opt, density=0.4, total_steps=10, policy=Static(), distribution="uniform")
    x, y = torch.randn(16, 12), torch.randint(0, 4, (16,))
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    ctl.step()
    for layer in ctl.layers:
        want = (layer.weight.grad * layer.mask).norm(dim=1).numpy()
        # One observation: the bias-corrected average is the observation itself.
        got = ctl.graph.stats(layer.block[1])["grad_norm"]
        np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=layer.name)
