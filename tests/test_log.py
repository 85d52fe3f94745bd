"""growcore.log: the run folder's two stores agree, non-finite handling, reopening, plots, errors."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from growcore import InvalidArgumentError
from growcore.log import (
    EVENTS_FILE,
    METRICS_FILE,
    SQLITE_FILE,
    SUMMARY_FILE,
    RunLog,
    growth_curves,
    growth_per_window,
    mean_curves,
    plot_accuracy,
    read_events,
    read_metrics,
    read_nonfinite_counts,
    run_name,
    split_run_name,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def both(folder: Path) -> tuple[list[dict], list[dict]]:
    """Events and metrics read from JSONL, after checking that SQLite gives exactly the same."""
    events, metrics = read_events(folder), read_metrics(folder)
    assert read_events(folder, source="sqlite") == events
    assert read_metrics(folder, source="sqlite") == metrics
    return events, metrics


def write_sample(folder: Path, batch_size: int = 2) -> None:
    with RunLog(folder, run="rigl-s0", batch_size=batch_size) as log:
        log.event(kind="rewire", step=100, layer="fc1", dropped=30, grown=30)
        log.event("rewire", step=100, layer="fc2", dropped=np.int64(3), grown=3, frac=np.float32(0.5))
        log.event("schedule", step=200, run="set-s1", fractions=(0.3, 0.25), info={"why": "cosine", "ok": True})
        log.metric(step=100, loss=0.75, accuracy=81.25, density={"fc1": 0.1, "fc2": 0.2})
        log.metric(step=200, run="set-s1", accuracy=np.float64(83.5), edges=np.int32(26620))


SAMPLE_EVENTS = [
    {"run": "rigl-s0", "step": 100, "kind": "rewire", "layer": "fc1", "dropped": 30, "grown": 30},
    {"run": "rigl-s0", "step": 100, "kind": "rewire", "layer": "fc2", "dropped": 3, "grown": 3, "frac": 0.5},
    {"run": "set-s1", "step": 200, "kind": "schedule", "fractions": [0.3, 0.25], "info": {"why": "cosine", "ok": True}},
]
SAMPLE_METRICS = [
    {"run": "rigl-s0", "step": 100, "loss": 0.75, "accuracy": 81.25, "density": {"fc1": 0.1, "fc2": 0.2}},
    {"run": "set-s1", "step": 200, "accuracy": 83.5, "edges": 26620},
]


# ---------------------------------------------------------------- round trip and format


def test_both_stores_read_back_what_was_written(tmp_path):
    write_sample(tmp_path / "run")
    events, metrics = both(tmp_path / "run")
    assert events == SAMPLE_EVENTS
    assert metrics == SAMPLE_METRICS
    # numpy scalars arrive as plain Python numbers, ints stay ints in both stores.
    for source in ("jsonl", "sqlite"):
        got = read_metrics(tmp_path / "run", source=source)[1]["edges"]
        assert type(got) is int, source


def test_jsonl_lines_are_compact_ordered_and_deterministic(tmp_path):
    write_sample(tmp_path / "a")
    write_sample(tmp_path / "b", batch_size=1000)  # batching must not change the bytes
    for name in (EVENTS_FILE, METRICS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = (tmp_path / "a" / EVENTS_FILE).read_text().splitlines()
    assert lines[0] == '{"run":"rigl-s0","step":100,"kind":"rewire","layer":"fc1","dropped":30,"grown":30}'
    assert len(lines) == 3
    dumps = []
    for folder in ("a", "b"):
        with sqlite3.connect(tmp_path / folder / SQLITE_FILE) as db:
            dumps.append(list(db.iterdump()))
    assert dumps[0] == dumps[1]


def test_sqlite_schema_rows_and_indexes(tmp_path):
    write_sample(tmp_path)
    with sqlite3.connect(tmp_path / SQLITE_FILE) as db:
        indexes = {name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        assert "(run, step)" in indexes["events_run_step"] and "(run, step)" in indexes["metrics_run_step"]
        assert db.execute("SELECT seq, run, step, kind, layer, payload FROM events ORDER BY seq").fetchall()[0] == (
            0, "rigl-s0", 100, "rewire", "fc1", '{"dropped":30,"grown":30}'
        )
        rows = db.execute("SELECT seq, name, key, value, typeof(value) FROM metrics ORDER BY rowid").fetchall()
        assert rows == [
            (0, "loss", None, 0.75, "real"),
            (0, "accuracy", None, 81.25, "real"),
            (0, "density", "fc1", 0.1, "real"),
            (0, "density", "fc2", 0.2, "real"),
            (1, "accuracy", None, 83.5, "real"),
            (1, "edges", None, 26620, "integer"),
        ]
        # The per-layer density series of one run is one indexed query away.
        assert db.execute(
            "SELECT step, value FROM metrics WHERE run = 'rigl-s0' AND name = 'density' AND key = 'fc1'"
        ).fetchall() == [(100, 0.1)]
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_records_are_buffered_until_a_batch_is_full(tmp_path):
    log = RunLog(tmp_path, run="r", batch_size=3)
    log.event("a", step=0)
    log.metric(step=0, loss=1.0)
    assert both(tmp_path) == ([], [])
    log.event("b", step=1)  # third record: the batch is written
    events, metrics = both(tmp_path)
    assert [e["kind"] for e in events] == ["a", "b"] and len(metrics) == 1
    log.event("c", step=2)
    log.flush()
    assert [e["kind"] for e in both(tmp_path)[0]] == ["a", "b", "c"]
    log.event("d", step=3)
    log.close()
    assert [e["kind"] for e in both(tmp_path)[0]] == ["a", "b", "c", "d"]
    assert log.closed


def test_an_exception_in_the_with_block_still_writes_the_log(tmp_path):
    with pytest.raises(RuntimeError, match="diverged"):
        with RunLog(tmp_path, run="r") as log:
            log.event("rewire", step=5)
            raise RuntimeError("diverged")
    assert log.closed
    assert both(tmp_path)[0] == [{"run": "r", "step": 5, "kind": "rewire"}]


def test_closed_log_refuses_writes_and_close_is_idempotent(tmp_path):
    log = RunLog(tmp_path, run="r")
    log.close()
    log.close()
    with pytest.raises(InvalidArgumentError, match="is closed"):
        log.event("x", step=0)
    with pytest.raises(InvalidArgumentError, match="is closed"):
        log.metric(step=0, loss=1.0)
    assert "closed" in repr(log)


# ---------------------------------------------------------------- non-finite values


def test_non_finite_values_are_null_and_counted(tmp_path):
    with RunLog(tmp_path, run="r") as log:
        log.metric(step=1, loss=float("nan"), accuracy=50.0, density={"fc1": np.float32("inf"), "fc2": 0.5})
        log.metric(step=2, loss=-math.inf)
        log.event("stats", step=2, score=float("nan"), per_neuron=np.array([1.0, np.nan, np.inf]), ok=1.5)
        log.summary({"test_loss": float("nan"), "nested": {"x": [math.inf]}, "train_seconds": 2.0})
        counts = log.nonfinite_counts
    assert counts == {
        "events.per_neuron": 2,
        "events.score": 1,
        "metrics.density.fc1": 1,
        "metrics.loss": 2,
        "summary.nested.x": 1,
        "summary.test_loss": 1,
    }
    assert read_nonfinite_counts(tmp_path) == counts
    events, metrics = both(tmp_path)
    assert metrics == [
        {"run": "r", "step": 1, "loss": None, "accuracy": 50.0, "density": {"fc1": None, "fc2": 0.5}},
        {"run": "r", "step": 2, "loss": None},
    ]
    assert events[0]["score"] is None and events[0]["per_neuron"] == [1.0, None, None]

    def strict(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    # Every file is strict JSON: no NaN / Infinity tokens.
    for name in (EVENTS_FILE, METRICS_FILE):
        for line in (tmp_path / name).read_text().splitlines():
            json.loads(line, parse_constant=strict)
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text(), parse_constant=strict)
    assert summary == {"test_loss": None, "nested": {"x": [None]}, "train_seconds": 2.0}


def test_a_replaced_summary_takes_its_nonfinite_counts_with_it(tmp_path):
    with RunLog(tmp_path, run="r") as log:
        log.metric(step=0, loss=math.nan)
        log.summary({"a": math.nan, "b": math.nan})
        log.summary({"a": math.nan, "c": 1.0})
        assert log.nonfinite_counts == {"metrics.loss": 1, "summary.a": 1}
    assert read_nonfinite_counts(tmp_path) == {"metrics.loss": 1, "summary.a": 1}


# ---------------------------------------------------------------- reopening


def test_reopening_without_append_is_refused_and_changes_nothing(tmp_path):
    write_sample(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"already holds a run log .*events\.jsonl.*append=True"):
        RunLog(tmp_path, run="x")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_folder_with_only_a_summary_is_also_refused(tmp_path):
    with RunLog(tmp_path / "a", run="r") as log:
        log.summary({"x": 1})
    for name in (EVENTS_FILE, METRICS_FILE, SQLITE_FILE):
        (tmp_path / "a" / name).unlink()
    with pytest.raises(FileExistsError, match="summary.json"):
        RunLog(tmp_path / "a")


def test_a_fresh_or_unrelated_folder_is_accepted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with RunLog(tmp_path / "deep" / "er", run="r") as log:
        log.event("x", step=0)
    with RunLog(tmp_path, run="r") as log:
        log.event("y", step=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert both(tmp_path / "deep" / "er")[0][0]["kind"] == "x" and both(tmp_path)[0][0]["kind"] == "y"


def test_append_continues_both_stores_and_counts(tmp_path):
    write_sample(tmp_path)
    with RunLog(tmp_path, run="rigl-s0", append=True) as log:
        log.event("rewire", step=300, layer="fc1", dropped=1, grown=1)
        log.metric(step=300, loss=float("nan"))
    with RunLog(tmp_path, run="rigl-s0", append=True) as log:
        log.metric(step=400, loss=math.inf)
        assert log.nonfinite_counts == {"metrics.loss": 2}
    events, metrics = both(tmp_path)
    assert events == SAMPLE_EVENTS + [{"run": "rigl-s0", "step": 300, "kind": "rewire", "layer": "fc1", "dropped": 1, "grown": 1}]
    assert metrics == SAMPLE_METRICS + [{"run": "rigl-s0", "step": 300, "loss": None}, {"run": "rigl-s0", "step": 400, "loss": None}]
    with sqlite3.connect(tmp_path / SQLITE_FILE) as db:
        assert [s for (s,) in db.execute("SELECT DISTINCT seq FROM metrics ORDER BY seq")] == [0, 1, 2, 3]
    assert read_nonfinite_counts(tmp_path) == {"metrics.loss": 2}


class _FullDisk:
    """A JSONL file whose next write half-succeeds and then fails, as on a full disk."""

    def __init__(self, file):
        self.file = file

    def tell(self):
        return self.file.tell()

    def write(self, data):
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise OSError(28, "No space left on device")

    def close(self):
        self.file.close()


@pytest.mark.parametrize("failing", ["_events_file", "_metrics_file"])
def test_a_failed_jsonl_write_leaves_both_stores_as_they_were_and_a_retry_writes_once(tmp_path, failing):
    log = RunLog(tmp_path, run="r", batch_size=100)
    log.event("rewire", step=1, layer="fc1", dropped=2, grown=2)
    log.metric(step=1, loss=0.5)
    log.flush()
    log.event("rewire", step=2, layer="fc1", dropped=1, grown=1)
    log.metric(step=2, loss=0.25)
    setattr(log, failing, _FullDisk(getattr(log, failing)))
    with pytest.raises(OSError, match="No space"):
        log.flush()
    events, metrics = both(tmp_path)
    assert [e["step"] for e in events] == [1] and [m["step"] for m in metrics] == [1]
    log.close()  # the retry: the buffered batch is written once
    events, metrics = both(tmp_path)
    assert [e["step"] for e in events] == [1, 2] and [m["step"] for m in metrics] == [1, 2]
    with RunLog(tmp_path, run="r", append=True) as again:  # the stores agree
        again.metric(step=3, loss=0.125)
    assert [m["step"] for m in both(tmp_path)[1]] == [1, 2, 3]


def test_append_to_an_empty_folder_creates_the_log(tmp_path):
    with RunLog(tmp_path, run="r", append=True) as log:
        log.event("x", step=1)
    assert both(tmp_path)[0] == [{"run": "r", "step": 1, "kind": "x"}]


def test_append_refuses_a_partial_last_line(tmp_path):
    write_sample(tmp_path)
    with open(tmp_path / EVENTS_FILE, "ab") as f:
        f.write(b'{"run":"r","st')
    with pytest.raises(InvalidArgumentError, match=r"events\.jsonl' ends in a partial line"):
        RunLog(tmp_path, append=True)


def test_append_refuses_stores_that_disagree(tmp_path):
    write_sample(tmp_path)
    with open(tmp_path / METRICS_FILE, "ab") as f:
        f.write(b'{"run":"r","step":1,"loss":1.0}\n')
    with pytest.raises(InvalidArgumentError, match=r"metrics\.jsonl holds 3 records but run\.sqlite holds 2"):
        RunLog(tmp_path, append=True)


def test_append_refuses_an_incomplete_log(tmp_path):
    write_sample(tmp_path)
    (tmp_path / SQLITE_FILE).unlink()
    with pytest.raises(InvalidArgumentError, match=r"incomplete run log: events\.jsonl, metrics\.jsonl without run\.sqlite"):
        RunLog(tmp_path, append=True)


def test_append_refuses_another_schema_version(tmp_path):
    write_sample(tmp_path)
    with sqlite3.connect(tmp_path / SQLITE_FILE) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(InvalidArgumentError, match="schema version 99"):
        RunLog(tmp_path, append=True)


# ---------------------------------------------------------------- bad input


@pytest.fixture
def log(tmp_path):
    with RunLog(tmp_path / "log", run="r") as log:
        yield log


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda log: log.event("", step=0), InvalidArgumentError, "kind must be a non-empty string"),
        (lambda log: log.event(3, step=0), TypeError, "kind must be a str, got int 3"),
        (lambda log: log.event("x", step=-1), InvalidArgumentError, r"step must be in \[0, 2\*\*63\), got -1"),
        (lambda log: log.event("x", step=2**63), InvalidArgumentError, "step must be in"),
        (lambda log: log.event("x", step=1.0), TypeError, "step must be an int, got float 1.0"),
        (lambda log: log.event("x", step=True), TypeError, "step must be an int, got bool"),
        (lambda log: log.event("x", step=0, run=""), InvalidArgumentError, "run must be a non-empty string"),
        (lambda log: log.event("x", step=0, layer=1), TypeError, "layer must be a str, got int 1"),
        (lambda log: log.event("x", step=0, w=object()), TypeError, "events.w must hold JSON values .* got object"),
        (lambda log: log.event("x", step=0, d={1: 2}), TypeError, "events.d has key 1 of type int; JSON keys must be str"),
        (lambda log: log.event("x", step=0, s="\ud800"), InvalidArgumentError, "not valid Unicode"),
        (lambda log: log.metric(step=0), InvalidArgumentError, "needs at least one value"),
        (lambda log: log.metric(step=0, loss=None), TypeError, "metric loss must be a real number .* got NoneType"),
        (lambda log: log.metric(step=0, ok=True), TypeError, "metric ok must be a real number .* got bool"),
        (lambda log: log.metric(step=0, loss="0.5"), TypeError, "got str '0.5'"),
        (lambda log: log.metric(step=0, loss=np.array([0.5])), TypeError, r"call \.item\(\) on a tensor"),
        (lambda log: log.metric(step=0, n=2**63), InvalidArgumentError, "metric n = 9223372036854775808 does not fit"),
        (lambda log: log.metric(step=0, density={}), InvalidArgumentError, "metric 'density' is an empty mapping"),
        (lambda log: log.metric(step=0, density={0: 0.1}), TypeError, "metric 'density' has key 0 of type int"),
        (lambda log: log.metric(step=0, density={"fc1": "x"}), TypeError, r"metric density\['fc1'\] must be a real number"),
        (lambda log: log.summary([1, 2]), TypeError, "obj must be a mapping, got list"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(log, call, error, message):
    log.event("before", step=0)
    with pytest.raises(error, match=message):
        call(log)
    log.close()
    events, metrics = both(log.folder)
    assert events == [{"run": "r", "step": 0, "kind": "before"}] and metrics == []
    assert not (log.folder / SUMMARY_FILE).exists()


def test_a_metric_that_fails_on_its_last_value_writes_none_of_it(log):
    with pytest.raises(TypeError):
        log.metric(step=0, loss=1.0, density={"fc1": 0.1, "fc2": None})
    log.metric(step=1, loss=2.0)
    log.close()
    assert both(log.folder)[1] == [{"run": "r", "step": 1, "loss": 2.0}]


def test_run_is_required_without_a_default(tmp_path):
    with RunLog(tmp_path) as log:
        with pytest.raises(InvalidArgumentError, match=r"run is required: pass run=\.\.\. here or RunLog\(folder, run=\.\.\.\)"):
            log.event("x", step=0)
        log.event("x", step=0, run="given")
    assert both(tmp_path)[0] == [{"run": "given", "step": 0, "kind": "x"}]


def test_fields_may_be_named_like_the_parameters_of_python_methods(tmp_path):
    with RunLog(tmp_path, run="r") as log:
        log.event("x", step=0, self=1, source="a")
        log.metric(step=0, self=1.0)
    assert both(tmp_path) == ([{"run": "r", "step": 0, "kind": "x", "self": 1, "source": "a"}], [{"run": "r", "step": 0, "self": 1.0}])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, InvalidArgumentError, "batch_size must be a positive int, got 0"),
        ({"batch_size": True}, InvalidArgumentError, "batch_size must be a positive int, got True"),
        ({"run": ""}, InvalidArgumentError, "run must be a non-empty string"),
    ],
)
def test_bad_constructor_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        RunLog(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_folder_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        RunLog(tmp_path / "f")


def test_readers_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no run log at .*events\.jsonl"):
        read_events(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no run log at .*run\.sqlite"):
        read_metrics(tmp_path, source="sqlite")
    assert not (tmp_path / SQLITE_FILE).exists()  # the read-only reader never creates it
    with pytest.raises(InvalidArgumentError, match="source must be 'jsonl' or 'sqlite', got 'csv'"):
        read_events(tmp_path, source="csv")  # type: ignore[arg-type]
    (tmp_path / METRICS_FILE).write_text('{"run":"r","step":0}\n{oops\n')
    with pytest.raises(InvalidArgumentError, match=r"metrics\.jsonl' line 2 is not valid JSON"):
        read_metrics(tmp_path)
    (tmp_path / EVENTS_FILE).write_text("[1, 2]\n")
    with pytest.raises(InvalidArgumentError, match=r"events\.jsonl' line 1 is not a JSON object"):
        read_events(tmp_path)


# ---------------------------------------------------------------- summary


def test_summary_is_replaced_atomically_and_flushes(tmp_path):
    with RunLog(tmp_path, run="r", batch_size=100) as log:
        log.event("x", step=0)
        log.summary({"policy": "rigl", "test_accuracy": np.float32(97.5), "events": {"rewire": np.int64(3)}})
        assert len(read_events(tmp_path)) == 1  # summary() flushed the pending event
        path = log.summary({"policy": "set", "wall_clock_seconds": 12.5})
    assert path == tmp_path / SUMMARY_FILE
    assert json.loads(path.read_text()) == {"policy": "set", "wall_clock_seconds": 12.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([EVENTS_FILE, METRICS_FILE, SQLITE_FILE, SUMMARY_FILE])


# ---------------------------------------------------------------- run names, curves, plot


def test_run_names():
    assert run_name("rigl", 0) == "rigl-s0" and split_run_name("rigl-s0") == ("rigl", 0)
    assert split_run_name("static-erk-s12") == ("static-erk", 12)
    assert split_run_name("dense") == ("dense", None) and split_run_name("-s3") == ("-s3", None)
    assert split_run_name(run_name("a-s", 7)) == ("a-s", 7)
    with pytest.raises(InvalidArgumentError, match="seed must be a non-negative int, got -1"):
        run_name("rigl", -1)
    with pytest.raises(InvalidArgumentError, match="method must be a non-empty string"):
        run_name("", 0)


def test_mean_curves_average_seeds_per_step():
    rows = [
        {"run": "rigl-s0", "step": 0, "accuracy": 50.0, "loss": 1.0},
        {"run": "rigl-s1", "step": 0, "accuracy": 54.0},
        {"run": "rigl-s2", "step": 0, "accuracy": 52.0},
        {"run": "rigl-s0", "step": 10, "accuracy": 60.0},
        {"run": "rigl-s1", "step": 10, "accuracy": None},  # non-finite when logged: skipped
        {"run": "rigl-s2", "step": 10, "accuracy": 70.0},
        {"run": "rigl-s0", "step": 20, "accuracy": 80.0},
        {"run": "dense", "step": 5, "accuracy": 90.0},
        {"run": "dense", "step": 6, "loss": 0.1},  # no accuracy: ignored
        {"run": "rigl-s1", "step": 20, "accuracy": float("nan")},
    ]
    curves = mean_curves(rows)
    assert list(curves) == ["rigl", "dense"]
    rigl = curves["rigl"]
    assert rigl["runs"] == ["rigl-s0", "rigl-s1", "rigl-s2"]
    assert rigl["steps"].tolist() == [0, 10, 20] and rigl["n"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(rigl["mean"], [52.0, 65.0, 80.0])
    np.testing.assert_allclose(rigl["std"][:2], [2.0, math.sqrt(50.0)])  # sample std (ddof=1)
    assert math.isnan(rigl["std"][2])
    assert curves["dense"]["steps"].tolist() == [5] and curves["dense"]["mean"].tolist() == [90.0]
    by_run = mean_curves(rows, group=lambda run: run)
    assert list(by_run) == ["rigl-s0", "rigl-s1", "rigl-s2", "dense"]
    assert mean_curves(rows, "loss")["rigl"]["mean"].tolist() == [1.0]


def test_mean_curves_errors():
    with pytest.raises(InvalidArgumentError, match="no row with a finite numeric 'accuracy'"):
        mean_curves([{"run": "a", "step": 0, "loss": 1.0}])
    with pytest.raises(InvalidArgumentError, match="needs a str 'run' and an int 'step', got run=None"):
        mean_curves([{"step": 0, "accuracy": 1.0}])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_accuracy_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"run": run_name(m, s), "step": t, "accuracy": 50.0 + t + s} for m in ("rigl", "set") for s in range(3) for t in range(0, 50, 10)]
    out = plot_accuracy(rows, tmp_path / "acc.png")
    assert out == tmp_path / "acc.png" and _png_size(out) == (700, 450)
    with pytest.raises(InvalidArgumentError, match="no row with a finite numeric 'accuracy'"):
        plot_accuracy([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_plot_accuracy_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"needs matplotlib: pip install 'growcore\[run\]'"):
        plot_accuracy([{"run": "a", "step": 0, "accuracy": 1.0}], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_runlog_plot_accuracy_plots_the_folder(tmp_path):
    pytest.importorskip("matplotlib")
    with RunLog(tmp_path, batch_size=1000) as log:
        for step in range(3):
            log.metric(step=step, run="static-s0", accuracy=10.0 * step)
        out = log.plot_accuracy()  # flushes the pending records first
    assert out == tmp_path / "accuracy.png" and _png_size(out) == (700, 450)


# ---------------------------------------------------------------- property: both stores round-trip

_names = st.text(min_size=1, max_size=8)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_fields = st.dictionaries(_names.filter(lambda n: n not in {"kind", "run", "step", "layer"}), _json, max_size=4)
_number = st.integers(-(2**63), 2**63 - 1) | st.floats()
_event = st.tuples(st.just("event"), _names, st.integers(0, 2**63 - 1), _names, st.none() | _names, _fields)
_metric = st.tuples(
    st.just("metric"),
    st.integers(0, 2**63 - 1),
    _names,
    st.dictionaries(_names.filter(lambda n: n not in {"run", "step"}), _number | st.dictionaries(st.text(max_size=6), _number, min_size=1, max_size=3), min_size=1, max_size=4),
)


def _expected(value):
    """What a JSON value reads back as: non-finite floats are None, tuples are lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def fresh_folders(tmp_path_factory):
    """New folder names under one module-wide directory (cheaper than a temporary dir per example)."""
    base = tmp_path_factory.mktemp("property")
    return (base / str(i) for i in itertools.count())


@given(records=st.lists(_event | _metric, max_size=12), batch_size=st.integers(1, 5))
def test_any_sequence_of_records_reads_back_equal_from_both_stores(fresh_folders, records, batch_size):
    want_events, want_metrics = [], []
    folder = next(fresh_folders)
    with RunLog(folder, batch_size=batch_size) as log:
        for record in records:
            if record[0] == "event":
                _, kind, step, run, layer, fields = record
                log.event(kind, step=step, run=run, layer=layer, **fields)
                want = {"run": run, "step": step, "kind": kind} | ({} if layer is None else {"layer": layer})
                want_events.append(want | _expected(fields))
            else:
                _, step, run, values = record
                log.metric(step=step, run=run, **values)
                want_metrics.append({"run": run, "step": step} | _expected(values))
    for source in ("jsonl", "sqlite"):
        assert read_events(folder, source=source) == want_events
        assert read_metrics(folder, source=source) == want_metrics


# --- growth curves and growth per window ---


def growth_event(step: int, sizes: list[int], nnz: int, kind: str = "growth", run: str = "g-s0") -> dict:
    return {"run": run, "step": step, "kind": kind, "sizes": sizes, "nnz": nnz}


def test_growth_curves_orders_events_before_metrics_at_a_step_and_keeps_runs_apart() -> None:
    events = [
        growth_event(200, [4, 3, 3, 2], 40),
        growth_event(100, [4, 3, 2, 2], 30),
        growth_event(150, [4, 2, 2, 2], 20, kind="rollback"),
        growth_event(100, [4, 9, 2], 50, run="other-s0"),
        {"run": "g-s0", "step": 120, "kind": "clone", "sizes": [1]},  # not a growth record
    ]
    metrics = [{"run": "g-s0", "step": 0, "layer_sizes": {"0": 4, "1": 2, "2": 2, "3": 2}, "nnz": 16},
               {"run": "g-s0", "step": 200, "layer_sizes": {"0": 4, "1": 3, "2": 3, "3": 2}}]
    curves = growth_curves(events, metrics)
    assert list(curves) == ["g-s0", "other-s0"]
    c = curves["g-s0"]
    assert c["steps"].tolist() == [0, 100, 150, 200, 200]
    assert c["sizes"][:, 1].tolist() == [2, 3, 2, 3, 3]
    assert c["nnz"][:4].tolist() == [16, 30, 20, 40] and math.isnan(c["nnz"][4])  # the metric has none
    with pytest.raises(InvalidArgumentError, match="layer numbers"):
        growth_curves([], [{"run": "g", "step": 0, "layer_sizes": {"a": 1}}])


def test_growth_per_window_counts_net_additions_and_puts_boundary_events_in_the_earlier_window() -> None:
    events = [
        growth_event(1000, [4, 3, 2, 2], 30),  # the last step of window 0
        growth_event(1001, [4, 3, 4, 2], 45),
        growth_event(1500, [4, 3, 3, 2], 40, kind="rollback"),
        growth_event(2300, [4, 5, 3, 2], 60),  # in the short last window (2000, 2300]
    ]
    start = {"run": "g-s0", "step": 0, "layer_sizes": {"0": 4, "1": 2, "2": 2, "3": 2}, "nnz": 16}
    curve = growth_curves(events, [start])["g-s0"]
    got = growth_per_window(curve, 1000, 2300)
    assert got == {"window": 1000, "ends": [1000, 2000, 2300], "neurons": [1, 1, 2], "edges": [14, 10, 20]}
    assert growth_per_window(curve, 5000, 2300)["neurons"] == [4]
    assert growth_per_window(curve, 1000, 0) == {"window": 1000, "ends": [], "neurons": [], "edges": []}


def test_growth_per_window_rejects_bad_arguments_naming_them() -> None:
    curve = growth_curves([growth_event(10, [4, 3, 2], 9)], [{"run": "g-s0", "step": 0, "layer_sizes": {"0": 4, "1": 2, "2": 2}}])["g-s0"]
    assert growth_per_window(curve, 10, 10)["edges"] == [None]  # no edge count at the start
    for window in (0, -5, 2.5, True):
        with pytest.raises(InvalidArgumentError, match=f"window: .*{window!r}"):
            growth_per_window(curve, window, 100)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="end: .*-1"):
        growth_per_window(curve, 10, -1)
    late = growth_curves([growth_event(10, [4, 3, 2], 9)])["g-s0"]
    with pytest.raises(InvalidArgumentError, match="step 0"):
        growth_per_window(late, 10, 100)


@settings(max_examples=60, deadline=None)
@given(
    increments=st.lists(st.tuples(st.integers(1, 500), st.integers(-2, 5), st.integers(-20, 50)), max_size=12),
    window=st.integers(1, 700),
    end=st.integers(0, 4000),
)
def test_growth_per_window_sums_to_the_net_growth_up_to_the_end(increments, window, end) -> None:
    step, hidden, nnz = 0, 10, 100
    events, at_end = [], (10, 100)
    for gap, dn, de in increments:
        step, hidden, nnz = step + gap, max(1, hidden + dn), max(0, nnz + de)
        events.append(growth_event(step, [3, hidden, 2], nnz))
        if step <= end:
            at_end = (hidden, nnz)
    start = {"run": "g-s0", "step": 0, "layer_sizes": {"0": 3, "1": 10, "2": 2}, "nnz": 100}
    got = growth_per_window(growth_curves(events, [start])["g-s0"], window, end)
    assert len(got["ends"]) == -(-end // window) and (not got["ends"] or got["ends"][-1] == end)
    assert sum(got["neurons"]) == at_end[0] - 10 and sum(got["edges"]) == at_end[1] - 100
