"""Growing networks: extrema, clones, routes (cross-checked against a Python model of the
rules), the GrowingMLP's resizing, the Grower's events, Braess rollback, triggers, resume."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import growcore
from growcore.torch import GradVariance, Grower, GrowingMLP, Interval, Plateau, make_trigger

# ---------------------------------------------------------------------------- routing vs a model


def reference_routes(g, high, low, radius, per_source, cap, load):
    """The routing rules of Graph.grow written out in Python (no clones, no Katz)."""
    layers = len(g.layer_sizes)
    last_hidden = layers - 2
    fan_in = {l: g.fan_in(l).astype(int).copy() for l in range(layers)}
    received = {l: np.zeros(g.layer_sizes[l], dtype=int) for l in range(layers)}
    ids = {l: g.ids(l) for l in range(layers)}
    dense = {k: g.to_dense(*k) for k in g.blocks}
    added = set()
    sources = sorted(
        ((rank, l, s) for l, slots in high.items() for rank, s in enumerate(slots)), key=lambda x: (x[0], x[1])
    )
    routes = []
    for _, l, s in sources:
        for _ in range(per_source):
            best = None
            for m in range(l + 1, min(l + radius, last_hidden) + 1):
                for t in low.get(m, []):
                    exists = (l, m) in dense and dense[(l, m)][t, s]
                    if exists or (l, m, t, s) in added or (cap is not None and fan_in[m][t] >= cap):
                        continue
                    key = (fan_in[m][t] if load == "fan_in" else received[m][t], ids[m][t])
                    if best is None or key < best[0]:
                        best = (key, m, t)
            if best is None:
                break
            _, m, t = best
            fan_in[m][t] += 1
            received[m][t] += 1
            added.add((l, m, t, s))
            routes.append((l, s, m, t))
    return routes


@st.composite
def routing_cases(draw):
    hidden = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    sizes = [3, *hidden, 2]
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 100))
    g = growcore.Graph(sizes, density, seed=seed)
    if len(sizes) > 3 and draw(st.booleans()):
        g.add_block(1, 3)
        g.add_edges(1, 3, [0], [0])
    high, low = {}, {}
    for l in range(1, len(sizes) - 1):
        roles = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=sizes[l], max_size=sizes[l]))
        order = draw(st.permutations(range(sizes[l])))
        high[l] = [s for s in order if roles[s] == 1]
        low[l] = [s for s in order if roles[s] == 2]
    radius = draw(st.integers(1, 4))
    per_source = draw(st.integers(1, 3))
    cap = draw(st.one_of(st.none(), st.integers(0, 8)))
    load = draw(st.sampled_from(["fan_in", "event"]))
    return g, high, low, radius, per_source, cap, load


@settings(max_examples=150, deadline=None)
@given(routing_cases())
def test_routes_match_the_rules_written_out(case):
    g, high, low, radius, per_source, cap, load = case
    expected = reference_routes(g, high, low, radius, per_source, cap, load)
    before = {k: g.to_dense(*k).copy() for k in g.blocks}
    plan = g.grow(high, low, clone_budget=0, radius=radius, routes_per_source=per_source, fan_in_cap=cap, load=load)
    r = plan["routes"]
    got = list(zip(r["src_layer"].tolist(), r["src_slot"].tolist(), r["dst_layer"].tolist(), r["dst_slot"].tolist()))
    assert got == expected
    for l, s, m, t in got:  # forward, high to low, within the radius, a new edge
        assert 0 < m - l <= radius and s in high[l] and t in low[m]
        assert not ((l, m) in before and before[(l, m)][t, s])
        assert g.to_dense(l, m)[t, s]


def test_routes_respect_the_fan_in_cap_and_balance_loads():
    g = growcore.Graph([2, 6, 5, 2], 0.0, seed=0)
    plan = g.grow({1: list(range(6))}, {2: list(range(5))}, clone_budget=0, routes_per_source=2)
    fan_in = g.fan_in(2)
    assert fan_in.max() - fan_in.min() <= 1 and fan_in.sum() == 12 == len(plan["routes"]["src_slot"])
    g = growcore.Graph([2, 6, 5, 2], 0.0, seed=0)
    g.grow({1: list(range(6))}, {2: list(range(5))}, clone_budget=0, routes_per_source=2, fan_in_cap=1)
    assert g.fan_in(2).max() == 1


# ---------------------------------------------------------------------------- extrema from training


def test_saturated_tanh_neurons_are_high_extrema_after_training_steps():
    model = GrowingMLP([4, 6, 6, 2], activation="tanh", seed=0)
    with torch.no_grad():
        model.bias(1)[2] = 10.0  # pinned at +1
        model.bias(1)[4] = -10.0  # pinned at -1
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    grower = Grower(model, opt, trigger=Interval(1000))
    x = torch.randn(32, 4)
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        grower.step()
    high, low = grower.extrema()
    assert 2 in high[1].tolist() and 4 in low[1].tolist()
    assert 2 not in low[1].tolist() and 4 not in high[1].tolist()


# ---------------------------------------------------------------------------- clones preserve the function


def _trained(sizes, activation="tanh", steps=5, seed=0, optimizer=torch.optim.Adam, **grower_options):
    torch.manual_seed(seed)
    model = GrowingMLP(sizes, activation=activation, seed=seed, density=0.7)
    opt = optimizer(model.parameters(), lr=1e-2)
    grower = Grower(model, opt, trigger=Interval(10_000), seed=seed, **grower_options)
    x, y = torch.randn(64, sizes[0]), torch.randint(0, sizes[-1], (64,))
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        grower.step(loss)
    return model, opt, grower, x, y


def test_non_finite_weights_outside_the_edges_become_exactly_zero():
    model = GrowingMLP([4, 6, 3], density=0.4, seed=0)
    with torch.no_grad():
        for key, mask in model.masks.items():
            w = model.weight(key)
            kept = w.detach().clone()
            w[~mask] = float("nan")
            model.apply_masks()
            assert torch.equal(w[~mask], torch.zeros_like(w[~mask]))  # NaN * 0 stayed NaN
            assert torch.equal(w[mask], kept[mask])


@pytest.mark.parametrize("clone_type", ["vertical", "horizontal", "both"])
def test_clones_leave_the_output_unchanged(clone_type):
    model, _, grower, x, _ = _trained([5, 6, 6, 6, 3], clone_type=clone_type, clone_budget=8, extrema={"q": 0.0}, epsilon=0.9)
    model.eval()
    with torch.no_grad():
        before = model(x)
        events = grower.grow()
        after = model(x)
    clones = [e for e in events if e["kind"] == "clone"]
    assert clones, "the test needs clones"
    if clone_type == "both":
        assert {c["type"] for c in clones} == {"vertical", "horizontal"}
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_a_vertical_clone_copies_the_scaled_incoming_weights():
    model, _, grower, _, _ = _trained([5, 6, 6, 6, 3], clone_type="vertical", clone_budget=1, gain=0.5, extrema={"q": 0.0}, epsilon=0.9)
    src_rows = {a: model.weight((a, 1)).detach().clone() for a, b in model.blocks() if b == 1}
    bias = model.bias(1).detach().clone()
    (clone,) = [e for e in grower.grow() if e["kind"] == "clone"]
    assert (clone["source_layer"], clone["layer"]) == (1, 2)
    s, c = clone["source_slot"], clone["slot"]
    torch.testing.assert_close(model.weight((0, 2))[c], 0.5 * src_rows[0][s])
    assert model.bias(2)[c].item() == pytest.approx(0.5 * bias[s].item())
    for (a, b) in model.blocks():
        if a == 2:
            assert torch.count_nonzero(model.weight((a, b))[:, c]) == 0, "outgoing weights start at zero"
    lineage = model.graph.lineage()
    assert lineage["parent_a"][clone["id"]] == clone["source_id"]


def test_a_horizontal_split_keeps_the_sum_of_outgoing_weights():
    model, _, grower, _, _ = _trained([5, 6, 6, 3], clone_type="horizontal", clone_budget=1, noise=0.1, extrema={"q": 0.0}, epsilon=0.9)
    out_before = model.weight((1, 2)).detach().clone()
    (clone,) = [e for e in grower.grow() if e["kind"] == "clone"]
    s, c = clone["source_slot"], clone["slot"]
    w = model.weight((1, 2)).detach()
    torch.testing.assert_close(w[:, s] + w[:, c], out_before[:, s])
    assert not torch.equal(w[:, s], w[:, c]), "the noise breaks the symmetry"


# ---------------------------------------------------------------------------- optimizer state


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.Adafactor], ids=["adam", "adafactor"])
def test_optimizer_state_of_old_coordinates_survives_growth_untouched(optimizer):
    # Adafactor keeps factored state: row_var (rows, 1) and col_var (1, cols) of a weight.
    model, opt, grower, _, _ = _trained([5, 6, 6, 6, 3], clone_budget=6, extrema={"q": 0.0}, epsilon=0.9, optimizer=optimizer)
    names = list(model.params.keys())
    before = {n: {k: v.clone() for k, v in opt.state[model.params[n]].items()} for n in names}
    shapes = {n: model.params[n].shape for n in names}
    sizes = model.sizes
    events = grower.grow()
    assert model.sizes != sizes
    # A routed edge's coordinate (absent before, present now) restarts at zero, like RigL's growth.
    for e in (e for e in events if e["kind"] == "route"):
        name = f"w{e['src_layer']}_{e['dst_layer']}"
        for old in before.get(name, {}).values():  # not a new block
            if old.shape == shapes[name]:  # per-coordinate state
                old[e["dst_slot"], e["src_slot"]] = 0
    for n in names:
        p = model.params[n]
        state = opt.state[p]
        assert any(p is q for g in opt.param_groups for q in g["params"]), f"{n} left the optimizer"
        for k, old in before[n].items():
            if old.dim() == 0:
                assert torch.equal(state[k], old)
                continue
            region = tuple(slice(0, d) for d in old.shape)
            assert torch.equal(state[k][region], old), f"{n}.{k} changed"
            rest = state[k].clone()
            rest[region] = 0
            assert torch.count_nonzero(rest) == 0, f"{n}.{k}: new coordinates must start at zero"
    # The optimizer keeps working with the grown shapes.
    x = torch.randn(8, 5)
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


# ---------------------------------------------------------------------------- determinism and resume


def _run(steps, seed=0, **options):
    torch.manual_seed(seed)
    model = GrowingMLP([6, 8, 8, 3], activation="relu", seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    grower = Grower(model, opt, trigger=Interval(4), seed=seed, **options)
    gen = torch.Generator().manual_seed(seed)
    losses = _train(model, opt, grower, gen, steps)
    return model, opt, grower, losses, gen


def _train(model, opt, grower, gen, steps):
    """``steps`` steps on fresh batches drawn from ``gen``; returns the losses."""
    losses = []
    for _ in range(steps):
        x = torch.randn(32, 6, generator=gen)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        grower.step(loss)
        losses.append(loss.item())
    return losses


def test_the_same_seed_gives_the_same_structure_events_and_losses():
    a = _run(20, extrema={"fraction": 0.3, "high_z": 0.0})
    b = _run(20, extrema={"fraction": 0.3, "high_z": 0.0})
    assert a[3] == b[3]
    assert a[2].events == b[2].events
    assert any(e["kind"] == "clone" for e in a[2].events)
    assert a[0].graph == b[0].graph


def test_resume_after_growth_is_bit_identical():
    options = {"extrema": {"fraction": 0.3, "high_z": 0.0}, "katz": True}
    model, opt, grower, _, gen = _run(10, **options)
    assert model.sizes != [6, 8, 8, 3], "the test needs growth before the checkpoint"
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "grower": grower.state_dict(), "gen": gen.get_state()}, buffer)

    expected = _train(model, opt, grower, gen, 10)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    fresh = GrowingMLP([6, 8, 8, 3], activation="relu", seed=123)
    fresh.load_state_dict(saved["model"])
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    fresh_opt.load_state_dict(saved["opt"])
    fresh_grower = Grower(fresh, fresh_opt, trigger=Interval(4), **options)
    fresh_grower.load_state_dict(saved["grower"])
    fresh_gen = torch.Generator()
    fresh_gen.set_state(saved["gen"])
    assert _train(fresh, fresh_opt, fresh_grower, fresh_gen, 10) == expected
    assert fresh.graph == model.graph
    for (n, p), (m, q) in zip(model.named_parameters(), fresh.named_parameters()):
        assert n == m and torch.equal(p, q)


def test_a_grown_model_inside_another_module_loads_its_structure():
    model, opt, grower, _, gen = _run(10, extrema={"fraction": 0.3, "high_z": 0.0})
    assert model.sizes != [6, 8, 8, 3], "the test needs growth before the checkpoint"
    outer = torch.nn.Sequential(torch.nn.Identity(), model)
    fresh = torch.nn.Sequential(torch.nn.Identity(), GrowingMLP([6, 8, 8, 3], activation="relu", seed=5))
    fresh.load_state_dict(outer.state_dict())
    assert fresh[1].graph == model.graph and fresh[1].sizes == model.sizes
    assert all(torch.equal(fresh[1].masks[k], model.masks[k]) for k in model.blocks())
    x = torch.randn(4, 6)
    assert torch.equal(fresh(x), outer(x))
    bad = outer.state_dict()
    bad["1._extra_state"] = {**bad["1._extra_state"], "activation": "tanh"}
    with pytest.raises(growcore.StateDictError, match=r"state\['1._extra_state'\]\['activation'\]"):
        fresh.load_state_dict(bad)


def test_a_state_dict_from_another_model_is_refused():
    model = GrowingMLP([4, 5, 2], activation="relu")
    other = GrowingMLP([4, 5, 2], activation="tanh")
    with pytest.raises(growcore.StateDictError, match="activation"):
        other.load_state_dict(model.state_dict())
    bad = dict(model.state_dict())
    del bad["_extra_state"]
    with pytest.raises(growcore.StateDictError, match="_extra_state"):
        model.load_state_dict(bad)


def test_a_failed_load_leaves_the_model_as_it_was():
    saved = GrowingMLP([4, 6, 2], activation="relu").state_dict()
    del saved["params.b1"]
    model = GrowingMLP([4, 3, 2], activation="relu")
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    graph = model.graph.copy()
    with pytest.raises(RuntimeError, match="b1"):
        model.load_state_dict(saved)
    assert model.graph == graph and model.sizes == [4, 3, 2]
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    x = torch.randn(5, 4)
    assert model(x).shape == (5, 2)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda e: e.update(order=[n for n in e["order"] if n != "w1_2"]), "order"),
        (lambda e: e.update(order=e["order"] + ["w0_2"]), "order"),
        (lambda e: e.update(order=e["order"][:-1] + e["order"][:1]), "order"),
        (lambda e: e.update(order="b1"), "order"),
    ],
)
def test_a_malformed_parameter_order_is_refused_and_the_model_kept(corrupt, match):
    saved = GrowingMLP([4, 6, 5, 2], activation="relu", seed=1).state_dict()
    extra = dict(saved["_extra_state"])
    corrupt(extra)
    saved["_extra_state"] = extra
    model = GrowingMLP([4, 3, 3, 2], activation="relu")
    graph, names = model.graph.copy(), list(model.params)
    with pytest.raises(growcore.StateDictError, match=match):
        model.load_state_dict(saved)
    assert model.graph == graph and list(model.params) == names
    assert model(torch.randn(5, 4)).shape == (5, 2)


@pytest.mark.parametrize("sizes", [[5, 6, 2], [4, 6, 3]])
def test_a_state_dict_with_other_inputs_or_outputs_is_refused(sizes):
    saved = GrowingMLP(sizes, activation="relu").state_dict()
    model = GrowingMLP([4, 6, 2], activation="relu")
    with pytest.raises(growcore.StateDictError, match="inputs and the outputs"):
        model.load_state_dict(saved)
    assert model.sizes == [4, 6, 2]


# ---------------------------------------------------------------------------- Braess guard


def test_a_harmful_growth_event_is_rolled_back_to_the_exact_previous_structure():
    model, opt, grower, x, y = _trained(
        [5, 6, 6, 6, 3], steps=6, clone_budget=4, extrema={"q": 0.0}, epsilon=0.9, braess={"window": 3, "threshold": 0.0}
    )
    structure = {k: model.graph.to_dense(*k).copy() for k in model.blocks()}
    sizes = model.sizes
    events = grower.grow()
    grown = events[0]
    assert grown["clones"] > 0 and model.sizes != sizes
    rolled = []
    for step in range(3):  # losses after the event made worse on purpose
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        rolled += grower.step(loss + 100.0)
    (rollback,) = [e for e in rolled if e["kind"] == "rollback"]
    assert rollback["clones_removed"] == grown["clones"] and rollback["event_step"] == grown["step"]
    assert model.sizes == sizes
    assert sorted(model.blocks()) == sorted(structure)
    for k, mask in structure.items():
        assert np.array_equal(model.graph.to_dense(*k), mask), k
    assert [tuple(p.shape) for p in opt.param_groups[0]["params"]] == [tuple(p.shape) for p in model.parameters()]


def test_a_helpful_growth_event_is_kept_and_growth_waits_for_the_verdict():
    model, opt, grower, x, y = _trained([5, 6, 6, 3], steps=4, extrema={"q": 0.0}, epsilon=0.9, braess={"window": 3, "threshold": 0.5})
    grower.trigger = Interval(1)
    grower.grow()
    sizes = model.sizes
    seen = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        seen += grower.step(loss * 0.0)
    assert not any(e["kind"] in ("rollback", "growth") for e in seen), "no growth while the guard is pending"
    assert model.sizes == sizes


def _pending_grower():
    """A grower with a Braess verdict pending (one loss of its window seen)."""
    model, opt, grower, x, y = _trained([5, 6, 6, 3], steps=4, extrema={"q": 0.0}, epsilon=0.9, braess={"window": 3, "threshold": 0.5})
    grower.grow()
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    grower.step(loss)
    assert grower._pending is not None and len(grower._pending["after"]) == 1
    return model, opt, grower, x, y


def test_a_saved_grower_state_does_not_change_as_training_goes_on():
    model, opt, grower, x, y = _pending_grower()
    saved = grower.state_dict()
    frozen = copy.deepcopy(saved)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    grower.step(loss)
    assert len(grower._pending["after"]) == 2
    assert saved == frozen


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda p: p.pop("after"),
        lambda p: p.update(after=[1.0, "x"]),
        lambda p: p.update(after=None),
        lambda p: p.update(before="high"),
        lambda p: p.update(step=1.5),
        lambda p: p["plan"].pop("routes"),
        lambda p: p["plan"]["clones"].update(id=[1.5] * len(p["plan"]["clones"]["id"])),
        lambda p: p["plan"]["clones"]["id"].append(7),
        lambda p: p["plan"].update(new_blocks=[(1,)]),
    ],
)
def test_a_malformed_pending_verdict_is_refused_and_nothing_changes(corrupt):
    model, opt, grower, x, y = _pending_grower()
    saved = grower.state_dict()
    corrupt(saved["pending"])
    before = copy.deepcopy(grower.state_dict())
    trigger = grower.trigger.state_dict()
    with pytest.raises(growcore.StateDictError, match="pending"):
        grower.load_state_dict(saved)
    assert grower.state_dict() == before and grower.trigger.state_dict() == trigger


def test_a_failed_rewire_decision_changes_no_block_and_restores_the_graph_in_place():
    from growcore.torch import make_policy

    torch.manual_seed(0)
    model = GrowingMLP([6, 8, 8, 3], density=0.5, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    grower = Grower(model, opt, trigger=Interval(1000), policy=make_policy("rigl", interval=3), total_steps=20)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for step in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if step == 2:  # the update step: the last block's weights diverged, decided after the others
            with torch.no_grad():
                rows, cols = np.nonzero(model.graph.to_dense(2, 3))
                model.weight((2, 3))[rows[0], cols[0]] = float("nan")
            held, graph = model.graph, model.graph.copy()  # a caller's reference, and the state
            masks = {k: m.clone() for k, m in model.masks.items()}
            weights = {k: model.weight(k).detach().clone() for k in model.blocks()}
            with pytest.raises(growcore.NonFiniteError):
                grower.step(loss)
        else:
            grower.step(loss)
    assert grower.step_count == 2 and model.graph is held and held == graph  # put back in place
    assert not any(e["kind"] == "rewire" for e in grower.events)
    for key in model.blocks():
        assert torch.equal(model.masks[key], masks[key]), key
        assert torch.allclose(model.weight(key).detach(), weights[key], rtol=0, atol=0, equal_nan=True), key
    with torch.no_grad():
        model.weight((2, 3))[rows[0], cols[0]] = 0.0
    assert [e["kind"] for e in grower.step(loss)] == ["rewire"] * len(model.blocks())
    assert held.step == 3 and model.graph is held
    for key in model.blocks():  # the masks follow the graph the caller holds
        assert torch.equal(model.masks[key], torch.from_numpy(held.to_dense(*key))), key


def test_a_failed_loss_all_reduce_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under torch.distributed the loss is averaged over the ranks; if that collective fails,
    # the step must not have advanced the clock (it did, outside the rollback).
    import growcore.torch.growth as growth

    model = GrowingMLP([6, 8, 3], density=0.5, seed=0)
    grower = Grower(model, torch.optim.SGD(model.parameters(), lr=0.1), trigger=Interval(1000))

    def fail(values: np.ndarray) -> np.ndarray:
        raise RuntimeError("connection reset by peer")

    monkeypatch.setattr(growth, "is_distributed", lambda: True)
    monkeypatch.setattr(growth, "all_reduce_mean", fail)
    before = model.graph.to_bytes()
    with pytest.raises(RuntimeError, match="connection reset"):
        grower.step(1.0)
    assert grower.step_count == 0 and model.graph.to_bytes() == before


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"radius": 0}, "radius"),
        ({"gain": -0.5}, "gain"),
        ({"fan_in_cap": -1}, "fan_in_cap"),
        ({"clone_type": "diagonal"}, "clone_type"),
        ({"load": "weight"}, "load"),
        ({"saturation": (-2.0, 0.5)}, "low"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"extrema": {"q": 2.0}}, "q"),
        ({"selection": "best"}, "selection"),
        ({"braess": {"window": 0}}, "window"),
        ({"braess": 5}, "braess: expected True"),
        ({"braess": 0}, "braess: expected True"),
        ({"braess": {"threshold": True}}, "threshold"),
        ({"trigger": "interval"}, "trigger"),
        ({"katz": {"bogus": 1}}, "katz.*bogus"),
        ({"katz": {"alpha": "x"}}, "katz"),
        ({"katz": {"direction": "sideways"}}, "katz.*direction"),
    ],
)
def test_bad_grower_options_are_named(options, match):
    model = GrowingMLP([4, 5, 5, 2], activation="tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises((ValueError, TypeError), match=match):  # TypeError: a wrong kind of value
        Grower(model, opt, **options)


@pytest.mark.parametrize("sizes", [[4, 2.5, 2], [4, True, 2], [4, 0, 2], [4, 2], "432", 5, [4, "3", 2]])
def test_bad_growing_mlp_sizes_are_named(sizes):
    with pytest.raises(growcore.InvalidArgumentError, match="sizes"):
        GrowingMLP(sizes)


def test_growing_mlp_sizes_may_be_numpy_integers():
    assert GrowingMLP(np.array([4, 3, 2])).sizes == [4, 3, 2]


def test_bad_graph_growth_input_changes_nothing():
    g = growcore.Graph([3, 4, 4, 2], 0.5, seed=0)
    before = g.to_bytes()
    with pytest.raises(IndexError, match="high key"):
        g.grow({7: [0]}, {})
    with pytest.raises(IndexError, match=r"high\[1\]"):
        g.grow({1: [9]}, {})
    with pytest.raises(ValueError, match=r"high\[0\]"):
        g.grow({0: [0]}, {})
    with pytest.raises(ValueError, match="katz"):
        g.grow({1: [0]}, {}, katz=np.ones(3))
    with pytest.raises(IndexError, match="layer"):
        g.extrema(9)
    with pytest.raises(ValueError, match="activation"):
        g.extrema(1, "gelu")  # type: ignore[arg-type]
    assert g.to_bytes() == before
    with pytest.raises(ValueError, match="high"):
        growcore.saturation_thresholds("sigmoid", low=0.1, high=1.5)


def test_saturation_thresholds_check_epsilon_only_when_a_preset_is_used() -> None:
    # Both thresholds given: epsilon plays no part, so a value no preset accepts is fine.
    assert growcore.saturation_thresholds("tanh", 5.0, low=-0.5, high=0.5) == (-0.5, 0.5)
    with pytest.raises(ValueError, match="epsilon"):
        growcore.saturation_thresholds("tanh", 5.0, low=-0.5)
    assert growcore.saturation_thresholds("sigmoid", 0.1, high=0.8) == (0.1, 0.8)


# ---------------------------------------------------------------------------- triggers


def test_trigger_state_loads_only_into_the_same_trigger_and_must_be_well_formed():
    t = Plateau(window=2, patience=1)
    for loss in [3.0, 2.0, 2.0, 2.0, 2.0]:
        t.update(0, loss, None)
    saved = t.state_dict()
    fresh = Plateau(window=2, patience=1)
    fresh.load_state_dict(dict(saved))
    assert fresh.state_dict() == saved
    for bad, word in [
        ({**saved, "window": 3}, "window"),
        ({**saved, "_losses": ["x"]}, "_losses"),
        ({**saved, "_bad": -1}, "_bad"),
        ({**saved, "_best": "low"}, "_best"),
        ({**saved, "trigger": "interval"}, "trigger"),
    ]:
        target = Plateau(window=2, patience=1)
        with pytest.raises(growcore.StateDictError, match=word):
            target.load_state_dict(bad)
        assert target.state_dict() == Plateau(window=2, patience=1).state_dict()


def test_interval_trigger_fires_on_multiples():
    t = Interval(3)
    assert [t.update(s, None, None) for s in range(1, 8)] == [False, False, True, False, False, True, False]


def test_grad_variance_trigger_fires_on_a_regime_change():
    t = GradVariance(window=4, change=0.5)
    calm = [1.0, 1.1, 0.9, 1.0] * 2
    fired = [t.update(i, None, g) for i, g in enumerate(calm)]
    assert not any(fired)
    wild = [0.1, 3.0, 0.2, 2.5]
    fired = [t.update(i, None, g) for i, g in enumerate(wild)]
    assert fired == [False, False, False, True]


def test_plateau_trigger_follows_reduce_lr_on_plateau():
    t = Plateau(window=2, patience=1, threshold=0.01)
    fired = [t.update(i, loss, None) for i, loss in enumerate([1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])]
    # windows: 1.0 (best), 0.5 (better), 0.5 (bad 1), 0.5 (bad 2 > patience: fire)
    assert fired == [False] * 7 + [True]
    saved = copy.deepcopy(t.state_dict())
    u = make_trigger("plateau", window=2, patience=1, threshold=0.01)
    u.load_state_dict(saved)
    assert u.state_dict() == t.state_dict()
    with pytest.raises(ValueError, match="window"):
        GradVariance(window=0)
    with pytest.raises(ValueError, match="trigger"):
        make_trigger("sometimes")


# ---------------------------------------------------------------------------- Katz guidance and the ablation


def test_random_selection_draws_as_many_neurons_as_the_extrema():
    model, _, grower, _, _ = _trained([5, 8, 8, 3], activation="relu", extrema={"fraction": 0.25, "high_z": 0.0})
    high, low = grower.extrema()
    grower.selection = "random"
    grower._step = 7
    r_high, r_low = grower._random_sets(dict(high), dict(low))
    for layer in high:
        assert len(r_high[layer]) == len(high[layer]) and len(r_low[layer]) == len(low[layer])
        assert not set(r_high[layer].tolist()) & set(r_low[layer].tolist())


def test_katz_guidance_serves_the_most_central_extremum_first():
    model, _, grower, _, _ = _trained([5, 8, 8, 8, 3], activation="relu", katz=True, clone_budget=1, extrema={"fraction": 0.5, "high_z": -10.0})
    high, _ = grower.extrema()
    katz = grower._katz()
    offsets = np.cumsum([0, *model.sizes])
    best = max(((katz[offsets[l] + s], l, s) for l, slots in high.items() for s in slots.tolist()))
    (clone,) = [e for e in grower.grow() if e["kind"] == "clone"]
    assert (clone["source_layer"], clone["source_slot"]) == (best[1], best[2])


def test_the_braess_guard_needs_the_loss():
    model = GrowingMLP([4, 5, 2])
    grower = Grower(model, torch.optim.SGD(model.parameters(), lr=0.1), braess=True)
    with pytest.raises(ValueError, match="loss"):
        grower.step()
    assert grower.step_count == 0


@pytest.mark.parametrize("loss", [torch.ones(3), "0.5x", "0.5", True, object()])
def test_a_bad_loss_is_named_and_the_step_not_counted(loss):
    model = GrowingMLP([4, 5, 2])
    grower = Grower(model, torch.optim.SGD(model.parameters(), lr=0.1), braess=True)
    with pytest.raises(growcore.InvalidArgumentError, match="^loss: expected"):
        grower.step(loss)
    assert grower.step_count == 0 and model.graph.step == 0
    grower.step(np.float32(0.5))
    grower.step(torch.tensor([[0.25]]))
    assert grower.step_count == 2


@pytest.mark.parametrize(
    "kwargs, word",
    [({"total_steps": 0}, "total_steps"), ({"total_steps": -5}, "total_steps"), ({"total_steps": "100"}, "total_steps"),
     ({"total_steps": True}, "total_steps"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"), ({"seed": 1.5}, "seed")],
)
def test_grower_run_options_are_checked_when_given(kwargs, word):
    model = GrowingMLP([4, 5, 2])
    with pytest.raises(growcore.InvalidArgumentError, match=f"^{word}: must be"):
        Grower(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_the_braess_guard_compares_the_window_just_before_each_event():
    torch.manual_seed(0)
    model = GrowingMLP([5, 6, 6, 3], activation="tanh", seed=0, density=0.7)
    grower = Grower(model, torch.optim.SGD(model.parameters(), lr=0.0), trigger=Interval(6),
                    braess={"window": 4, "threshold": 10.0}, extrema={"q": 0.0}, epsilon=0.9)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    befores = {}
    for step in range(1, 13):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grower.step(float(step))  # the loss of step s is s
        if grower._pending is not None and grower._pending["step"] == step:
            befores[step] = grower._pending["before"]
    # Each event's "before" is the mean of the 4 losses before it, a guard in between or not.
    assert befores == {6: 3.5, 12: 9.5}


@pytest.mark.parametrize("policy", ["set", "rigl"])
def test_prune_and_regrow_runs_on_every_block_of_a_growing_network(policy):
    from growcore.torch import make_policy

    torch.manual_seed(0)
    model = GrowingMLP([6, 8, 8, 3], density=0.5, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    grower = Grower(
        model, opt, trigger=Interval(4), policy=make_policy(policy, interval=3, drop_fraction=0.3),
        total_steps=20, extrema={"fraction": 0.3, "high_z": 0.0},
    )
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        grower.step(loss)
    kinds = {e["kind"] for e in grower.events}
    assert {"rewire", "clone"} <= kinds
    rewired = [e for e in grower.events if e["kind"] == "rewire"]
    assert all(e["dropped"] == e["grown"] > 0 for e in rewired), "a rewire keeps each block's edge count"
    for key in model.blocks():  # the masks mirror the graph, and weights outside them are zero
        assert np.array_equal(model.graph.to_dense(*key), model.masks[key].cpu().numpy())
        assert torch.count_nonzero(model.weight(key).detach() * ~model.masks[key]) == 0
    with pytest.raises(ValueError, match="total_steps"):
        Grower(model, opt, policy=make_policy(policy))


def test_misuse_of_a_grower_is_refused_naming_the_argument():
    seq = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    with pytest.raises(TypeError, match="model: expected a GrowingMLP.*Sequential"):
        Grower(seq, torch.optim.SGD(seq.parameters(), lr=0.1))
    model = GrowingMLP([4, 6, 2])
    grower = Grower(model, torch.optim.SGD(model.parameters(), lr=0.1), trigger=Plateau(window=2))
    with pytest.raises(growcore.InvalidArgumentError, match="loss: the plateau trigger"):
        grower.step()
    assert grower.step_count == 0


@pytest.mark.parametrize(
    ("changed", "key"),
    [({"clone_budget": 2}, "grow"), ({"selection": "random"}, "selection"), ({"gain": 0.5}, "gain"), ({"katz": True}, "katz")],
)
def test_a_grower_checkpoint_is_refused_by_a_grower_built_differently(changed, key):
    model = GrowingMLP([4, 6, 2])
    state = Grower(model, torch.optim.SGD(model.parameters(), lr=0.1)).state_dict()
    other = GrowingMLP([4, 6, 2])
    grower = Grower(other, torch.optim.SGD(other.parameters(), lr=0.1), **changed)
    with pytest.raises(growcore.StateDictError, match=rf"state\['config'\]\['{key}'\]"):
        grower.load_state_dict(state)
    same = GrowingMLP([4, 6, 2])
    Grower(same, torch.optim.SGD(same.parameters(), lr=0.1)).load_state_dict(state)
