"""`growcore run` end to end on a tiny subset: table, run folder, JSON summary, determinism, and
clear errors."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from growcore import InvalidArgumentError  # noqa: E402
from growcore.cli import main  # noqa: E402
from growcore.log import growth_curves, read_events, read_metrics  # noqa: E402

TINY = ["--limit", "120", "--epochs", "3", "--hidden", "16", "--interval", "2", "--batch-size", "16", "--quiet"]


def run(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    assert main(["run", *TINY, "--out", str(out), "--json", str(tmp_path / f"{name}.json"), *extra]) == 0
    summary = json.loads((tmp_path / f"{name}.json").read_text())
    assert summary == json.loads((out / "summary.json").read_text())
    return summary


def test_default_comparison_writes_the_run_folder(tmp_path: Path) -> None:
    summary = run(tmp_path, "a")
    out = tmp_path / "a"
    for name in ("events.jsonl", "metrics.jsonl", "run.sqlite", "summary.json", "accuracy.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / "growth.png").exists()  # only grow runs draw it
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["policy"] for r in summary["runs"]] == ["dense", "static", "set", "rigl"]
    assert [r["method"] for r in summary["runs"]] == ["dense", "static", "set", "rigl"]
    for r in summary["runs"]:
        for key in ("policy", "dataset", "seed", "density", "test_accuracy", "test_loss", "train_seconds",
                    "active_params", "total_params", "events"):
            assert key in r
        assert 0.0 <= r["test_accuracy"] <= 100.0
        if r["policy"] == "dense":
            assert r["density"] == 1.0 and r["active_params"] == r["total_params"]
        else:
            assert r["density"] == pytest.approx(0.1, abs=0.01)
            assert r["active_params"] < r["total_params"]
    moved = {r["policy"]: r["events"].get("rewire", 0) for r in summary["runs"]}
    assert moved["static"] == 0 and moved["set"] > 0 and moved["rigl"] > 0
    # Events and metrics agree between the JSON lines and SQLite, and cover every run.
    events = read_events(out)
    assert events == read_events(out, source="sqlite")
    assert {e["run"] for e in events} == {"set-s0", "rigl-s0"}
    assert all(e["dropped"] == e["grown"] for e in events)
    metrics = read_metrics(out)
    assert {m["run"] for m in metrics} == {"dense-s0", "static-s0", "set-s0", "rigl-s0"}
    assert all("density" in m for m in metrics if m["run"] != "dense-s0")


def test_same_seed_same_structure_events_and_losses(tmp_path: Path) -> None:
    a = run(tmp_path, "a", "--policy", "set,rigl")
    b = run(tmp_path, "b", "--policy", "set,rigl")
    strip = lambda s: [{k: v for k, v in r.items() if k != "train_seconds"} for r in s["runs"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert read_events(tmp_path / "a") == read_events(tmp_path / "b")
    c = run(tmp_path, "c", "--policy", "set", "--seed", "1")
    assert read_events(tmp_path / "c") != [e for e in read_events(tmp_path / "a") if e["run"].startswith("set")]


def test_several_seeds_report_mean_and_std(tmp_path: Path) -> None:
    summary = run(tmp_path, "s", "--policy", "static,rigl", "--seeds", "2")
    assert [(r["policy"], r["seed"]) for r in summary["runs"]] == [("static", 0), ("rigl", 0), ("static", 1), ("rigl", 1)]
    rigl = summary["by_policy"]["rigl"]
    accs = [r["test_accuracy"] for r in summary["runs"] if r["policy"] == "rigl"]
    assert rigl["seeds"] == [0, 1]
    assert rigl["test_accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    assert rigl["test_accuracy"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)


def test_apoptosis_reports_turnover_lineage_and_logs_every_replacement(tmp_path: Path) -> None:
    summary = run(tmp_path, "ap", "--policy", "dense,apoptosis", "--strategy", "crossover,function_preserving",
                  "--rate", "0.2", "--epochs", "4")
    assert [r["method"] for r in summary["runs"]] == ["dense", "apoptosis-crossover", "apoptosis-function_preserving"]
    assert set(summary["by_policy"]) == {"dense", "apoptosis-crossover", "apoptosis-function_preserving"}
    events = read_events(tmp_path / "ap")
    for r in summary["runs"][1:]:
        mine = [e for e in events if e["run"] == r["run"]]
        assert r["events"] == {"apoptosis": len(mine)} and len(mine) > 0
        assert r["turnover"] == pytest.approx(len(mine) / 16)
        assert r["lineage"]["neurons_ever"] == 16 + len(mine)
        assert all(e["strategy"] in ("crossover", "mutation", "random", "function_preserving") for e in mine)
    assert "turnover" in summary["by_policy"]["apoptosis-crossover"]
    assert main(["run", *TINY, "--policy", "apoptosis", "--strategy", "magic", "--out", str(tmp_path / "bad")]) == 2


def test_a_combination_of_rules_runs_through_one_engine(tmp_path: Path) -> None:
    summary = run(tmp_path, "combo", "--policy", "rigl,rigl+apoptosis", "--strategy", "crossover", "--rate", "0.2",
                  "--epochs", "4", "--senescence")
    rigl, combo = summary["runs"]
    assert combo["method"] == "rigl+apoptosis-crossover+senescence" and combo["policy"] == "rigl+apoptosis"
    assert combo["density"] == pytest.approx(rigl["density"]) and combo["active_params"] == rigl["active_params"]
    events = [e for e in read_events(tmp_path / "combo") if e["run"] == combo["run"]]
    kinds = Counter(e["kind"] for e in events)
    assert combo["events"] == dict(sorted(kinds.items())) and kinds["rewire"] > 0 and kinds["apoptosis"] > 0
    assert combo["turnover"] == pytest.approx(kinds["apoptosis"] / 16)
    assert combo["edges_moved"] == sum(e["dropped"] for e in events if e["kind"] == "rewire") > 0
    assert (tmp_path / "combo" / "family_tree-rigl+apoptosis-crossover+senescence.png").stat().st_size > 0
    # Deterministic: the same command gives the same events.
    again = run(tmp_path, "combo2", "--policy", "rigl+apoptosis", "--strategy", "crossover", "--rate", "0.2",
                "--epochs", "4", "--senescence")
    assert again["runs"][0]["test_loss"] == combo["test_loss"] and again["runs"][0]["events"] == combo["events"]


def test_growth_rigl_and_apoptosis_run_together_through_one_engine(tmp_path: Path) -> None:
    summary = run(tmp_path, "gra", "--policy", "grow+rigl+apoptosis", "--rate", "0.2", "--epochs", "4",
                  "--start-hidden", "8,8", "--grow-every", "5", "--density", "0.5")
    (r,) = summary["runs"]
    assert r["method"] == "grow+rigl+apoptosis-function_preserving" and r["policy"] == "grow+rigl+apoptosis"
    kinds = Counter(e["kind"] for e in read_events(tmp_path / "gra") if e["run"] == r["run"])
    assert r["events"] == dict(sorted(kinds.items()))
    assert kinds["growth"] > 0 and kinds["rewire"] > 0 and kinds["apoptosis"] > 0
    assert sum(r["layer_sizes"][1:-1]) >= 16 and "growth" in r and r["turnover"] > 0
    assert (tmp_path / "gra" / "growth.png").stat().st_size > 0


def test_senescence_logs_senescence_escalation_and_the_replacement(tmp_path: Path) -> None:
    summary = run(tmp_path, "sen", "--policy", "apoptosis", "--senescence", "--lr-scale", "0.5",
                  "--limit", "200", "--epochs", "8", "--hidden", "40")
    (r,) = summary["runs"]
    assert r["method"] == "apoptosis-function_preserving+senescence"
    events = read_events(tmp_path / "sen")
    kinds = {k: [e for e in events if e["kind"] == k] for k in ("senescence", "escalation", "apoptosis")}
    assert r["events"] == {k: len(v) for k, v in kinds.items() if v}
    assert kinds["senescence"] and kinds["escalation"]
    # Every escalated neuron is replaced at the same event, for senescence.
    replaced = {(e["step"], e["layer"], e["slot"]) for e in kinds["apoptosis"] if e["cause"] == "senescence"}
    assert {(e["step"], e["layer"], e["slot"]) for e in kinds["escalation"]} == replaced
    assert main(["run", *TINY, "--policy", "rigl", "--senescence", "--out", str(tmp_path / "bad")]) == 2


def test_mnist_folder_in_idx_format(tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist-t10k"
    if not shared.is_dir():
        pytest.skip("no shared MNIST copy on this machine")
    summary = run(tmp_path, "m", "--dataset", f"mnist:{shared}", "--policy", "rigl", "--epochs", "1")
    assert summary["dataset"].startswith("mnist") and summary["policy"] == "rigl"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dataset", "mnist:/nonexistent/folder"], ["/nonexistent/folder"]),
        (["--dataset", "cifar"], ["cifar"]),
        (["--density", "0"], ["--density:", "0"]),
        (["--density", "1.5"], ["--density:", "1.5"]),
        (["--policy", "magic"], ["magic"]),
        (["--hidden", "a,b"], ["--hidden", "a,b"]),
        (["--seeds", "0"], ["--seeds"]),
        (["--limit", "0"], ["--limit", "0"]),
        (["--limit", "-1"], ["--limit", "-1"]),
        (["--policy", ",,"], ["--policy", ",,"]),
        (["--policy", "apoptosis", "--strategy", ","], ["--strategy"]),
        (["--policy", "dense,rigl", "--interval", "0"], ["--interval", "0"]),
        (["--policy", "dense,set", "--drop-fraction", "2"], ["--drop-fraction:", "2"]),
        (["--policy", "dense,apoptosis", "--rate", "2"], ["--rate:", "2"]),
        (["--policy", "apoptosis", "--senescence", "--lr-scale", "-1"], ["--lr-scale:", "-1"]),
        (["--lr", "-1"], ["--lr:", "-1"]),
        (["--lr", "0"], ["--lr:", "0"]),
        (["--lr", "inf"], ["--lr:", "inf"]),
        (["--lr", "nan"], ["--lr:", "nan"]),
        (["--hidden", "8,,8"], ["--hidden", "empty item", "'8,,8'"]),
        (["--hidden", "8,"], ["--hidden", "empty item", "'8,'"]),
        (["--policy", "dense,,rigl"], ["--policy", "empty item", "'dense,,rigl'"]),
        (["--policy", "dense", "--strategy", "bogus"], ["--strategy", "bogus"]),
        (["--policy", "dense", "--strategy", ""], ["--strategy"]),
        (["--policy", "dense", "--selection", "bogus"], ["--selection", "bogus"]),
        (["--policy", "apoptosis", "--selection", "extrema,"], ["--selection", "empty item"]),
        (["--policy", "grow+rigl", "--clone-budget", "-1"], ["--clone-budget", "-1"]),
        (["--policy", "rigl+set"], ["--policy", "at most one connection rule"]),
        (["--policy", "dense+apoptosis"], ["--policy", "'dense'"]),
        (["--policy", "apoptosis+apoptosis"], ["--policy", "twice"]),
        (["--policy", "rigl+magic"], ["--policy", "'magic'"]),
        (["--json", "."], ["--json", "folder"]),
        (["--json", "/nonexistent/folder/x.json"], ["--json", "/nonexistent/folder"]),
    ],
)
def test_bad_options_fail_clearly_before_writing(tmp_path: Path, capsys, args, words) -> None:
    out = tmp_path / "bad"
    assert main(["run", *TINY, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("growcore run: error:")
    for word in words:
        assert word in err
    assert not out.exists()


def test_existing_run_folder_is_not_overwritten(tmp_path: Path, capsys) -> None:
    run(tmp_path, "x", "--policy", "dense", "--epochs", "1")
    assert main(["run", *TINY, "--policy", "dense", "--out", str(tmp_path / "x")]) == 2
    assert "growcore run: error:" in capsys.readouterr().err


def test_apoptosis_draws_one_family_tree_per_method(tmp_path: Path) -> None:
    summary = run(tmp_path, "tree", "--policy", "dense,apoptosis", "--strategy", "crossover,random",
                  "--rate", "0.2")
    out = tmp_path / "tree"
    trees = sorted(p.name for p in out.glob("family_tree*"))
    assert trees == ["family_tree-apoptosis-crossover.png", "family_tree-apoptosis-random.png"]
    for name in trees:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    crossover, replaced = (r["lineage"] for r in summary["runs"][1:])
    assert crossover["max_descendants"] >= 1 and crossover["fitness_correlation"]["n"] >= 16
    assert replaced["max_descendants"] == 0  # random regrowth replaces, it does not breed


# Three hidden layers so that routes (which reach the hidden layers ahead) have somewhere to go;
# 8 steps per epoch, so --grow-every 2 gives growth events at steps 2, 4, 6 and 8.
GROW = ["--policy", "dense,grow", "--start-hidden", "16,16,16", "--grow-every", "2", "--epochs", "1"]


def test_grow_grows_logs_every_event_and_draws_the_growth_curve(tmp_path: Path) -> None:
    summary = run(tmp_path, "g", *GROW)
    out = tmp_path / "g"
    assert [r["method"] for r in summary["runs"]] == ["dense", "grow"]
    dense, grow = summary["runs"]
    sizes = grow["layer_sizes"]
    assert sizes[0] == 64 and sizes[-1] == 10 and len(sizes) == 5
    assert all(s >= 16 for s in sizes[1:-1]) and any(s > 16 for s in sizes[1:-1])
    assert grow["events"]["growth"] == 4
    assert {"growth", "clone", "route"} <= set(grow["events"])
    # Every event is in the log, and the summary counts them by kind.
    events = [e for e in read_events(out) if e["run"] == "grow-s0"]
    assert read_events(out) == read_events(out, source="sqlite")
    assert dict(Counter(e["kind"] for e in events)) == grow["events"]
    growths = [e for e in events if e["kind"] == "growth"]
    assert [e["step"] for e in growths] == [2, 4, 6, 8]
    assert growths[-1]["sizes"] == sizes and growths[-1]["nnz"] == grow["nnz"]
    # density: edges over a dense MLP of the final sizes; final_density: over the graph's blocks.
    assert grow["active_params"] == grow["nnz"] + sum(sizes[1:])
    assert grow["density"] == pytest.approx(grow["nnz"] / sum(a * b for a, b in zip(sizes, sizes[1:])))
    assert 0.0 < grow["final_density"] <= 1.0
    assert "layer_sizes" not in dense and "final_density" not in dense
    assert summary["by_policy"]["grow"]["layer_sizes"] == [sizes]
    assert "final_density" in summary["by_policy"]["grow"]
    # The growth curve starts at the initial sizes at step 0 and ends at the final ones.
    assert (out / "growth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = growth_curves(read_events(out), read_metrics(out))
    assert list(curves) == ["grow-s0"]
    curve = curves["grow-s0"]
    assert curve["steps"][0] == 0 and curve["sizes"][0].tolist() == [64, 16, 16, 16, 10]
    assert curve["sizes"][-1].tolist() == sizes and curve["nnz"][-1] == grow["nnz"]
    assert list(curve["steps"]) == sorted(curve["steps"])


def test_grow_summary_counts_additions_per_window_and_averages_them_over_seeds(tmp_path: Path) -> None:
    summary = run(tmp_path, "w", *GROW, "--policy", "grow", "--growth-window", "3", "--seeds", "2")
    curves = growth_curves(read_events(tmp_path / "w"), read_metrics(tmp_path / "w"))
    for r in summary["runs"]:
        g, curve = r["growth"], curves[r["run"]]
        assert g["window"] == 3 and g["ends"] == [3, 6, 8]  # 8 steps: the last window is short
        assert sum(g["neurons"]) == sum(r["layer_sizes"][1:-1]) - 3 * 16
        assert sum(g["edges"]) == r["nnz"] - curve["nnz"][0]
        # Growth events at steps 2, 4, 6, 8: one in the first window, two in the second.
        growths = [e for e in read_events(tmp_path / "w") if e["run"] == r["run"] and e["kind"] == "growth"]
        added = [sum(e["sizes"][1:-1]) - sum(e["sizes_before"][1:-1]) for e in growths]
        assert g["neurons"] == [added[0], added[1] + added[2], added[3]]
    mean = summary["by_policy"]["grow"]["growth"]
    a, b = (r["growth"] for r in summary["runs"])
    assert mean["neurons"] == [(x + y) / 2 for x, y in zip(a["neurons"], b["neurons"])]
    assert mean["ends"] == [3, 6, 8]


def test_grow_random_selection_is_its_own_method_and_grow_is_deterministic(tmp_path: Path) -> None:
    extra = [*GROW, "--policy", "grow", "--selection", "extrema,random", "--katz"]
    a = run(tmp_path, "a", *extra)
    b = run(tmp_path, "b", *extra)
    assert [(r["method"], r["run"], r["selection"]) for r in a["runs"]] == [
        ("grow", "grow-s0", "extrema"), ("grow-random", "grow-random-s0", "random")
    ]
    assert set(a["by_policy"]) == {"grow", "grow-random"}
    strip = lambda s: [{k: v for k, v in r.items() if k != "train_seconds"} for r in s["runs"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert read_events(tmp_path / "a") == read_events(tmp_path / "b")


def test_grow_with_the_braess_guard_waits_for_its_verdict(tmp_path: Path) -> None:
    # The guard's 50-step window outlasts this 8-step run: no growth after the first event.
    summary = run(tmp_path, "br", *GROW, "--policy", "grow", "--braess", "--activation", "relu")
    assert summary["events"]["growth"] == 1
    assert (tmp_path / "br" / "growth.png").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--radius", "0"], ["--radius:", "0"]),
        (["--fan-in-cap", "-1"], ["--fan-in-cap:", "-1"]),
        (["--clone-budget", "-1"], ["--clone-budget:", "-1"]),
        (["--max-layer-size", "-1"], ["--max-layer-size:", "-1"]),
        (["--grow-every", "0"], ["--grow-every:", "0"]),
        (["--growth-window", "0"], ["--growth-window:", "0"]),
        (["--start-hidden", "8,0"], ["--start-hidden:", "0"]),
        (["--start-hidden", "a"], ["--start-hidden", "a"]),
        (["--selection", "extrema,magic"], ["--selection", "magic"]),
        (["--start-hidden", "16,,16"], ["--start-hidden", "empty item"]),
        (["--policy", "rigl", "--braess"], ["--braess", "grow"]),
        (["--policy", "rigl", "--katz"], ["--katz", "grow"]),
    ],
)
def test_bad_grow_options_fail_clearly_before_training(tmp_path: Path, capsys, args, words) -> None:
    out = tmp_path / "bad"
    assert main(["run", *TINY, "--policy", "dense,grow", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("growcore run: error:")
    for word in words:
        assert word in err
    assert not out.exists()


@pytest.mark.parametrize("option", ["--clone-type", "--trigger", "--activation"])
def test_unknown_grow_choices_are_refused_by_the_parser(tmp_path: Path, capsys, option: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", *TINY, "--policy", "grow", "--out", str(tmp_path / "bad"), option, "magic"])
    assert exit_.value.code == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_json_copy_writes_non_finite_numbers_as_null_and_records_the_command(tmp_path: Path) -> None:
    out, copy = tmp_path / "diverged", tmp_path / "diverged.json"
    args = ["run", *TINY, "--policy", "dense", "--epochs", "1", "--lr", "1e30", "--out", str(out), "--json", str(copy)]
    assert main(args) == 0
    summary = json.loads(copy.read_text())
    assert copy.read_text() == (out / "summary.json").read_text()
    assert summary["test_loss"] is None  # NaN after the step that diverged
    assert summary["command"] == ["growcore", *args]


@pytest.mark.parametrize("lr", [-1.0, 0.0, float("inf"), float("nan")])
def test_run_config_refuses_a_learning_rate_that_cannot_train(lr: float) -> None:
    from growcore.torch.train import RunConfig

    with pytest.raises(InvalidArgumentError, match=r"^lr: must be a finite number > 0, got"):
        RunConfig(method="dense", lr=lr)
    assert RunConfig(method="dense", lr=1e30).lr == 1e30  # large but finite: the user's choice


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("density", "0.1", "a finite number"),  # was a raw TypeError from the comparison
        ("density", True, "a finite number"),  # was accepted as density 1
        ("density", float("nan"), "a finite number"),
        ("drop_fraction", "x", "a finite number"),
        ("rate", True, "a finite number"),
        ("lr_scale", None, "a finite number"),
        ("senescence", 1, "True or False"),
        ("katz", "yes", "True or False"),
    ],
)
def test_run_config_refuses_a_number_or_flag_of_the_wrong_type(field: str, value: object, words: str) -> None:
    from growcore.torch.train import RunConfig

    with pytest.raises(InvalidArgumentError, match=rf"^{field}: must be {words}, got {re.escape(repr(value))}$"):
        RunConfig(method="apoptosis", **{field: value})
    assert RunConfig(method="apoptosis", density=np.float32(0.5), rate=np.float64(0.1)).density == 0.5


@pytest.mark.parametrize(
    ("method", "field", "value"),
    [
        ("dense", "epochs", 1.5),
        ("dense", "epochs", True),
        ("dense", "batch_size", 2.5),
        ("dense", "batch_size", 64.0),
        ("dense", "seed", 1.5),
        ("apoptosis", "interval", 2.5),  # only "< 1" was checked for apoptosis
        ("rigl", "hidden", (8.5,)),
        ("rigl", "hidden", 8),
        ("grow", "start_hidden", (4.5, 4)),
        ("grow", "grow_every", 2.5),  # was named "every", the trigger's argument
        ("grow", "growth_window", 2.5),
        ("grow", "clone_budget", 2.5),  # the next four were raw TypeErrors from the core
        ("grow", "radius", True),
        ("grow", "fan_in_cap", 2.5),
        ("grow", "max_layer_size", 2.5),
    ],
)
def test_run_config_refuses_a_count_that_is_not_an_integer(method: str, field: str, value: object) -> None:
    from growcore.torch.train import RunConfig

    with pytest.raises(InvalidArgumentError, match=rf"^{field}: .*integer.*, got {re.escape(repr(value))}$"):
        RunConfig(method=method, **{field: value})
    # numpy integers are integers
    RunConfig(method=method, **{field: (np.int64(8),) if "hidden" in field else np.int64(8)})


def _failing_second_run(monkeypatch, error: BaseException) -> None:
    """train_run trains the first run, then raises ``error``: a failure with the run folder half written."""
    import growcore.torch.train as train

    real, calls = train.train_run, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            if error == "SIGTERM":  # as a job scheduler stops a job
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises before this ends
            raise error
        return real(*a, **k)

    monkeypatch.setattr(train, "train_run", flaky)


@pytest.mark.parametrize("error, code", [(RuntimeError("boom"), None), (KeyboardInterrupt(), 130), ("SIGTERM", 143)])
def test_a_failed_run_leaves_no_run_folder_and_the_same_out_can_be_reused(tmp_path: Path, monkeypatch, capsys, error, code) -> None:
    out = tmp_path / "new" / "parents" / "run"
    args = ["run", *TINY, "--policy", "dense,static", "--epochs", "1", "--out", str(out)]
    _failing_second_run(monkeypatch, error)
    if code is None:
        with pytest.raises(RuntimeError, match="boom"):
            main(args)
    else:
        assert main(args) == code
        assert ("terminated" if error == "SIGTERM" else "interrupted") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no run folder, no staging folder, no parents made for it
    monkeypatch.undo()
    assert main(args) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]
    assert (out / "summary.json").exists()


def test_a_failed_run_into_an_existing_folder_keeps_the_folder_as_it_was(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ["run", *TINY, "--policy", "dense,static", "--epochs", "1", "--out", str(out)]
    _failing_second_run(monkeypatch, InvalidArgumentError("boom"))
    assert main(args) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and [p.name for p in out.iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    assert main(args) == 0  # the run's files join the user's
    assert (out / "notes.txt").read_text() == "keep me" and (out / "summary.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_an_existing_run_folder_is_refused_before_training_naming_out(tmp_path: Path, monkeypatch, capsys) -> None:
    import growcore.torch.train as train

    out = tmp_path / "x"
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("trained before refusing --out"))
    assert main(["run", *TINY, "--policy", "dense", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(out) in err and "choose another --out" in err and "append" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _unwritable(path: str) -> bool:
    """Whether ``path`` cannot be created even by root (sysfs refuses new files)."""
    try:
        open(path, "xb").close()
    except OSError:
        return True
    Path(path).unlink()
    return False


@pytest.mark.skipif(not _unwritable("/sys/growcore-probe"), reason="no read-only /sys here")
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--json", "/sys/growcore-summary.json"], ["--json", "/sys/growcore-summary.json", "cannot write"]),
        (["--out", "/sys/growcore-run"], ["--out", "/sys/growcore-run", "cannot create"]),
    ],
)
def test_an_unwritable_json_or_out_fails_before_training(tmp_path: Path, monkeypatch, capsys, args, words) -> None:
    import growcore.torch.train as train

    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("trained before finding the path unwritable"))
    assert main(["run", *TINY, "--policy", "dense", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("growcore run: error:") and "Traceback" not in err
    for word in words:
        assert word in err
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_during_the_run_is_reported_as_it_is_and_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    import growcore.torch.train as train

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "somewhere"))

    monkeypatch.setattr(train, "train_run", disk_full)
    out = tmp_path / "run"
    assert main(["run", *TINY, "--policy", "dense", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # Not blamed on --out: the error may have nothing to do with the run folder.
    assert err.startswith("growcore run: error: [Errno 28] No space left on device") and "somewhere" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_out_is_staged_inside_and_none_of_its_files_is_overwritten(tmp_path: Path, monkeypatch, capsys) -> None:
    import growcore.torch.train as train

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "accuracy.png").write_text("my own plot")  # a name the run writes
    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("trained before refusing --out"))
    assert main(["run", *TINY, "--policy", "dense", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "accuracy.png" in err and "choose another --out" in err
    assert (out / "accuracy.png").read_text() == "my own plot"
    monkeypatch.undo()

    (out / "accuracy.png").unlink()
    seen = []
    real = train.train_run

    def look(*a, **k):  # where the run is written meanwhile: inside --out, not beside it
        seen.append((sorted(p.name for p in tmp_path.iterdir()), sorted(p.name for p in out.iterdir())))
        return real(*a, **k)

    monkeypatch.setattr(train, "train_run", look)
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out)]) == 0
    outside, inside = seen[0]
    assert outside == ["mine"] and inside[1:] == ["notes.txt"] and inside[0].startswith(".growcore-run-")
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.png", "events.jsonl", "metrics.jsonl", "notes.txt", "run.sqlite", "summary.json"]


def test_a_new_run_folder_has_the_usual_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o027)
    try:
        run(tmp_path, "x", "--policy", "dense", "--epochs", "1")
    finally:
        os.umask(mask)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o750  # not the 0o700 of a temporary folder


def test_out_may_pass_through_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "dd").mkdir()
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(tmp_path / "dd" / "new" / ".." / "y")]) == 0
    assert sorted(p.name for p in (tmp_path / "dd").iterdir()) == ["y"]  # as mkdir -p would have it


@pytest.mark.parametrize("where", ["out", "above"])
def test_json_where_the_run_folder_goes_is_refused_before_training(tmp_path: Path, monkeypatch, capsys, where: str) -> None:
    import growcore.torch.train as train

    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("trained before refusing --json"))
    out = tmp_path / "a" / "run"
    json_path = out if where == "out" else out.parent
    assert main(["run", *TINY, "--policy", "dense", "--out", str(out), "--json", str(json_path)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "--out" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", [False, True])
def test_a_finished_run_that_cannot_be_put_in_place_is_kept_and_named(tmp_path: Path, monkeypatch, capsys, existing: bool) -> None:
    import growcore.cli as cli

    out = tmp_path / "run"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    real, moves = os.rename, []

    def rename(src, dst):
        moves.append(dst)
        if len(moves) == 2 or not existing:  # the folder, or the second file of the run
            raise OSError(18, "Invalid cross-device link", str(src), None, str(dst))
        real(src, dst)

    monkeypatch.setattr(cli.os, "rename", rename)
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    stage = next((out if existing else tmp_path).glob(".*.partial"))
    assert "could not be put in" in err and str(stage) in err
    assert sorted(p.name for p in stage.iterdir()) == ["accuracy.png", "events.jsonl", "metrics.jsonl", "run.sqlite", "summary.json"]
    if existing:  # the file moved before the failure went back: the user's folder is as it was
        assert sorted(p.name for p in out.iterdir()) == sorted([stage.name, "notes.txt"])
    else:
        assert not out.exists()


def test_json_inside_the_run_folder_the_command_creates(tmp_path: Path, capsys) -> None:
    out = tmp_path / "new"
    copy = out / "copy.json"
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out), "--json", str(copy)]) == 0
    assert copy.read_text() == (out / "summary.json").read_text()
    # ... but not over one of the run folder's own files.
    again = tmp_path / "again"
    assert main(["run", *TINY, "--policy", "dense", "--out", str(again), "--json", str(again / "events.jsonl")]) == 2
    assert "--json" in capsys.readouterr().err and not again.exists()


def test_a_strategy_or_selection_listed_twice_is_run_once(tmp_path: Path) -> None:
    summary = run(tmp_path, "dup", "--policy", "apoptosis,grow", "--strategy", "random,random", "--selection",
                  "extrema, extrema", "--epochs", "1")
    assert [r["run"] for r in summary["runs"]] == ["apoptosis-random-s0", "grow-s0"]
    assert {k: v["seeds"] for k, v in summary["by_policy"].items()} == {"apoptosis-random": [0], "grow": [0]}


def test_a_seeds_run_is_the_run_that_seed_alone_gives(tmp_path: Path) -> None:
    # The digits split follows each run's seed, not the first --seed.
    both = run(tmp_path, "both", "--policy", "dense,rigl", "--seed", "0", "--seeds", "2")
    alone = run(tmp_path, "alone", "--policy", "dense,rigl", "--seed", "1")
    strip = lambda runs: [{k: v for k, v in r.items() if k != "train_seconds"} for r in runs]  # noqa: E731
    assert strip(r for r in both["runs"] if r["seed"] == 1) == strip(alone["runs"])
    one = [m for m in read_metrics(tmp_path / "both") if m["run"].endswith("-s1")]
    assert one == read_metrics(tmp_path / "alone")


@pytest.mark.parametrize("seed, seeds", [("-1", "1"), ("4294967295", "2")])
def test_seeds_outside_the_split_seeds_range_are_refused(tmp_path: Path, capsys, seed: str, seeds: str) -> None:
    assert main(["run", *TINY, "--seed", seed, "--seeds", seeds, "--out", str(tmp_path / "bad")]) == 2
    assert "--seed" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("distribution, smallest", [("erk", "0.0043"), ("uniform", "0.0063")])
def test_a_density_that_leaves_a_layer_without_edges_is_refused(tmp_path: Path, capsys, distribution: str, smallest: str) -> None:
    # 64 -> 8 -> 10: at density 1e-3 the 8->10 layer gets no edge (uniform: round(d * 80) >= 1
    # from d = 0.00625; ERK gives that small layer a larger share).
    args = ["run", *TINY, "--hidden", "8", "--density", "1e-3", "--distribution", distribution, "--out", str(tmp_path / "bad")]
    assert main([*args, "--policy", "dense,rigl"]) == 2
    err = capsys.readouterr().err
    assert "--density: 0.001 leaves no edge in layer 1 (8->10)" in err and f"at least {smallest}" in err
    assert not (tmp_path / "bad").exists()
    # The value it names is the smallest (to two digits) that works; dense runs alone do not care.
    args[args.index("1e-3")] = f"{float(smallest) - 0.0001:.4f}"
    assert main([*args, "--policy", "static"]) == 2
    assert f"at least {smallest}" in capsys.readouterr().err
    args[args.index(f"{float(smallest) - 0.0001:.4f}")] = smallest
    assert main([*args, "--policy", "static", "--epochs", "1"]) == 0
    assert main(["run", *TINY, "--hidden", "8", "--density", "1e-3", "--policy", "dense", "--out", str(tmp_path / "d")]) == 0


def test_train_run_refuses_a_density_that_leaves_a_layer_without_edges() -> None:
    from growcore.data import Dataset
    from growcore.torch.train import RunConfig, train_run

    data = Dataset("t", np.zeros((4, 3), np.float32), np.zeros(4, np.int64), np.zeros((2, 3), np.float32), np.zeros(2, np.int64), 2)
    with pytest.raises(InvalidArgumentError, match=r"^density: 0\.01 leaves no edge in layer 0 \(3->4\), layer 1 \(4->2\)"):
        train_run(RunConfig(method="set", density=0.01, hidden=(4,), distribution="uniform", epochs=1), data)


def test_out_through_a_link_and_dot_dot_lands_where_the_kernel_goes(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "l2").symlink_to(tmp_path / "deep" / "x")
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", "l2/../run", "--json", "l2/../run/s.json"]) == 0
    assert sorted(p.name for p in (tmp_path / "deep" / "run").iterdir()) == [
        "accuracy.png", "events.jsonl", "metrics.jsonl", "run.sqlite", "s.json", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "l2"]


@pytest.mark.parametrize("case", ["dot-dot into a run's folder", "dangling link"])
def test_out_is_checked_where_it_will_be_written_before_training(tmp_path: Path, monkeypatch, capsys, case: str) -> None:
    import growcore.torch.train as train

    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("trained before refusing --out"))
    if case == "dangling link":
        out = tmp_path / "dang"
        out.symlink_to(tmp_path / "nowhere")
        words = ["not a folder"]
    else:
        (tmp_path / "a" / "b").mkdir(parents=True)
        (tmp_path / "a" / "b" / "summary.json").write_text("mine")
        out = tmp_path / "a" / "new" / ".." / "b"
        words = ["summary.json", "choose another --out"]
    assert main(["run", *TINY, "--policy", "dense", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and all(w in err for w in words)
    assert not (tmp_path / "a" / "new").exists() and not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("where", ["__enter__", "_publish"])
def test_an_interrupt_while_the_run_folder_is_set_up_or_put_in_place_leaves_nothing(
    tmp_path: Path, monkeypatch, capsys, where: str
) -> None:
    import growcore.cli as cli

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    real_rename, real_chmod, renames = os.rename, os.chmod, []

    def rename(src, dst):  # Ctrl-C after the first file moved up
        renames.append(dst)
        if len(renames) == 2:
            raise KeyboardInterrupt
        real_rename(src, dst)

    def chmod(path, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.os, "rename" if where == "_publish" else "chmod", rename if where == "_publish" else chmod)
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out / "new" / "run" if where == "__enter__" else out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # no stage, no parents, no half-moved run


def test_an_out_made_by_someone_else_during_the_run_is_not_replaced(tmp_path: Path, monkeypatch, capsys) -> None:
    import growcore.torch.train as train

    out = tmp_path / "late"
    real = train.train_run

    def meanwhile(*a, **k):
        out.mkdir()
        return real(*a, **k)

    monkeypatch.setattr(train, "train_run", meanwhile)
    assert main(["run", *TINY, "--policy", "dense", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    stage = next(tmp_path.glob(".late.*.partial"))
    assert "could not be put in" in err and str(stage) in err
    assert list(out.iterdir()) == [] and (stage / "summary.json").exists()


def test_a_run_folder_in_a_setgid_folder_keeps_the_bit(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)
    if not shared.stat().st_mode & 0o2000:
        pytest.skip("this filesystem does not keep the setgid bit")
    run(shared, "x", "--policy", "dense", "--epochs", "1")
    assert (shared / "x").stat().st_mode & 0o2000  # as a folder made by mkdir there would have it
