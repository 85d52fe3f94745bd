"""The plasticity engine: rules composing on MLPs, CNNs, residual blocks and transformer layers,
masking bound to the optimizer, the transaction, checkpoints and misuse."""

from __future__ import annotations

import copy
import io

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

import growcore  # noqa: E402
from growcore.torch import (  # noqa: E402
    SET,
    Apoptosis,
    GrowingMLP,
    Growth,
    Interval,
    Plasticity,
    RigL,
    Senescence,
    SparseController,
    Static,
    check_event,
)

# ---------------------------------------------------------------------- small models of each kind


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(12, 16)
        self.block = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 16))
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        return self.out(h + self.block(h))


class Transformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(12, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=24, dropout=0.0, batch_first=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.layer(self.inp(x).view(x.shape[0], 1, 16)).view(x.shape[0], 16))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 4))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def growing() -> nn.Module:
    return GrowingMLP([12, 16, 12, 4], density=0.5, skips=[(1, 3)], seed=int(torch.initial_seed()) % 1000)


MODELS = {"mlp": mlp, "cnn": cnn, "residual": Residual, "transformer": Transformer, "growing": growing}
#: The neuron groups the engine should infer in each model.
GROUPS = {
    "mlp": ["0", "2"], "cnn": ["0"], "residual": ["block.0"], "transformer": ["layer.linear1"],
    "growing": ["hidden1", "hidden2"],
}


def batch(kind: str, seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 6, 6, generator=g) if kind == "cnn" else torch.randn(n, 12, generator=g)
    return x, torch.randint(0, 4, (n,), generator=g)


def build(kind: str, rules: list, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS[kind]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=0.01)
    density = 0.5 if any(r.connections for r in rules) and kind != "growing" else None
    engine = Plasticity(model, opt, rules, total_steps=40, density=density, seed=seed, **kwargs)
    return model, opt, engine


def train(model, opt, engine, steps: int, *, order: str = "after", skip: frozenset[int] = frozenset(), seed: int = 0):
    """``order``: engine.step() after or before optimizer.step(); ``skip``: iterations at which
    the user forgets engine.step()."""
    kind = "cnn" if isinstance(model, nn.Sequential) and isinstance(model[0], nn.Conv2d) else "x"
    losses = []
    for i in range(steps):
        x, y = batch(kind, seed + i)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if order == "before" and i not in skip:
            engine.step(loss)
        opt.step()
        if order == "after" and i not in skip:
            engine.step(loss)
        losses.append(loss.item())
        check_invariants(engine, opt)
    return losses


def check_invariants(engine: Plasticity, opt: torch.optim.Optimizer, densities: dict | None = None) -> None:
    """Masks agree with the graph; weights and per-coordinate optimizer state outside them are
    exactly zero; the graph is valid; every event fits its schema; lineage agrees with events."""
    engine.graph.validate()
    for site in engine.sparse_sites:
        mask = site.mask
        assert torch.equal(mask.cpu(), torch.from_numpy(engine.graph.to_dense(*site.block)))
        w = site.matrix(site.weight.detach())
        assert torch.count_nonzero(w[~mask]) == 0, site.name
        for value in opt.state.get(site.weight, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == site.weight.shape:
                assert torch.count_nonzero(site.matrix(value)[~mask]) == 0, site.name
    table = engine.graph.lineage()
    for event in engine.events:
        check_event(event)
        if event["kind"] == "apoptosis":
            assert table["cause"][event["dead"]] != "alive"
            assert table["parent_a"][event["born"]] >= 0 or table["parent_b"][event["born"]] >= 0


# ---------------------------------------------------------------------- sites and groups


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_neuron_groups_are_inferred_on_each_kind_of_model(kind: str) -> None:
    _, _, engine = build(kind, [Apoptosis(interval=2)])
    assert [g.name for g in engine.groups] == GROUPS[kind]
    if kind == "transformer":  # the attention projections are sites of their own
        assert {"layer.self_attn.in_proj_weight", "layer.self_attn.out_proj"} <= {s.name for s in engine.sites}


def test_a_linear_chain_is_the_models_layered_graph() -> None:
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    engine = Plasticity(model, torch.optim.SGD(model.parameters(), lr=0.1), [Apoptosis()], total_steps=10)
    assert engine.graph.layer_sizes == [5, 7, 3] and engine.graph.blocks == [(0, 1), (1, 2)]


def test_explicit_pairs_name_the_groups_and_bad_pairs_are_refused() -> None:
    model = Residual()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Plasticity(model, opt, [Apoptosis()], total_steps=10, pairs=[("inp", "block.0")])
    assert [g.name for g in engine.groups] == ["inp"]
    engine.remove()
    for pairs, words in [
        ([("inp", "nothing")], ["pairs", "'nothing'"]),
        ([("block.0", "out")], ["pairs", "'block.0'", "'out'"]),  # 24 outputs, 16 inputs
        ([("inp", "block.0"), ("inp", "out")], ["pairs", "'inp'"]),
        ("inp", ["pairs"]),
    ]:
        with pytest.raises((growcore.InvalidArgumentError, TypeError)) as e:
            Plasticity(model, opt, [Apoptosis()], total_steps=10, pairs=pairs)
        assert all(w in str(e.value) for w in words), str(e.value)


def test_a_model_without_neuron_groups_is_refused_by_neuron_rules() -> None:
    model = nn.Linear(4, 3)
    with pytest.raises(growcore.InvalidArgumentError, match="pairs="):
        Plasticity(model, torch.optim.SGD(model.parameters(), lr=0.1), [Apoptosis()], total_steps=10)


# ---------------------------------------------------------------------- rules compose


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(MODELS)),
    connection=st.sampled_from([None, "static", "set", "rigl"]),
    apoptosis=st.booleans(),
    senescence=st.booleans(),
    strategy=st.sampled_from(["random", "mutation", "crossover", "function_preserving"]),
    order=st.sampled_from(["before", "after"]),
    skip=st.frozensets(st.integers(0, 7), max_size=2),
    seed=st.integers(0, 3),
    growth=st.booleans(),
)
def test_any_subset_of_rules_keeps_every_invariant(kind, connection, apoptosis, senescence, strategy, order, skip, seed, growth) -> None:
    rules: list = []
    if connection is not None:
        rules.append({"static": Static(), "set": SET(interval=2), "rigl": RigL(interval=2)}[connection])
    if apoptosis:
        rules.append(Apoptosis(interval=2, fraction=0.25, maturity_age=0, strategy=strategy))
    if senescence:
        rules.append(Senescence(interval=2, window=2, flat_steps=0, escalate_after=2, senior_age=0, maturity_age=0, epsilon=1e9, lr_scale=0.5))
    growth = growth and kind == "growing"
    if growth:
        rules.append(Growth(trigger=Interval(3), clone_budget=2, extrema={"high_z": 0.0, "fraction": 0.5}))
    if not rules:
        rules = [Static()]
    model, opt, engine = build(kind, rules, seed)
    nnz = {s.name: engine.graph.block_nnz(*s.block) for s in engine.sites}
    train(model, opt, engine, 8, order=order, skip=skip, seed=seed)
    if not growth:  # (growth adds edges; every other rule keeps each site's count exact)
        assert {s.name: engine.graph.block_nnz(*s.block) for s in engine.sites} == nnz
    assert engine.step_count == 8 - len(skip)
    kinds = {e["kind"] for e in engine.events}
    if connection in ("set", "rigl"):
        assert "rewire" in kinds
    if apoptosis:
        assert "apoptosis" in kinds


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_the_order_of_the_rules_list_does_not_change_the_run(kind: str) -> None:
    runs = []
    for rules in ([RigL(interval=2), Apoptosis(interval=2, maturity_age=0)], [Apoptosis(interval=2, maturity_age=0), RigL(interval=2)]):
        model, opt, engine = build(kind, rules)
        losses = train(model, opt, engine, 6)
        runs.append((losses, engine.graph.to_bytes(), [dict(e) for e in engine.events], copy.deepcopy(model.state_dict())))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]
    for k, v in runs[0][3].items():
        assert torch.equal(v, runs[1][3][k]) if isinstance(v, torch.Tensor) else v == runs[1][3][k], k


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_function_preserving_replacement_keeps_the_output(kind: str) -> None:
    model, opt, engine = build(kind, [Apoptosis(interval=1, fraction=0.5, maturity_age=0)])
    train(model, opt, engine, 1)  # statistics seen
    model.eval()
    x, _ = batch("cnn" if kind == "cnn" else "x", 99)
    # At inputs where every replaced unit sits at its mean activation the output is unchanged:
    # check on a model whose replaced units are constant, by giving them zero incoming weights.
    group = engine.groups[0]
    with torch.no_grad():
        group.producers[0].weight.zero_()
        if group.bias is not None:
            group.bias.fill_(0.3)
    engine.stats_feed[1].reset()
    model.train()
    model(x)  # the statistics of the constant units
    opt.zero_grad()
    model.eval()
    before = model(x).detach()
    model.train()
    engine.step()
    model.eval()
    assert any(e["kind"] == "apoptosis" for e in engine.events)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- masking bound to the optimizer


def test_gradients_are_sparse_before_the_optimizer_and_clipping_sees_them() -> None:
    model, opt, engine = build("mlp", [RigL(interval=100)])
    x, y = batch("x")
    nn.functional.cross_entropy(model(x), y).backward()
    for site in engine.sparse_sites:
        assert torch.count_nonzero(site.matrix(site.weight.grad)[~site.mask]) == 0
    sparse_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
    assert torch.isfinite(sparse_norm)


def test_masks_hold_when_step_is_called_before_the_optimizer_or_forgotten() -> None:
    for order, skip in (("before", frozenset()), ("after", frozenset({1, 2, 3}))):
        model, opt, engine = build("mlp", [SET(interval=2)])
        train(model, opt, engine, 8, order=order, skip=skip)  # checks after every optimizer step


def test_rigl_grows_by_the_dense_gradient_kept_aside() -> None:
    model, opt, engine = build("mlp", [RigL(interval=1, drop_fraction=0.5)])
    x, y = batch("x")
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    site = engine.sparse_sites[0]
    kept = engine._dense_grads[site.name]
    assert torch.count_nonzero(site.matrix(kept)[~site.mask]) > 0  # the dense gradient
    masks = {s.name: s.mask.clone() for s in engine.sparse_sites}
    opt.step()
    events = engine.step()
    grown = site.mask & ~masks[site.name]
    assert events and int(grown.sum()) > 0
    # The grown edges are among the absent positions with the largest dense |gradient|.
    scores = site.matrix(kept).abs()[~masks[site.name]]
    assert float(site.matrix(kept).abs()[grown].min()) >= float(scores.kthvalue(len(scores) - int(grown.sum()) + 1 - 1).values) - 1e-12
    assert not engine._dense_grads


def test_a_step_the_grad_scaler_skipped_defers_the_update() -> None:
    model, opt, engine = build("mlp", [RigL(interval=3)])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    x, y = batch("x")
    kinds = []
    for i in range(6):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if i == 2:  # the due step's gradients overflow: the scaler skips optimizer.step()
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        kinds.append([e["kind"] for e in engine.step(loss)])
        check_invariants(engine, opt)
    assert kinds[2] == ["nonfinite", "deferred"]
    assert kinds[3] == ["rewire"] * 3  # at the next good step, as scheduled for step 3
    assert engine.events[1]["rules"] == ["rigl"]


def test_a_weight_that_turned_nan_is_named_in_an_event() -> None:
    model, opt, engine = build("mlp", [Static()])
    train(model, opt, engine, 1)
    with torch.no_grad():
        model[2].weight.view(-1)[int(engine.sites[1].mask.view(-1).nonzero()[0])] = float("nan")
    x, y = batch("x")
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    kinds = [(e["kind"], e["what"]) for e in engine.step(loss) if e["kind"] == "nonfinite"]
    assert ("nonfinite", "loss") in kinds and ("nonfinite", "2") in kinds


def test_a_non_finite_loss_is_an_event() -> None:
    model, opt, engine = build("mlp", [Static()])
    events = engine.step(float("nan"))
    assert events == [{"kind": "nonfinite", "step": 1, "what": "loss", "value": "NaN"}]
    with pytest.raises(TypeError, match="loss"):
        engine.step("0.5")


# ---------------------------------------------------------------------- the transaction


def test_a_failure_while_plans_are_applied_puts_everything_back(monkeypatch) -> None:
    model, opt, engine = build("mlp", [RigL(interval=2), Apoptosis(interval=2, maturity_age=0), Senescence(interval=2, senior_age=0)])
    train(model, opt, engine, 3)
    x, y = batch("x", 5)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    before = (
        engine.graph.copy(), engine.step_count, len(engine.events), copy.deepcopy(model.state_dict()),
        copy.deepcopy(opt.state_dict()), [s.mask.clone() for s in engine.sparse_sites], engine.rules[2].tracker.to_bytes(),
    )
    import growcore.torch.apoptosis as apoptosis_module

    real = apoptosis_module.replace
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the first group's neurons were replaced
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(apoptosis_module, "replace", failing)
    graph = engine.graph
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.step()
    assert engine.graph is graph and engine.graph == before[0]
    assert engine.step_count == before[1] and len(engine.events) == before[2]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[3][k]), k
    after_opt = opt.state_dict()["state"]
    for i, s in before[4]["state"].items():
        for name, t in s.items():
            assert torch.equal(after_opt[i][name], t), (i, name)
    assert all(torch.equal(s.mask, m) for s, m in zip(engine.sparse_sites, before[5]))
    assert engine.rules[2].tracker.to_bytes() == before[6]


# ---------------------------------------------------------------------- checkpoints


def reference_and_checkpoint(kind: str, rules, steps: int, at: int):
    """(graph bytes, events, model, model state) after ``steps`` uninterrupted steps, and the
    checkpoint (model, optimizer, engine) of a second run saved after ``at`` steps, through
    torch.save and torch.load."""
    model, opt, engine = build(kind, rules())
    train(model, opt, engine, steps)
    ref = (engine.graph.to_bytes(), [dict(e) for e in engine.events], model, model.state_dict())
    model, opt, engine = build(kind, rules())
    train(model, opt, engine, at)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "engine": engine.state_dict()}, buf)
    buf.seek(0)
    engine.remove()
    return ref, torch.load(buf, weights_only=False)


@pytest.mark.parametrize("model_first", [False, True])
def test_resume_is_bit_identical(model_first: bool) -> None:
    """Whether the model's weights are loaded before or after the engine is built."""
    def rules():
        return [RigL(interval=2), Apoptosis(interval=3, maturity_age=0, strategy="crossover"), Senescence(interval=3, senior_age=0, flat_steps=0, escalate_after=3, window=2, epsilon=1e9)]

    ref, saved = reference_and_checkpoint("mlp", rules, 12, 5)
    ref = (ref[0], ref[1], copy.deepcopy(ref[3]))
    if model_first:  # the engine's first masking zeroes edges the checkpoint has: load brings them back
        torch.manual_seed(1)
        model2 = mlp()
        model2.load_state_dict(saved["model"])
        opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2, weight_decay=0.01)
        engine2 = Plasticity(model2, opt2, rules(), total_steps=40, density=0.5, seed=1)
    else:
        model2, opt2, engine2 = build("mlp", rules(), seed=1)  # different initial structure
        model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    engine2.load_state_dict(saved["engine"])
    train(model2, opt2, engine2, 7, seed=5)
    assert engine2.graph.to_bytes() == ref[0] and engine2.events == ref[1]
    for k, v in model2.state_dict().items():
        assert torch.equal(v, ref[2][k]), k


@pytest.mark.parametrize(
    "changed",
    [
        {"rules": [RigL(interval=3)]},
        {"rules": [RigL(interval=2), Apoptosis(strategy="random")]},
        {"density": 0.25},
        {"distribution": "uniform"},
        {"total_steps": 41},
    ],
)
def test_a_checkpoint_is_refused_by_an_engine_built_differently(changed) -> None:
    model, opt, engine = build("mlp", [RigL(interval=2), Apoptosis()])
    state = engine.state_dict()
    engine.remove()
    model = mlp()
    opt = torch.optim.Adam(model.parameters())
    options = {"rules": [RigL(interval=2), Apoptosis()], "density": 0.5, "total_steps": 40, **changed}
    other = Plasticity(model, opt, options.pop("rules"), **options)
    before = other.graph.copy()
    with pytest.raises(growcore.StateDictError, match="state\\['config'\\]"):
        other.load_state_dict(state)
    assert other.graph == before and other.step_count == 0


# ---------------------------------------------------------------------- misuse


def test_misuse_is_refused_naming_the_argument() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(mlp().parameters(), lr=0.1)
    cases = [
        (lambda: Plasticity(model, None, [RigL()], total_steps=10, density=0.5), TypeError, "optimizer"),
        (lambda: Plasticity(model, other, [RigL()], total_steps=10, density=0.5), growcore.InvalidArgumentError, "optimizer: does not hold"),
        (lambda: Plasticity(model, opt, RigL(), total_steps=10, density=0.5), TypeError, "rules"),
        (lambda: Plasticity(model, opt, ["rigl"], total_steps=10, density=0.5), TypeError, "rules"),
        (lambda: Plasticity(model, opt, [RigL(), SET()], total_steps=10, density=0.5), growcore.InvalidArgumentError, "at most one connection rule"),
        (lambda: Plasticity(model, opt, [Apoptosis(), Apoptosis()], total_steps=10), growcore.InvalidArgumentError, "more than once"),
        (lambda: Plasticity(model, opt, [RigL()], total_steps=10), growcore.InvalidArgumentError, "density: required"),
        (lambda: Plasticity(model, opt, [Apoptosis()], total_steps=0), growcore.InvalidArgumentError, "total_steps"),
        (lambda: Plasticity(model, opt, [Apoptosis(groups=["nope"])], total_steps=10), growcore.InvalidArgumentError, "'nope'"),
        (lambda: Apoptosis(fitness="multi"), growcore.InvalidArgumentError, "Lifecycle"),
        (lambda: Apoptosis(interval=0), growcore.InvalidArgumentError, "interval"),
        (lambda: Senescence(lr_scale=2.0), growcore.InvalidArgumentError, "lr_scale"),
    ]
    grown = GrowingMLP([4, 6, 2])
    grown_opt = torch.optim.SGD(grown.parameters(), lr=0.1)
    cases += [
        (lambda: Plasticity(grown, grown_opt, [RigL()], total_steps=10, density=0.5), growcore.InvalidArgumentError, "density: a GrowingMLP brings its own"),
        (lambda: Plasticity(grown, grown_opt, [Apoptosis()], total_steps=10, pairs=[("a", "b")]), growcore.InvalidArgumentError, "pairs: a GrowingMLP"),
    ]
    for make, error, words in cases:
        with pytest.raises(error, match=words):
            make()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_a_second_engine_on_the_same_model_is_refused_until_the_first_is_removed() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = SparseController(model, opt, density=0.5, total_steps=10)
    with pytest.raises(growcore.InvalidArgumentError, match="already managed.*remove"):
        Plasticity(model, opt, [Apoptosis()], total_steps=10)
    first.remove()
    assert not any(m._forward_hooks for m in model.modules())
    Plasticity(model, opt, [Apoptosis()], total_steps=10)


def test_save_and_deepcopy_of_a_model_with_an_engine_attached() -> None:
    model, opt, engine = build("mlp", [RigL(interval=2), Apoptosis(interval=2)])
    train(model, opt, engine, 2)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    twin = copy.deepcopy(model)
    engine.stats_feed[0].reset()
    engine.stats_feed[1].reset()
    for m in (loaded, twin):
        x, y = batch("x")
        nn.functional.cross_entropy(m(x), y).backward()  # runs; feeds nothing of the engine
    assert not engine.stats_feed[0]._sums and not engine.stats_feed[1]._sums
    for name, p in twin.named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[name])


def test_torch_compile_traces_the_statistics_hooks_without_graph_breaks() -> None:
    import torch._dynamo as dynamo

    model, opt, engine = build("mlp", [RigL(interval=2), Apoptosis(interval=2, maturity_age=0)])
    x, y = batch("x")
    dynamo.reset()
    explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    engine.stats_feed[0].reset()
    engine.stats_feed[1].reset()
    compiled = torch.compile(model, backend="eager")  # dynamo's tracing, without code generation
    for _ in range(4):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        engine.step(loss)
        check_invariants(engine, opt)
    assert {"rewire", "apoptosis"} <= {e["kind"] for e in engine.events}
    assert engine.graph.stats(1)["observations"][0] == 4  # the compiled forward fed the statistics


# ---------------------------------------------------------------------- growth in the engine


def growing_rules():
    return [
        RigL(interval=3),
        Apoptosis(interval=3, maturity_age=0, fraction=0.25, strategy="crossover"),
        Growth(trigger=Interval(4), clone_budget=2, extrema={"high_z": 0.0, "fraction": 0.5}),
    ]


def test_rigl_apoptosis_and_growth_compose_on_a_growing_mlp() -> None:
    model, opt, engine = build("growing", growing_rules())
    sizes = model.sizes
    train(model, opt, engine, 12)
    kinds = {e["kind"] for e in engine.events}
    assert {"rewire", "apoptosis", "growth", "clone"} <= kinds
    assert model.sizes != sizes and sum(model.sizes) > sum(sizes)
    assert {s.name for s in engine.sites} == {f"{a}->{b}" for a, b in model.blocks()}
    assert all(p in {id(q) for g in opt.param_groups for q in g["params"]} for p in map(id, model.parameters()))


def test_a_growth_rule_sets_the_saturation_it_grows_by() -> None:
    model = GrowingMLP([4, 6, 2], activation="tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Plasticity(model, opt, [Growth(epsilon=0.2)], total_steps=10)
    assert (engine.stats_feed[0].low, engine.stats_feed[0].high) == pytest.approx(growcore.saturation_thresholds("tanh", 0.2))
    engine.remove()
    engine = Plasticity(model, opt, [Growth(saturation=(-0.5, 0.5))], total_steps=10)
    assert (engine.stats_feed[0].low, engine.stats_feed[0].high) == (-0.5, 0.5)


def test_a_failed_growth_puts_the_model_and_optimizer_back(monkeypatch) -> None:
    model, opt, engine = build("growing", growing_rules())
    train(model, opt, engine, 3)  # the next step grows, rewires and replaces
    x, y = batch("x", 9)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    before = (
        model.sizes, engine.graph.copy(), dict(model.params.items()), [list(g["params"]) for g in opt.param_groups],
        {k: v.detach().clone() for k, v in model.params.items()}, len(engine.events), engine.step_count,
    )

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Growth, "_apply_clones", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.step()
    assert model.sizes == before[0] and engine.graph == before[1]
    assert all(model.params[k] is p for k, p in before[2].items()) and list(model.params) == list(before[2])
    assert [list(g["params"]) for g in opt.param_groups] == before[3]
    for k, v in before[4].items():
        assert torch.equal(model.params[k], v), k
    assert len(engine.events) == before[5] and engine.step_count == before[6]
    check_invariants(engine, opt)
    monkeypatch.undo()
    engine.step()  # the same step goes through now
    assert any(e["kind"] == "growth" and e["step"] == 4 for e in engine.events)


def test_a_growing_run_resumes_bit_identically() -> None:
    ref, saved = reference_and_checkpoint("growing", growing_rules, 10, 5)
    ref = (ref[0], ref[1], {k: v.detach().clone() for k, v in ref[2].params.items()})
    torch.manual_seed(0)
    model2 = growing()
    model2.load_state_dict(saved["model"])  # rebuilds the saved structure
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2, weight_decay=0.01)
    opt2.load_state_dict(saved["opt"])
    engine2 = Plasticity(model2, opt2, growing_rules(), total_steps=40)
    engine2.load_state_dict(saved["engine"])
    train(model2, opt2, engine2, 5, seed=5)
    assert engine2.graph.to_bytes() == ref[0] and engine2.events == ref[1]
    for k, v in ref[2].items():
        assert torch.equal(model2.params[k], v), k
