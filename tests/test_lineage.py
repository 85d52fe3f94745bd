"""growcore.lineage: descendant counts against a brute-force search on lineages made by real
Graph calls, Pearson/Spearman against scipy, the ordering check, filters, pandas, the plot, and
the lineage statistics of Lifecycle."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

import growcore
from growcore import lineage as L

STRATEGIES = ("random", "mutation", "crossover", "function_preserving")


# ---------------------------------------------------------------------- lineages from real calls


def build(ops, seed: int = 0):
    """Runs ``ops`` on a small graph and returns (table, set of (child, parent) succession links)
    as known from the calls made, not from the table."""
    g = growcore.Graph([3, 6, 5, 2], 1.0, seed=seed)
    rng = np.random.default_rng(seed)
    succession: set[tuple[int, int]] = set()
    touched: set[int] = set()  # layers changed in the current step
    for kind, layer, strategy, count, advance in ops:
        # Two calls on one layer in one step can make a breeding link look like succession
        # (documented); the Lifecycle never does that, so neither does this test.
        if layer in touched:
            advance = max(advance, 1)
        if advance:
            g.advance(advance)
            touched.clear()
        touched.add(layer)
        size = g.layer_sizes[layer]
        if kind == "apoptosis":
            plan = g.apoptosis(layer, 0.5, strategy=strategy, maturity_age=0, fitness=rng.normal(size=size))
            for k in range(len(plan["slot"])):
                if plan["strategy"][k] in ("random", "function_preserving"):
                    succession.add((int(plan["born"][k]), int(plan["dead"][k])))
        elif kind == "reset":
            slots = np.flatnonzero(rng.random(size) < 0.4)
            old = g.ids(layer)[slots]
            new = g.reset_neurons(layer, slots)
            succession.update(zip(new.tolist(), old.tolist()))
        elif kind == "add":
            pool = np.arange(g.num_ids)  # any id, dead or alive, any layer
            parents = [rng.choice(pool, size=rng.integers(0, 3), replace=True).tolist() for _ in range(count)]
            g.add_neurons(layer, count, parents=parents)
        elif kind == "remove" and size > 3:
            g.remove_neurons(layer, [int(rng.integers(size))])
    return g.lineage(), succession


def brute_force(table, skip=frozenset()):
    """Distinct descendants per id by depth-first search over the parent columns."""
    kids: dict[int, set[int]] = {}
    for i, a, b in zip(table["id"].tolist(), table["parent_a"].tolist(), table["parent_b"].tolist()):
        for p in {a, b} - {-1}:
            if (i, p) not in skip:
                kids.setdefault(p, set()).add(i)
    out = []
    for i in table["id"].tolist():
        seen: set[int] = set()
        stack = [i]
        while stack:
            for c in kids.get(stack.pop(), ()):
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        out.append(len(seen))
    return np.array(out), kids


ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["apoptosis", "apoptosis", "apoptosis", "reset", "add", "remove"]),
        st.integers(1, 2),  # layer
        st.sampled_from(STRATEGIES + STRATEGIES[1:3]),  # apoptosis strategy; breeding weighted up
        st.integers(1, 3),  # neurons added
        st.integers(0, 3),  # steps advanced first
    ),
    max_size=30,
)


@given(ops=ops_strategy, seed=st.integers(0, 2**16))
def test_descendants_match_a_brute_force_search(ops, seed) -> None:
    table, succession = build(ops, seed)
    expected, kids = brute_force(table)
    assert L.descendants(table).tolist() == expected.tolist()
    indptr, indices = L.children(table)
    assert len(indptr) == len(table["id"]) + 1
    for i in table["id"].tolist():
        assert indices[indptr[i] : indptr[i + 1]].tolist() == sorted(kids.get(i, ()))
    # Without succession links: the links the calls themselves say were replacements.
    bred, _ = brute_force(table, frozenset(succession))
    assert L.descendants(table, succession=False).tolist() == bred.tolist()


def test_a_crossover_grandchild_counts_once() -> None:
    # 0 -> 1, 0 -> 2, and 3 is a crossover of 1 and 2: 0 has three descendants, not four.
    table = {
        "id": np.arange(4), "parent_a": np.array([-1, 0, 0, 1]), "parent_b": np.array([-1, -1, -1, 2]),
    }
    assert L.descendants(table).tolist() == [3, 1, 1, 0]
    indptr, indices = L.children(table)
    assert indptr.tolist() == [0, 2, 3, 4, 4] and indices.tolist() == [1, 2, 3, 3]


def test_succession_links_are_the_replacements() -> None:
    g = growcore.Graph([2, 4, 2], 1.0, seed=3)
    g.advance(2)
    first = g.apoptosis(1, 0.5, strategy="mutation", fitness=[0.0, 1.0, 2.0, 3.0])
    g.advance(2)
    second = g.apoptosis(1, 0.25, strategy="function_preserving", fitness=[3.0, 2.0, 1.0, 0.0])
    table = g.lineage()
    everyone = L.descendants(table)
    bred = L.descendants(table, succession=False)
    # Layer 1 starts with ids 2..5 in slots 0..3. The first call killed ids 2 and 3 and bred
    # their replacements from ids 4 and 5; the second killed id 5 and put a function-preserving
    # newborn, which names id 5 as its parent but inherits nothing from it, in its place.
    assert first["dead"].tolist() == [2, 3] and second["dead"].tolist() == [5]
    mutants = table["parent_a"][first["born"]]
    assert set(mutants.tolist()) <= {4, 5}
    assert table["parent_a"][second["born"][0]] == 5 and table["parent_b"][second["born"][0]] == -1
    for p in (4, 5):
        assert bred[p] == int((mutants == p).sum())
    assert everyone[5] == bred[5] + 1 and everyone[4] == bred[4]


# ---------------------------------------------------------------------- the ordering assumption


def test_a_parent_younger_than_its_child_is_refused() -> None:
    table = {"id": np.arange(3), "parent_a": np.array([-1, 2, -1]), "parent_b": np.full(3, -1)}
    with pytest.raises(growcore.InvalidArgumentError, match=r"neuron 1 has parent_a 2, which is not an older id"):
        L.descendants(table)
    table["parent_a"] = np.array([-1, 1, -1])  # its own parent
    with pytest.raises(growcore.InvalidArgumentError, match="not an older id"):
        L.children(table)


def test_ids_out_of_order_and_lost_parents_are_refused() -> None:
    table = {"id": np.array([0, 2, 1]), "parent_a": np.full(3, -1), "parent_b": np.full(3, -1)}
    with pytest.raises(growcore.InvalidArgumentError, match=r"row 2 has id 1 after id 2"):
        L.descendants(table)
    g = growcore.Graph([2, 3, 2], 1.0)
    g.advance(1)
    g.reset_neurons(1, [0, 1])
    alive = L.lineage_table(g.lineage(), alive_only=True)
    with pytest.raises(growcore.InvalidArgumentError, match=r"parent_a 2, which is not in the table"):
        L.descendants(alive)
    with pytest.raises(growcore.InvalidArgumentError, match=r"missing column\(s\) \['parent_b'\]"):
        L.descendants({"id": np.arange(2), "parent_a": np.full(2, -1)})
    with pytest.raises(growcore.InvalidArgumentError, match="columns differ in length"):
        L.descendants({"id": np.arange(2), "parent_a": np.full(2, -1), "parent_b": np.full(3, -1)})
    with pytest.raises(growcore.InvalidArgumentError, match="'parent_b' must hold integers"):
        L.descendants({"id": np.arange(2), "parent_a": np.full(2, -1), "parent_b": np.full(2, -1.0)})
    with pytest.raises(TypeError, match="table: expected a mapping"):
        L.descendants([1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- correlations


def _scipy(fn, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and returns NaN
        return float(fn(x, y)[0])


values = st.one_of(
    st.integers(-3, 3).map(float),  # many ties
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 3)),
)


@given(pairs=st.lists(st.tuples(values, values), min_size=2, max_size=40))
def test_pearson_and_spearman_match_scipy(pairs) -> None:
    x, y = np.array(pairs).T
    for ours, theirs in ((L.pearson, scipy.stats.pearsonr), (L.spearman, scipy.stats.spearmanr)):
        expected = _scipy(theirs, x, y)
        got = ours(x, y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-9)


def test_correlation_edge_cases_and_errors() -> None:
    assert np.isnan(L.pearson([], [])) and np.isnan(L.spearman([1.0], [2.0]))
    assert L.spearman([1, 2, 2, 3], [1, 5, 5, 9]) == pytest.approx(1.0)
    with pytest.raises(growcore.InvalidArgumentError, match="x and y: lengths differ, 2 and 3"):
        L.pearson([1, 2], [1, 2, 3])
    with pytest.raises(growcore.InvalidArgumentError, match="y: every value must be finite, got nan"):
        L.spearman([1, 2], [1, np.nan])
    with pytest.raises(growcore.InvalidArgumentError, match=r"x: expected a 1-D array, got shape \(1, 2\)"):
        L.pearson([[1, 2]], [1, 2])


def crossover_lineage():
    g = growcore.Graph([2, 8, 2], 1.0, seed=5)
    rng = np.random.default_rng(5)
    for _ in range(6):
        g.advance(3)
        g.apoptosis(1, 0.25, strategy="crossover", fitness=rng.normal(size=8))
    return g


def test_evolutionary_fitness_correlates_descendants_with_the_given_fitness() -> None:
    g = crossover_lineage()
    table = g.lineage()
    counts = L.descendants(table, succession=False)
    hidden = np.flatnonzero(table["layer"] == 1)
    fitness = {int(i): float(np.sin(i)) for i in hidden}
    result = L.evolutionary_fitness(table, fitness)
    assert result["n"] == len(hidden)
    f = np.sin(hidden.astype(float))
    assert result["pearson"] == pytest.approx(scipy.stats.pearsonr(counts[hidden], f)[0])
    assert result["spearman"] == pytest.approx(scipy.stats.spearmanr(counts[hidden], f)[0])
    # The same as an array with NaN for "no value".
    column = np.full(len(table["id"]), np.nan)
    column[hidden] = f
    assert L.evolutionary_fitness(table, column) == result


def test_evolutionary_fitness_leaves_succession_out_by_default() -> None:
    g = growcore.Graph([2, 6, 2], 1.0, seed=1)
    for _ in range(3):
        g.advance(2)
        g.apoptosis(1, 0.5, strategy="random", fitness=np.arange(6.0))
    table = g.lineage()
    hidden = {int(i): float(i) for i in np.flatnonzero(table["layer"] == 1)}
    default = L.evolutionary_fitness(table, hidden)
    assert default["n"] == len(hidden) and np.isnan(default["pearson"]) and np.isnan(default["spearman"])
    counted = L.evolutionary_fitness(table, hidden, succession=True)
    assert np.isfinite(counted["pearson"]) and np.isfinite(counted["spearman"])


def test_evolutionary_fitness_bad_input() -> None:
    table = crossover_lineage().lineage()
    n = len(table["id"])
    with pytest.raises(growcore.InvalidArgumentError, match=f"fitness: neuron id {n + 5} is not in the table"):
        L.evolutionary_fitness(table, {3: 1.0, n + 5: 2.0})
    with pytest.raises(growcore.InvalidArgumentError, match=rf"one value per table row, shape \({n},\), got shape \(3,\)"):
        L.evolutionary_fitness(table, [1.0, 2.0, 3.0])
    with pytest.raises(growcore.InvalidArgumentError, match="neuron 4 has value inf"):
        L.evolutionary_fitness(table, {4: np.inf})
    with pytest.raises(TypeError, match="keys must be int neuron ids, got str 'a'"):
        L.evolutionary_fitness(table, {"a": 1.0})  # type: ignore[dict-item]


def test_death_fitness_reads_apoptosis_events() -> None:
    events = [
        {"kind": "apoptosis", "dead": 4, "fitness": -1.5},
        {"kind": "rewire", "dropped": 3},
        {"kind": "apoptosis", "dead": 7, "fitness": np.float64(-0.5)},
    ]
    assert L.death_fitness(events) == {4: -1.5, 7: -0.5}
    with pytest.raises(growcore.InvalidArgumentError, match=r"events\[0\]: an apoptosis event needs 'dead' and 'fitness'"):
        L.death_fitness([{"kind": "apoptosis", "dead": 1}])


# ---------------------------------------------------------------------- tables


def test_lineage_table_filters_every_column() -> None:
    g = crossover_lineage()
    table = g.lineage()
    table["descendants"] = L.descendants(table)  # extra columns travel with the rows
    hidden = L.lineage_table(table, layer=1)
    assert set(hidden) == set(table)
    assert (hidden["layer"] == 1).all() and len(hidden["id"]) == int((table["layer"] == 1).sum())
    alive = L.lineage_table(table, alive_only=True, layer=[1, 2])
    assert sorted(alive["id"].tolist()) == sorted(g.ids(1).tolist() + g.ids(2).tolist())
    assert alive["descendants"].tolist() == table["descendants"][alive["id"]].tolist()
    assert len(L.lineage_table(table, alive_only=True)["id"]) == g.num_neurons
    with pytest.raises(growcore.OutOfRangeError, match=r"layer: 7 has no neurons in the table \(layers present: \[0, 1, 2\]\)"):
        L.lineage_table(table, layer=7)
    with pytest.raises(TypeError, match="layer: expected an int or a sequence of ints, got float 1.0"):
        L.lineage_table(table, layer=1.0)  # type: ignore[arg-type]
    with pytest.raises(growcore.InvalidArgumentError, match=r"column 'descendants' must be 1-D, got shape \(1, 2\)"):
        L.lineage_table({**table, "descendants": np.zeros((1, 2))})


def test_to_pandas_without_pandas_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` raise ImportError
    with pytest.raises(ImportError, match="to_pandas needs pandas, which growcore does not depend on"):
        L.to_pandas(growcore.Graph([2, 2]).lineage())


def test_to_pandas_passes_every_column(monkeypatch) -> None:
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda columns: ("frame", columns)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    table = growcore.Graph([2, 3]).lineage()
    kind, columns = L.to_pandas(table)
    assert kind == "frame" and list(columns) == list(table)
    assert all(np.array_equal(columns[k], table[k]) for k in table)


# ---------------------------------------------------------------------- the plot


def test_plot_family_tree_writes_a_png(tmp_path: Path) -> None:
    image = pytest.importorskip("matplotlib.image")
    table = crossover_lineage().lineage()
    for name, kwargs in (
        ("all.png", {}),
        ("hidden.png", {"layer": 1, "title": "hidden"}),
        ("few.png", {"max_neurons": 5, "end": 100}),
    ):
        path = L.plot_family_tree(table, tmp_path / name, **kwargs)
        assert path == tmp_path / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert image.imread(path).shape[:2] == (600, 900)
    # A filtered table loses parents: their links are left out instead of raising.
    alive = L.lineage_table(table, alive_only=True)
    assert L.plot_family_tree(alive, tmp_path / "alive.png").stat().st_size > 0


def test_plot_family_tree_bad_input(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    table = crossover_lineage().lineage()
    with pytest.raises(growcore.InvalidArgumentError, match="max_neurons: must be at least 1, got 0"):
        L.plot_family_tree(table, tmp_path / "x.png", max_neurons=0)
    with pytest.raises(TypeError, match="max_neurons: expected an int, got float 2.5"):
        L.plot_family_tree(table, tmp_path / "x.png", max_neurons=2.5)  # type: ignore[arg-type]
    with pytest.raises(growcore.InvalidArgumentError, match="end: must be a non-negative int step, got -1"):
        L.plot_family_tree(table, tmp_path / "x.png", end=-1)
    with pytest.raises(growcore.OutOfRangeError, match="layer: 9 has no neurons"):
        L.plot_family_tree(table, tmp_path / "x.png", layer=9)
    empty = {k: v[:0] for k, v in table.items()}
    with pytest.raises(growcore.InvalidArgumentError, match="no neurons to draw"):
        L.plot_family_tree(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------- Lifecycle


def test_lifecycle_lineage_summary_reports_descendants_and_the_correlation() -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    from growcore.torch import Lifecycle

    def run(strategy):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        lc = Lifecycle(model, opt, interval=4, fraction=0.3, strategy=strategy, maturity_age=4)
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
        for _ in range(40):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            lc.step()
        return lc

    lc = run("crossover")
    summary = lc.lineage_summary()
    table = lc.graph.lineage()
    hidden = np.isin(table["layer"], [1, 2])
    counts = L.descendants(table, succession=False)[hidden]
    assert summary["max_descendants"] == counts.max() >= 1
    assert summary["mean_descendants"] == pytest.approx(counts.mean())
    corr = summary["fitness_correlation"]
    dead = {e["dead"] for e in lc.events}
    assert corr["n"] == len(dead) + 18  # every victim at its death, every living hidden neuron now
    assert -1.0 <= corr["pearson"] <= 1.0 and -1.0 <= corr["spearman"] <= 1.0

    preserving = run("function_preserving").lineage_summary()  # replacements only: no breeding
    assert preserving["max_descendants"] == 0
    assert preserving["fitness_correlation"]["pearson"] is None


def test_the_plot_keeps_families_together() -> None:
    g = growcore.Graph([2, 5, 2], 1.0, seed=2)
    rng = np.random.default_rng(2)
    for strategy in ("random", "mutation", "function_preserving", "crossover"):
        g.advance(2)
        g.apoptosis(1, 0.4, strategy=strategy, fitness=rng.normal(size=5))
    table = g.lineage()
    ids, kids, parents = L._links(table, succession=True)
    rows = np.flatnonzero(table["layer"] == 1)
    chosen = np.isin(ids, rows)
    order = L._family_order(rows, table["layer"], kids, parents, chosen).tolist()
    assert sorted(order) == rows.tolist()
    # Each family is a contiguous run starting at its founder: a neuron's first parent comes
    # before it, and everything between them descends from that parent.
    first = {int(c): int(p) for c, p in zip(kids[::-1], parents[::-1])}  # parent_a links win
    for pos, r in enumerate(order):
        if r in first:
            p = first[r]
            assert order.index(p) < pos
            for between in order[order.index(p) + 1 : pos]:
                chain = between
                while chain in first and chain != p:
                    chain = first[chain]
                assert chain == p
