"""The torch controller: masks, policies, optimizer transplant, statistics, checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import growcore  # noqa: E402
from growcore.torch import SET, RigL, SparseController, Static  # noqa: E402


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


def data(seed: int = 0, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 20, generator=g), torch.randint(0, 4, (n,), generator=g)


def train(model, opt, ctl, steps: int, seed: int = 0) -> list[float]:
    x, y = data(seed)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        ctl.step()
        losses.append(loss.item())
    return losses


def check_sync(model, ctl) -> None:
    """Masks agree with the graph, and every weight outside them is exactly zero."""
    modules = dict(model.named_modules())
    for layer in ctl.layers:
        mask = ctl.masks()[layer.name]
        assert torch.equal(layer.mask.cpu(), torch.from_numpy(ctl.graph.to_dense(*layer.block)))
        w = modules[layer.name].weight
        assert torch.count_nonzero(w.detach()[~mask]) == 0


OPTIMIZERS = {
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.5),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("policy", [Static(), SET(interval=5), RigL(interval=5)])
def test_weights_outside_the_mask_stay_exactly_zero_and_density_is_exact(optimizer, policy) -> None:
    model = mlp()
    opt = OPTIMIZERS[optimizer](model.parameters())
    ctl = SparseController(model, opt, density=0.2, total_steps=60, policy=policy, distribution="uniform")
    nnz = {l.name: ctl.graph.block_nnz(*l.block) for l in ctl.layers}
    for _ in range(6):
        train(model, opt, ctl, 10)
        check_sync(model, ctl)
        assert {l.name: ctl.graph.block_nnz(*l.block) for l in ctl.layers} == nnz
        assert {l.name: int(l.mask.sum()) for l in ctl.layers} == nnz
    changed = sum(e["dropped"] for e in ctl.events)
    assert (changed > 0) == (policy.name != "static")
    assert all(e["dropped"] == e["grown"] for e in ctl.events)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_non_finite_weights_outside_the_mask_become_exactly_zero(dtype, channels_last) -> None:
    # An inf gradient at an absent edge makes Adam write inf or NaN there; masking by
    # multiplication left NaN (0 * inf), so the weight was not zero outside the mask.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).to(dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ctl = SparseController(model, opt, density=0.3, total_steps=10, policy=Static(), stats=False)
    with torch.no_grad():
        for layer, poison in zip(ctl.layers, (float("nan"), float("inf"))):
            w = layer.weight
            kept = w.detach().clone()
            outside = ~ctl.masks()[layer.name]
            values = torch.full((int(outside.sum()),), poison, dtype=dtype)
            values[::2] = -poison  # negative ones too
            w[outside] = values
            ctl.apply_masks()
            assert torch.equal(w[outside], torch.zeros_like(w[outside]))
            assert not torch.signbit(w[outside]).any()  # +0.0, not -0.0
            inside = ctl.masks()[layer.name]
            assert torch.equal(w[inside], kept[inside])


def test_rigl_grows_the_top_gradient_absent_edges_and_drops_the_smallest_weights() -> None:
    model = nn.Linear(6, 5, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # the step itself changes nothing
    ctl = SparseController(model, opt, density=0.5, total_steps=100, policy=RigL(interval=1, decay="constant", drop_fraction=0.2), stats=False)
    mask = ctl.layers[0].mask.clone()
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.permutation(30).reshape(5, 6).astype(np.float32) + 1.0)
    g = torch.from_numpy(rng.permutation(30).reshape(5, 6).astype(np.float32) - 15.0)
    with torch.no_grad():
        model.weight.copy_(w * mask)
    model.weight.grad = g.clone()
    opt.step()
    (event,) = ctl.step()
    count = round(0.2 * 15)
    assert event["dropped"] == event["grown"] == count
    present = np.flatnonzero(mask.numpy())
    absent = np.flatnonzero(~mask.numpy())
    want_drop = present[np.argsort(w.numpy().ravel()[present])[:count]]
    want_grow = absent[np.argsort(-np.abs(g.numpy().ravel()[absent]))[:count]]
    after = ctl.layers[0].mask.numpy().ravel()
    assert not after[want_drop].any() and after[want_grow].all()
    assert after.sum() == 15
    # Grown weights start at zero.
    assert torch.count_nonzero(model.weight.detach().view(-1)[torch.as_tensor(want_grow)]) == 0


def test_candidates_reduced_on_the_device_give_the_same_plan() -> None:
    plans = []
    for reduce in (False, True):
        model = mlp(3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        ctl = SparseController(model, opt, density=0.3, total_steps=40, policy=RigL(interval=4), seed=1)
        ctl.reduce_on_device = reduce
        train(model, opt, ctl, 20)
        plans.append([l.mask.clone() for l in ctl.layers])
    for a, b in zip(*plans):
        assert torch.equal(a, b)


@pytest.mark.parametrize("regrow", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_device_candidates_follow_the_cores_tie_rule(seed, regrow) -> None:
    # Magnitudes with many ties at the cut: torch.topk keeps any of the tied positions, the core
    # the smallest (row, col); the device path must hand the core the same ones.
    from growcore.torch.rewire import decide_rewire

    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(1, 4, (30, 40), generator=gen).float()
    g = torch.randint(0, 3, (30, 40), generator=gen).float()
    policy = RigL(regrow_dropped=regrow)
    plans = []
    for on_device in (False, True):
        graph = growcore.Graph([40, 30], 0.3, seed=seed)
        mask = torch.from_numpy(graph.to_dense(0, 1))
        graph.advance(1)
        plans.append(decide_rewire(graph, (0, 1), w * mask, g, mask, 50, policy, reduce_on_device=on_device))
    for key in plans[0]:
        np.testing.assert_array_equal(plans[0][key], plans[1][key], err_msg=key)


def test_set_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        ctl = SparseController(model, opt, density=0.25, total_steps=50, policy=SET(interval=5), seed=seed)
        train(model, opt, ctl, 30)
        return [l.mask.clone() for l in ctl.layers]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_optimizer_state_of_changed_coordinates_is_zeroed_in_place(optimizer) -> None:
    model = mlp()
    opt = OPTIMIZERS[optimizer](model.parameters())
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=10), stats=False)
    train(model, opt, ctl, 9)
    before = [l.mask.clone() for l in ctl.layers]
    states = {id(s) for st in opt.state.values() for s in st.values() if isinstance(s, torch.Tensor)}
    train(model, opt, ctl, 1)  # step 10: an update
    for layer, old in zip(ctl.layers, before):
        changed = (old != layer.mask).view_as(layer.weight)
        assert changed.any()
        for key, value in opt.state[layer.weight].items():
            if isinstance(value, torch.Tensor) and value.shape == layer.weight.shape:
                assert torch.count_nonzero(value[changed]) == 0, key
    # The optimizer was not rebuilt: the same state tensors.
    assert states == {id(s) for st in opt.state.values() for s in st.values() if isinstance(s, torch.Tensor)}


def test_resume_is_bit_identical() -> None:
    def fresh():
        model = mlp(1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
        ctl = SparseController(model, opt, density=0.2, total_steps=40, policy=SET(interval=3), seed=5)
        return model, opt, ctl

    model, opt, ctl = fresh()
    straight = train(model, opt, ctl, 40)
    masks = [l.mask.clone() for l in ctl.layers]

    model, opt, ctl = fresh()
    first = train(model, opt, ctl, 17)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ctl": ctl.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    model, opt, ctl = fresh()
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    ctl.load_state_dict(saved["ctl"])
    rest = train(model, opt, ctl, 23)
    assert first + rest == straight
    assert all(torch.equal(a, l.mask) for a, l in zip(masks, ctl.layers))


def test_bad_checkpoints_raise_and_change_nothing() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.2, total_steps=10, policy=SET(interval=2))
    good = ctl.state_dict()
    before = ctl.graph.copy()
    bad = [
        {**good, "graph": b"GROWCORE garbage"},
        {k: v for k, v in good.items() if k != "step"},
        {**good, "extra": 1},
        {**good, "version": 99},
        {**good, "layers": ["x"]},
        {**good, "policy": RigL().to_dict()},
        {**good, "step": -1},
        {**good, "graph": growcore.Graph([3, 4]).to_bytes()},
        {**good, "total_steps": "abc"},
        {**good, "total_steps": 11},
        {**good, "total_steps": True},
        {**good, "step": 3},  # the graph was saved at step 0
        "not a dict",
    ]
    for state in bad:
        with pytest.raises(growcore.StateDictError):
            ctl.load_state_dict(state)  # type: ignore[arg-type]
        assert ctl.graph == before and ctl.step_count == 0


def test_checkpoint_fields_of_the_wrong_type_are_named_and_change_nothing() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.2, total_steps=10, policy=SET(interval=2))
    train(model, opt, ctl, 3)
    good = ctl.state_dict()
    other_model = mlp(1)
    other = SparseController(other_model, torch.optim.SGD(other_model.parameters(), lr=0.1), density=0.2, total_steps=10, policy=SET(interval=2), seed=7)
    before = (other.graph.copy(), other.step_count, [l.mask.clone() for l in other.layers])
    bad = [
        ("layers", 5, ["state['layers']", "5"]),
        ("layers", "024", ["state['layers']", "'024'"]),  # compared as ['0', '2', '4'], it passed
        ("layers", [0, 2, 4], ["state['layers']", "[0, 2, 4]", "str"]),
        ("layers", ["00", "2", "4"], ["state['layers']", "'00'"]),
        ("version", True, ["state['version']", "True"]),  # True == 1 passed
        ("version", 1.0, ["state['version']", "1.0"]),
        ("total_steps", 10.0, ["state['total_steps']", "10.0"]),  # 10.0 == 10 passed
        ("step", 3.0, ["state['step']", "3.0"]),
    ]
    for key, value, words in bad:
        with pytest.raises(growcore.StateDictError) as info:
            other.load_state_dict({**good, key: value})
        for word in words:
            assert word in str(info.value), (key, value, str(info.value))
        assert other.graph == before[0] and other.step_count == before[1]
        assert all(torch.equal(a, l.mask) for a, l in zip(before[2], other.layers))
    # numpy integers are integers (e.g. a checkpoint's numbers passed through numpy).
    other.load_state_dict({**good, "version": np.int64(1), "total_steps": np.int64(10), "step": np.int64(3)})
    assert other.graph == ctl.graph and other.step_count == 3 and type(other.state_dict()["step"]) is int


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"density": 0.0}, growcore.InvalidArgumentError, ["density", "0.0"]),
        ({"density": 1.5}, growcore.InvalidArgumentError, ["density", "1.5"]),
        ({"layers": ["nothing*"]}, growcore.InvalidArgumentError, ["layers", "nothing*", "'0'"]),
        ({"dense": ["*"]}, growcore.InvalidArgumentError, ["layers"]),
        ({"layer_density": {"9": 0.5}}, growcore.InvalidArgumentError, ["layer_density", "'9'"]),
        ({"layer_density": {"0": 2.0}}, growcore.InvalidArgumentError, ["layer_density['0']", "2.0"]),
        # A density that rounds a layer's edges to none (20-32-16-4: ERK keeps 1 edge, in '0').
        ({"density": 0.001}, growcore.InvalidArgumentError, ["density: 0.001", "'2' (16 x 32)", "'4' (4 x 16)"]),
        ({"density": 0.001, "distribution": "uniform"}, growcore.InvalidArgumentError, ["density: 0.001", "'4' (4 x 16)"]),
        ({"layer_density": {"4": 0.001}}, growcore.InvalidArgumentError, ["layer_density['4']: 0.001", "'4'"]),
        ({"total_steps": 0}, growcore.InvalidArgumentError, ["total_steps", "0"]),
        ({"distribution": "bogus"}, growcore.InvalidArgumentError, ["distribution", "bogus"]),
        ({"layers": "0"}, TypeError, ["layers", "'0'", "['0']"]),
        ({"density": True}, growcore.InvalidArgumentError, ["density", "True"]),
        ({"total_steps": True}, growcore.InvalidArgumentError, ["total_steps", "True"]),
        ({"dense": "4"}, TypeError, ["dense", "'4'"]),
        # A pattern that matches no layer is named (it was ignored), with the layers there are.
        ({"layers": ["0", "fc9"]}, growcore.InvalidArgumentError, ["layers", "'fc9'", "['0', '2', '4']"]),
        ({"dense": ["fc9"]}, growcore.InvalidArgumentError, ["dense", "'fc9'", "['0', '2', '4']"]),
        ({"dense": ["1"]}, growcore.InvalidArgumentError, ["dense", "'1'", "nn.Linear"]),  # a ReLU
        ({"dense": [4]}, TypeError, ["dense", "4"]),
        ({"layers": [0, 2]}, TypeError, ["layers", "0"]),
        ({"policy": "rigl"}, TypeError, ["policy", "'rigl'", "RigL()"]),
        ({"policy": RigL}, TypeError, ["policy", "RigL()"]),
    ],
)
def test_bad_arguments_name_themselves_and_touch_nothing(kwargs, error, words) -> None:
    model = mlp()
    weights = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    args = {"density": 0.2, "total_steps": 10, **kwargs}
    with pytest.raises(error) as info:
        SparseController(model, opt, **args)
    for word in words:
        assert word in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert not any(m._forward_hooks for m in model.modules())


def test_a_frozen_layer_under_gradient_growth_is_named_and_nothing_changes() -> None:
    model = mlp()
    model[2].weight.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ctl = SparseController(model, opt, density=0.3, total_steps=20, policy=RigL(interval=1))
    before = ctl.graph.copy()
    x, y = data()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    with pytest.raises(growcore.InvalidArgumentError, match=r"'2' is frozen .*dense=\['2'\]"):
        ctl.step()
    assert ctl.graph == before and ctl.step_count == 0


def test_numpy_scalars_are_accepted_as_numbers() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=np.float32(0.25), total_steps=np.int64(30), policy=SET(interval=5))
    ref_model = mlp()
    ref = SparseController(ref_model, torch.optim.SGD(ref_model.parameters(), lr=0.1), density=0.25, total_steps=30, policy=SET(interval=5))
    assert ctl.graph == ref.graph
    assert ctl.state_dict()["total_steps"] == 30 and type(ctl.state_dict()["total_steps"]) is int


def test_density_is_the_total_of_the_layers_under_erk_and_each_layers_under_uniform() -> None:
    # What the density argument documents: 20-32-16-4 has 640 + 512 + 64 = 1216 weights.
    def nnz(**kwargs) -> list[int]:
        model = mlp()
        ctl = SparseController(model, torch.optim.SGD(model.parameters(), lr=0.1), density=0.2, total_steps=10, **kwargs)
        return [ctl.graph.block_nnz(*l.block) for l in ctl.layers]

    erk = nnz()
    assert sum(erk) == round(0.2 * 1216) and erk[2] / 64 > 0.5 > 0.2 > erk[0] / 640  # small layers denser
    assert nnz(distribution="uniform") == [round(0.2 * 640), round(0.2 * 512), round(0.2 * 64)]
    fixed = nnz(layer_density={"0": 0.5})  # left out: the others share round(0.2 * 576)
    assert fixed[0] == 320 and sum(fixed[1:]) == round(0.2 * 576)


def refused_masks(masks: object, error: type[Exception]) -> tuple[str, nn.Module]:
    """The message of the error a controller with these starting masks raises, and the model,
    whose weights it must have left alone."""
    fresh = mlp()
    weights = [p.detach().clone() for p in fresh.parameters()]
    with pytest.raises(error) as info:
        SparseController(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), density=0.2, total_steps=10, masks=masks)  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(weights, fresh.parameters()))
    return str(info.value), fresh


def test_starting_masks_replace_the_random_structure() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    given = torch.rand(32, 20, generator=torch.Generator().manual_seed(0)) < 0.5
    ctl = SparseController(model, opt, density=0.2, total_steps=10, masks={"0": given}, policy=Static())
    assert torch.equal(ctl.layers[0].mask, given)
    assert ctl.graph.block_nnz(0, 1) == int(given.sum())
    check_sync(model, ctl)
    bad = [
        ({"0": torch.ones(20, 32, dtype=torch.bool)}, growcore.InvalidArgumentError, ["masks['0']", "(20, 32)", "(32, 20)"]),
        ({"9": given}, growcore.InvalidArgumentError, ["masks", "'9'"]),
        ({"0": given.float()}, TypeError, ["masks['0']", "bool"]),
        ({"0": torch.zeros(32, 20, dtype=torch.bool)}, growcore.InvalidArgumentError, ["masks['0']", "all False", "dense=['0']"]),
    ]
    for masks, error, words in bad:
        message, _ = refused_masks(masks, error)
        for word in words:
            assert word in message


def test_starting_masks_may_be_arrays_or_lists_and_other_types_are_named() -> None:
    given = torch.rand(32, 20, generator=torch.Generator().manual_seed(0)) < 0.5
    for same in (given.numpy(), given.tolist()):  # array-likes are the tensor they convert to
        fresh = mlp()
        ctl = SparseController(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), density=0.2, total_steps=10, masks={"0": same})
        assert torch.equal(ctl.layers[0].mask, given)
    bad = [
        ([given], ["masks", "mapping", "list"]),  # one mask per layer, not by name
        ({"0": None}, ["masks['0']", "NoneType"]),
        ({"0": "all"}, ["masks['0']", "str"]),
        ({"0": [[True], [True, False]]}, ["masks['0']", "list"]),  # ragged
    ]
    for masks, words in bad:
        message, fresh = refused_masks(masks, TypeError)
        for word in words:
            assert word in message
        assert not any(m._forward_hooks for m in fresh.modules())


def test_layer_selection_overrides_and_conv_blocks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.1, total_steps=20, layer_density={"0": 0.5}, policy=RigL(interval=2), distribution="uniform")
    assert [l.name for l in ctl.layers] == ["0", "3"]
    assert ctl.graph.layer_sizes == [27, 8, 288, 10]
    assert ctl.graph.block_nnz(0, 1) == round(0.5 * 8 * 27)
    assert ctl.graph.block_nnz(2, 3) == round(0.1 * 2880)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(6):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ctl.step()
    check_sync(model, ctl)
    assert ctl.events and ctl.graph.stats(1)["mean"].shape == (8,)
    other = mlp()
    only = SparseController(other, torch.optim.SGD(other.parameters(), lr=0.1), density=0.5, total_steps=5, layers=["2", "4"], dense=["4"])
    assert [l.name for l in only.layers] == ["2"]


def test_statistics_reach_the_graph() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ctl = SparseController(model, opt, density=0.5, total_steps=20, policy=Static())
    x, _ = data()
    train(model, opt, ctl, 3)
    stats = ctl.graph.stats(1)
    with torch.no_grad():
        h = model[0](x)
    assert np.allclose(stats["mean"], h.mean(0).numpy(), atol=0.05)  # an EMA of three close steps
    assert (stats["grad_norm"] > 0).all()
    ctl.remove()
    assert not model[0]._forward_hooks


def snapshot(model, opt, ctl) -> tuple:
    return (
        ctl.graph.copy(),
        ctl.step_count,
        [l.mask.clone() for l in ctl.layers],
        [p.detach().clone() for p in model.parameters()],
        [{k: v.clone() for k, v in s.items() if isinstance(v, torch.Tensor)} for s in opt.state.values()],
        list(ctl.events),
    )


def same(a: tuple, b: tuple) -> bool:
    graph, step, masks, params, states, events = a
    return (
        graph == b[0]
        and step == b[1]
        and all(torch.equal(x, y) for x, y in zip(masks, b[2]))
        and all(torch.equal(x, y) for x, y in zip(params, b[3]))
        and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(states, b[4]))
        and events == b[5]
    )


def test_a_failed_update_changes_nothing() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=2))
    train(model, opt, ctl, 1)
    x, y = data()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    graph = ctl.graph
    masked = snapshot(model, opt, ctl)
    ctl.apply_masks()  # what the failed step still does: re-mask after the optimizer step
    before = snapshot(model, opt, ctl)
    # The last layer's weights turn non-finite: its decision fails after the first two layers'.
    with torch.no_grad():
        for i in (0, 2, 4):  # the optimizer step left them nonzero outside the masks
            model[i].weight.copy_(masked[3][i])
        model[4].weight[0, 0] = float("nan")
    with pytest.raises(growcore.NonFiniteError, match=r"^layer '4': drop_scores\[\d+\]: non-finite value NaN$"):
        ctl.step()
    with torch.no_grad():
        model[4].weight[0, 0] = before[3][4][0, 0]
    assert same(snapshot(model, opt, ctl), before)
    assert ctl.graph is graph  # put back in place: references to it see the restored graph
    # No gradient for the second layer: refused before anything changes.
    model[2].weight.grad = None
    with pytest.raises(RuntimeError, match="'2'.*no gradient"):
        ctl.step()
    assert same(snapshot(model, opt, ctl), before)


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_fails_alike_on_both_paths(on_device: bool, value: float) -> None:
    # On the device path topk never picks a NaN or inf as a smallest |W|, so the core never saw it.
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=1))
    ctl.reduce_on_device = on_device
    x, y = data()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    ctl.apply_masks()
    present = ctl.layers[1].mask.nonzero()[3]
    with torch.no_grad():
        model[2].weight[tuple(present)] = value
    flat = int(present[0]) * model[2].weight.shape[1] + int(present[1])
    before = ctl.graph.copy()
    shown = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}[str(value)]
    with pytest.raises(growcore.NonFiniteError, match=rf"^layer '2': drop_scores\[{flat}\]: non-finite value {shown}$"):
        ctl.step()
    assert ctl.graph == before and ctl.step_count == 0 and not ctl.events


@pytest.mark.parametrize("on_device", [False, True])
def test_non_contiguous_and_float64_weights_decide_alike_on_both_paths(on_device: bool) -> None:
    # A transposed-back (non-contiguous) weight could not be viewed flat; a float64 weight beyond
    # float32's range is inf where the core reads it, on either path.
    model = mlp().double()
    with torch.no_grad():
        model[2].weight = nn.Parameter(model[2].weight.t().contiguous().t())
    assert not model[2].weight.is_contiguous()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=1))
    ctl.reduce_on_device = on_device
    x, y = data()
    nn.functional.cross_entropy(model(x.double()), y).backward()
    opt.step()
    ctl.apply_masks()
    assert [e["kind"] for e in ctl.step()] == ["rewire"] * 3
    present = ctl.layers[1].mask.nonzero()[0]
    with torch.no_grad():
        model[2].weight[tuple(present)] = 1e39
    flat = int(present[0]) * model[2].weight.shape[1] + int(present[1])
    with pytest.raises(growcore.NonFiniteError, match=rf"^layer '2': drop_scores\[{flat}\]: non-finite value inf$"):
        ctl.step()


@pytest.mark.parametrize("on_device", [False, True])
def test_a_non_finite_gradient_names_its_layer_and_changes_nothing(on_device: bool) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=1))
    ctl.reduce_on_device = on_device  # the candidates reduced by torch first, as on an accelerator
    x, y = data()
    absent = (~ctl.layers[1].mask).nonzero()[0]

    def poison(g: torch.Tensor) -> torch.Tensor:  # an absent edge's growth score, from backward
        g = g.clone()
        g[tuple(absent)] = float("inf")
        return g

    # (The engine masks gradients as backward accumulates them and grows by the dense gradient it
    # kept aside, so the value must come from backward, not be written into .grad afterwards.)
    model[2].weight.register_hook(poison)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    before = ctl.graph.copy()
    with pytest.raises(growcore.NonFiniteError, match=r"^layer '2': grow_scores\[\d+\]: non-finite value inf$"):
        ctl.step()
    assert ctl.graph == before and ctl.step_count == 0 and not ctl.events


def test_a_raising_event_callback_leaves_a_complete_step() -> None:
    def on_event(event: dict) -> None:
        raise KeyError("the logger failed")

    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctl = SparseController(model, opt, density=0.3, total_steps=100, policy=RigL(interval=1), on_event=on_event)
    x, y = data()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    with pytest.raises(KeyError, match="the logger failed"):
        ctl.step()
    assert ctl.step_count == 1 and len(ctl.events) == 3  # every layer rewired and recorded
    check_sync(model, ctl)  # and re-masked after the optimizer step
    assert ctl.graph.step == 1


def test_shared_parametrized_and_empty_weights_are_refused_by_name() -> None:
    torch.manual_seed(0)
    enc, dec = nn.Linear(8, 8), nn.Linear(8, 8)
    dec.weight = enc.weight
    tied = nn.Sequential(enc, nn.ReLU(), dec)
    normed = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(8, 16)), nn.ReLU(), nn.Linear(16, 3))
    with pytest.warns(UserWarning):  # torch: "Initializing zero-element tensors is a no-op"
        empty = nn.Sequential(nn.Linear(8, 0), nn.Linear(0, 3))
    for model, words in [(tied, ["'0'", "'2'", "share"]), (normed, ["'0'", "parametrized"]), (empty, ["'0'", "(0, 8)"])]:
        with pytest.raises(growcore.InvalidArgumentError) as info:
            SparseController(model, torch.optim.SGD(model.parameters(), lr=0.1), density=0.5, total_steps=10)
        for word in words:
            assert word in str(info.value)
    # The tied model works with one of the two modules sparsified.
    ctl = SparseController(tied, torch.optim.SGD(tied.parameters(), lr=0.1), density=0.5, total_steps=10, layers=["0"])
    assert ctl.active_params() == int(enc.weight.count_nonzero()) + 16


def test_channels_last_convolutions_train_in_place() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 3))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctl = SparseController(model, opt, density=0.3, total_steps=40, policy=RigL(interval=2), distribution="uniform")
    x = torch.randn(6, 3, 8, 8).to(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (6,))
    for _ in range(6):
        previous = ctl.masks()["0"].clone()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ctl.step()
    conv = model[0].weight
    assert not conv.is_contiguous()  # still channels_last: masked in place
    check_sync(model, ctl)
    assert sum(e["layer"] == "0" for e in ctl.events) == 3
    # The last step was an update: its grown coordinates start at zero, optimizer state too.
    grown = ctl.masks()["0"] & ~previous
    assert grown.any()
    for t in (conv, opt.state[conv]["exp_avg"], opt.state[conv]["exp_avg_sq"]):
        assert torch.count_nonzero(t.detach()[grown]) == 0


@pytest.mark.parametrize("version", [True, 1.0, np.float64(1.0), "1"])
def test_saved_states_refuse_a_version_that_only_compares_equal(version: object) -> None:
    # Shared by the controller, Grower and Lifecycle: True == 1 and 1.0 == 1 passed as version 1.
    from growcore.torch.checkpoint import check_state

    with pytest.raises(growcore.StateDictError, match=r"state\['version'\]: expected 1, got"):
        check_state({"version": version, "step": 0}, {"version", "step"}, 1)
    step = check_state({"version": np.int64(1), "step": np.int64(3)}, {"version", "step"}, 1)
    assert step == 3 and type(step) is int  # so the Grower's and Lifecycle's step counts stay ints


def test_lifecycle_refuses_a_float_version() -> None:
    from growcore.torch import Lifecycle

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    lc = Lifecycle(model, torch.optim.SGD(model.parameters(), lr=0.1), interval=5, fraction=0.2)
    state = lc.state_dict()
    before = lc.graph.copy()
    with pytest.raises(growcore.StateDictError, match=r"state\['version'\]"):
        lc.load_state_dict({**state, "version": float(state["version"])})
    assert lc.graph == before
