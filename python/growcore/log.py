"""The run folder of a training run: event log, metrics, summary and plots (no torch).

A :class:`RunLog` owns one folder and writes, for any number of runs (a run is one method with
one seed, named e.g. ``"rigl-s0"``, see :func:`run_name`):

``events.jsonl``
    one JSON object per line per structural event, keys in this order:
    ``{"run", "step", "kind", "layer" (only when given), **fields}``;
``metrics.jsonl``
    one JSON object per line per metric record: ``{"run", "step", **values}``, where a value is a
    number or a one-level ``{key: number}`` mapping (e.g. ``density={"fc1": 0.1}``);
``run.sqlite``
    the same records, for queries (stdlib :mod:`sqlite3`)::

        events(seq INTEGER PRIMARY KEY, run, step, kind, layer, payload)  -- payload: JSON of fields
        metrics(seq, run, step, name, key, value)  -- one row per number; key NULL for scalars
        meta(key PRIMARY KEY, value)               -- schema_version, nonfinite counts (JSON)

    ``seq`` is the record's 0-based line number in its JSONL file; both tables are indexed on
    ``(run, step)``. ``metrics.value`` has no declared type, so ints stay ints;
``summary.json``
    whatever :meth:`RunLog.summary` is given (a wall-clock field, if any, is the caller's);
``accuracy.png``
    :meth:`RunLog.plot_accuracy` / :func:`plot_accuracy`;
``growth.png``
    for growing networks, :meth:`RunLog.plot_growth` / :func:`plot_growth`: neurons per hidden
    layer and edges over steps (see :func:`growth_curves` for the records it reads).

**Batches.** Records are buffered and written to the JSONL files and SQLite together, every
``batch_size`` records, on :meth:`RunLog.flush`, :meth:`RunLog.summary` and on close (also when
the ``with`` block exits through an exception, so a crashed run keeps its log). Readers see what
has been flushed.

**Durability.** Nothing is fsync'd (SQLite runs with ``synchronous=OFF``): a crash or kill of
the training process loses at most the records not yet flushed (a kill in the middle of a flush
can leave the two stores a batch apart, which ``append=True`` detects and refuses); an
operating-system crash or power loss may lose or damage the last batches. Syncing every batch
would cost more than the rest of the logging. A flush that fails (a full disk, say) leaves both
stores as they were and keeps the batch for the next flush.

**Non-finite numbers.** JSON has no NaN or infinity, so a NaN or +-inf anywhere in a record or
summary is written as ``null`` (SQL ``NULL``) and counted per field path, e.g.
``{"metrics.loss": 3, "events.score": 1, "summary.test_loss": 1}``. The counts are kept in the
``meta`` table (accumulated over appends) and returned by :attr:`RunLog.nonfinite_counts` and
:func:`read_nonfinite_counts`. Metric values cannot be ``None`` otherwise, so ``null`` in
``metrics`` always means "was non-finite".

**Determinism.** Nothing is added to a record: no timestamps, no host names; the same calls
write the same bytes.

**Reopening.** ``RunLog(folder)`` refuses a folder that already holds a run log
(:class:`FileExistsError`), so two runs never mix by accident; ``RunLog(folder, append=True)``
adds to it after checking that its JSONL files and its SQLite file hold the same number of
records (a log cut short mid-write raises :class:`growcore.errors.InvalidArgumentError`).

A ``RunLog`` is for one writer (one process, one thread): under ``torch.distributed`` only rank 0
should write.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from growcore.errors import InvalidArgumentError

EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.jsonl"
SQLITE_FILE = "run.sqlite"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "accuracy.png"
GROWTH_PLOT_FILE = "growth.png"
GROWTH_KINDS = ("growth", "rollback")
SCHEMA_VERSION = 1

_LOG_FILES = (EVENTS_FILE, METRICS_FILE, SQLITE_FILE)
_INT64 = (-(2**63), 2**63 - 1)
_RUN_NAME = re.compile(r"^(?P<method>.+)-s(?P<seed>[0-9]+)$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    layer TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_step ON events(run, step);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
CREATE TABLE IF NOT EXISTS metrics(
    seq INTEGER NOT NULL,
    run TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    key TEXT,
    value
);
CREATE INDEX IF NOT EXISTS metrics_run_step ON metrics(run, step);
CREATE INDEX IF NOT EXISTS metrics_seq ON metrics(seq);
"""

_Row = tuple[Any, ...]


class RunLog:
    """Writer of a run folder (see the module docstring for the files and their rules).

    ``folder`` is created with its parents. ``run`` is the default run name for :meth:`event`
    and :meth:`metric` calls that do not give one. ``append=True`` adds to an existing log
    instead of refusing it. ``batch_size`` records are buffered between writes.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        run: str | None = None,
        append: bool = False,
        batch_size: int = 500,
    ) -> None:
        if run is not None:
            _check_name("run", run)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        path = Path(folder)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"folder={str(path)!r} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        existing = [n for n in (*_LOG_FILES, SUMMARY_FILE) if (path / n).exists()]
        if existing and not append:
            raise FileExistsError(
                f"folder={str(path)!r} already holds a run log ({', '.join(existing)}); "
                "pass append=True to add to it, or choose a new folder"
            )
        self.folder = path
        self.run = run
        self.batch_size = batch_size
        self._pending_events: list[tuple[bytes, _Row]] = []
        self._pending_metrics: list[tuple[bytes, list[_Row]]] = []
        self._nonfinite: dict[str, int] = {}
        self._nonfinite_dirty = False

        present = [n for n in _LOG_FILES if (path / n).exists()]
        if present and len(present) != len(_LOG_FILES):
            missing = [n for n in _LOG_FILES if n not in present]
            raise InvalidArgumentError(
                f"folder={str(path)!r} holds an incomplete run log: {', '.join(present)} "
                f"without {', '.join(missing)}"
            )
        self._db = sqlite3.connect(path / SQLITE_FILE)
        try:
            # No fsync per batch: the log survives a crash of the process (the common failure),
            # and the JSONL files are not fsync'd either; see "Durability" above.
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version")
            if version is None:
                with self._db:
                    self._db.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
            elif version != str(SCHEMA_VERSION):
                raise InvalidArgumentError(
                    f"folder={str(path)!r}: run.sqlite has schema version {version}, this "
                    f"growcore writes version {SCHEMA_VERSION}"
                )
            self._next_event = _count_lines(path / EVENTS_FILE)
            self._next_metric = _count_lines(path / METRICS_FILE)
            self._check_consistent()
            self._nonfinite = dict(json.loads(self._meta("nonfinite") or "{}"))
            self._events_file = open(path / EVENTS_FILE, "ab")
            self._metrics_file = open(path / METRICS_FILE, "ab")
        except BaseException:
            self._db.close()
            raise
        self._closed = False

    # ------------------------------------------------------------------ writing

    def event(
        self,
        /,
        kind: str,
        *,
        step: int,
        run: str | None = None,
        layer: str | None = None,
        **fields: Any,
    ) -> None:
        """Record one structural event, e.g. ``event("rewire", step=120, layer="fc1", dropped=30)``.

        ``kind`` and ``run`` (or the log's default run) are non-empty strings, ``step`` an int in
        ``[0, 2**63)``, ``layer`` an optional non-empty string. ``fields`` hold JSON values:
        None, bool, int, float, str, lists/tuples (written as lists), numpy scalars and arrays
        (written as numbers and lists), and mappings with string keys. Every argument is checked
        before anything is buffered.
        """
        _check_name("kind", kind)
        run = self._run(run)
        step = _check_step(step)
        if layer is not None:
            _check_name("layer", layer)
        self._check_open()
        counts: dict[str, int] = {}
        clean = {name: _clean(v, f"events.{name}", counts) for name, v in fields.items()}
        record: dict[str, Any] = {"run": run, "step": step, "kind": kind}
        if layer is not None:
            record["layer"] = layer
        record.update(clean)
        line = _json_line(record)
        payload = json.dumps(clean, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        self._pending_events.append((line, (self._next_event, run, step, kind, layer, payload)))
        self._next_event += 1
        self._count(counts)
        self._maybe_flush()

    def metric(self, /, *, step: int, run: str | None = None, **values: Any) -> None:
        """Record metrics at ``step``, e.g. ``metric(step=100, loss=0.3, density={"fc1": 0.1})``.

        Each value is a real number (int in int64 range or float; numpy scalars accepted, bools
        and ``None`` refused) or a non-empty mapping from string keys to such numbers. At least
        one value is required. NaN and infinities are written as ``null`` and counted.
        """
        run = self._run(run)
        step = _check_step(step)
        self._check_open()
        if not values:
            raise InvalidArgumentError("metric() needs at least one value, got none")
        counts: dict[str, int] = {}
        record: dict[str, Any] = {"run": run, "step": step}
        rows: list[_Row] = []
        seq = self._next_metric
        for name, value in values.items():
            if isinstance(value, Mapping):
                if not value:
                    raise InvalidArgumentError(f"metric {name!r} is an empty mapping")
                inner: dict[str, Any] = {}
                for key, v in value.items():
                    if not isinstance(key, str):
                        raise TypeError(
                            f"metric {name!r} has key {key!r} of type {type(key).__name__}; "
                            "keys must be str"
                        )
                    inner[key] = _number(v, f"{name}[{key!r}]", f"metrics.{name}.{key}", counts)
                    rows.append((seq, run, step, name, key, inner[key]))
                record[name] = inner
            else:
                record[name] = _number(value, name, f"metrics.{name}", counts)
                rows.append((seq, run, step, name, None, record[name]))
        line = _json_line(record)
        self._pending_metrics.append((line, rows))
        self._next_metric += 1
        self._count(counts)
        self._maybe_flush()

    def summary(self, obj: Mapping[str, Any]) -> Path:
        """Write ``obj`` to ``summary.json`` (replacing any earlier summary) and flush the log.

        Values follow the rules of :meth:`event` fields; non-finite numbers become ``null`` and
        are counted as ``summary.<path>`` (the counts of a replaced summary are dropped with it).
        The file is replaced atomically. Returns its path.
        """
        self._check_open()
        if not isinstance(obj, Mapping):
            raise TypeError(f"obj must be a mapping, got {type(obj).__name__}")
        counts: dict[str, int] = {}
        clean = _clean(obj, "summary", counts)
        text = json.dumps(clean, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
        path = self.folder / SUMMARY_FILE
        tmp = path.with_name(SUMMARY_FILE + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        # The new summary replaces the old one, so its counts replace the old summary's counts.
        for key in [k for k in self._nonfinite if k.startswith("summary.")]:
            del self._nonfinite[key]
            self._nonfinite_dirty = True
        self._count(counts)
        self.flush()
        return path

    def plot_accuracy(self, metric: str = "accuracy", filename: str = PLOT_FILE) -> Path:
        """Flush, then plot ``metric`` over steps for every run logged here into the folder.

        See :func:`plot_accuracy`; returns the PNG's path.
        """
        self.flush()
        return plot_accuracy(read_metrics(self.folder), self.folder / filename, metric=metric)

    def plot_growth(self, filename: str = GROWTH_PLOT_FILE) -> Path:
        """Flush, then plot the growth curve of every growing run logged here into the folder.

        See :func:`plot_growth`; returns the PNG's path.
        """
        self.flush()
        return plot_growth(read_events(self.folder), read_metrics(self.folder), self.folder / filename)

    def flush(self) -> None:
        """Write every buffered record to both stores (one SQLite transaction, then JSONL)."""
        self._check_open()
        if not (self._pending_events or self._pending_metrics or self._nonfinite_dirty):
            return
        # The JSONL lines are written inside the SQLite transaction: if either store fails,
        # the transaction rolls back, the JSONL files are cut back to their old ends, and the
        # batch stays buffered for the next flush.
        ends = self._events_file.tell(), self._metrics_file.tell()
        try:
            with self._db:
                self._db.executemany(
                    "INSERT INTO events(seq, run, step, kind, layer, payload) VALUES (?, ?, ?, ?, ?, ?)",
                    [row for _, row in self._pending_events],
                )
                self._db.executemany(
                    "INSERT INTO metrics(seq, run, step, name, key, value) VALUES (?, ?, ?, ?, ?, ?)",
                    [row for _, rows in self._pending_metrics for row in rows],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('nonfinite', ?)",
                    (json.dumps(self._nonfinite, sort_keys=True),),
                )
                self._events_file.write(b"".join(line for line, _ in self._pending_events))
                self._metrics_file.write(b"".join(line for line, _ in self._pending_metrics))
                self._events_file.flush()
                self._metrics_file.flush()
        except BaseException:
            self._cut_jsonl(ends)
            raise
        self._pending_events.clear()
        self._pending_metrics.clear()
        self._nonfinite_dirty = False

    def close(self) -> None:
        """Flush and close the files; calling it again does nothing."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._events_file.close()
            self._metrics_file.close()
            self._db.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def nonfinite_counts(self) -> dict[str, int]:
        """Non-finite numbers written as ``null`` so far, by field path (including earlier appends)."""
        return dict(sorted(self._nonfinite.items()))

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"RunLog({str(self.folder)!r}, {state}, events={self._next_event}, metrics={self._next_metric})"

    # ------------------------------------------------------------------ helpers

    def _run(self, run: str | None) -> str:
        if run is None:
            if self.run is None:
                raise InvalidArgumentError(
                    "run is required: pass run=... here or RunLog(folder, run=...)"
                )
            return self.run
        _check_name("run", run)
        return run

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgumentError(f"RunLog({str(self.folder)!r}) is closed")

    def _count(self, counts: dict[str, int]) -> None:
        for key, n in counts.items():
            self._nonfinite[key] = self._nonfinite.get(key, 0) + n
            self._nonfinite_dirty = True

    def _cut_jsonl(self, ends: tuple[int, int]) -> None:
        """Cuts the JSONL files back to ``ends``, dropping anything a failed flush wrote or
        still buffers (closing the file discards its buffer even when writing it fails)."""
        for attr, name, end in (("_events_file", EVENTS_FILE, ends[0]), ("_metrics_file", METRICS_FILE, ends[1])):
            try:
                getattr(self, attr).close()
            except OSError:
                pass
            os.truncate(self.folder / name, end)
            setattr(self, attr, open(self.folder / name, "ab"))

    def _maybe_flush(self) -> None:
        if len(self._pending_events) + len(self._pending_metrics) >= self.batch_size:
            self.flush()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _check_consistent(self) -> None:
        n_events = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        n_metrics = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM metrics").fetchone()[0]
        for name, in_jsonl, in_sqlite in (
            (EVENTS_FILE, self._next_event, n_events),
            (METRICS_FILE, self._next_metric, n_metrics),
        ):
            if in_jsonl != in_sqlite:
                raise InvalidArgumentError(
                    f"folder={str(self.folder)!r}: {name} holds {in_jsonl} records but "
                    f"{SQLITE_FILE} holds {in_sqlite}; the log was cut short while writing and "
                    "cannot be appended to"
                )


# ---------------------------------------------------------------------- reading


def read_events(
    folder: str | os.PathLike[str], *, source: Literal["jsonl", "sqlite"] = "jsonl"
) -> list[dict[str, Any]]:
    """Every event in the folder, in the order written, as dicts shaped like ``events.jsonl``.

    ``source`` picks the store; both give equal lists for a log written by :class:`RunLog`.
    """
    path = Path(folder)
    if source == "jsonl":
        return _read_jsonl(path / EVENTS_FILE)
    if source == "sqlite":
        out: list[dict[str, Any]] = []
        with _open_readonly(path / SQLITE_FILE) as db:
            for run, step, kind, layer, payload in db.execute(
                "SELECT run, step, kind, layer, payload FROM events ORDER BY seq"
            ):
                record: dict[str, Any] = {"run": run, "step": step, "kind": kind}
                if layer is not None:
                    record["layer"] = layer
                record.update(json.loads(payload))
                out.append(record)
        return out
    raise InvalidArgumentError(f"source must be 'jsonl' or 'sqlite', got {source!r}")


def read_metrics(
    folder: str | os.PathLike[str], *, source: Literal["jsonl", "sqlite"] = "jsonl"
) -> list[dict[str, Any]]:
    """Every metric record in the folder, in the order written, shaped like ``metrics.jsonl``.

    ``source`` picks the store; both give equal lists for a log written by :class:`RunLog`.
    """
    path = Path(folder)
    if source == "jsonl":
        return _read_jsonl(path / METRICS_FILE)
    if source == "sqlite":
        out: list[dict[str, Any]] = []
        last = -1
        with _open_readonly(path / SQLITE_FILE) as db:
            for seq, run, step, name, key, value in db.execute(
                "SELECT seq, run, step, name, key, value FROM metrics ORDER BY seq, rowid"
            ):
                if seq != last:
                    out.append({"run": run, "step": step})
                    last = seq
                if key is None:
                    out[-1][name] = value
                else:
                    out[-1].setdefault(name, {})[key] = value
        return out
    raise InvalidArgumentError(f"source must be 'jsonl' or 'sqlite', got {source!r}")


def read_nonfinite_counts(folder: str | os.PathLike[str]) -> dict[str, int]:
    """The non-finite numbers written as ``null`` in the folder's log, by field path."""
    with _open_readonly(Path(folder) / SQLITE_FILE) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'nonfinite'").fetchone()
    return dict(sorted(json.loads(row[0]).items())) if row else {}


# ---------------------------------------------------------------------- run names and plots


def run_name(method: str, seed: int) -> str:
    """The conventional name of one run: ``run_name("rigl", 0) == "rigl-s0"``."""
    _check_name("method", method)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative int, got {seed!r}")
    return f"{method}-s{seed}"


def split_run_name(run: str) -> tuple[str, int | None]:
    """Inverse of :func:`run_name`: ``"rigl-s0"`` -> ``("rigl", 0)``; other names -> ``(run, None)``."""
    m = _RUN_NAME.match(run)
    if m is None:
        return run, None
    return m.group("method"), int(m.group("seed"))


def mean_curves(
    metrics_rows: Iterable[Mapping[str, Any]],
    metric: str = "accuracy",
    *,
    group: Callable[[str], str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per method, the mean of ``metric`` over its runs (seeds) at every step.

    Rows are metric records (``{"run", "step", metric: value, ...}``, as :func:`read_metrics`
    returns); rows without a finite number under ``metric`` are ignored. Runs are grouped by
    ``group(run)``, by default the method of :func:`split_run_name`, so ``rigl-s0`` and
    ``rigl-s1`` are one method. Returns ``{method: {"steps", "mean", "std", "n", "runs"}}`` in
    order of first appearance: ``steps`` is the sorted union of the runs' steps, ``n`` how many
    runs have a value there, ``std`` the sample standard deviation (NaN where ``n < 2``), and
    ``runs`` the run names. Raises :class:`InvalidArgumentError` when no row has the metric.
    """
    key = group if group is not None else (lambda run: split_run_name(run)[0])
    # method -> run -> step -> value; dicts keep the order of first appearance (deterministic).
    series: dict[str, dict[str, dict[int, float]]] = {}
    for row in metrics_rows:
        value = row.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        run, step = row.get("run"), row.get("step")
        if not isinstance(run, str) or isinstance(step, bool) or not isinstance(step, int):
            raise InvalidArgumentError(
                f"metrics_rows: a row with {metric!r} needs a str 'run' and an int 'step', "
                f"got run={run!r}, step={step!r}"
            )
        series.setdefault(key(run), {}).setdefault(run, {})[step] = float(value)
    if not series:
        raise InvalidArgumentError(
            f"metrics_rows has no row with a finite numeric {metric!r} value"
        )
    out: dict[str, dict[str, Any]] = {}
    for method, runs in series.items():
        steps = sorted({s for values in runs.values() for s in values})
        table = np.array([[values.get(s, np.nan) for s in steps] for values in runs.values()])
        have = np.isfinite(table)
        n = have.sum(axis=0)
        # Every step comes from at least one run, so n >= 1 and the mean is always defined.
        mean = np.where(have, table, 0.0).sum(axis=0) / n
        dev = np.where(have, table - mean, 0.0)
        std = np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1))
        std[n < 2] = np.nan
        out[method] = {
            "steps": np.asarray(steps, dtype=np.int64),
            "mean": mean,
            "std": std,
            "n": n,
            "runs": list(runs),
        }
    return out


def plot_accuracy(
    metrics_rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    metric: str = "accuracy",
    group: Callable[[str], str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot ``metric`` over steps, one line per method, into the PNG file ``path``.

    Each line is the mean over the method's runs (seeds) from :func:`mean_curves`, with a band
    of one sample standard deviation where at least two runs have a value. Uses matplotlib's Agg
    renderer without touching pyplot's global state. Returns the path written.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_accuracy needs matplotlib: pip install 'growcore[run]' (or pip install matplotlib)"
        ) from exc
    curves = mean_curves(metrics_rows, metric, group=group)
    fig = Figure(figsize=(7.0, 4.5), dpi=100)
    ax = fig.add_subplot()
    for method, c in curves.items():
        runs = len(c["runs"])
        label = method if runs == 1 else f"{method} ({runs} seeds)"
        (line,) = ax.plot(c["steps"], c["mean"], label=label, linewidth=1.5)
        if runs > 1:
            ax.fill_between(
                c["steps"], c["mean"] - c["std"], c["mean"] + c["std"], where=c["n"] >= 2,
                color=line.get_color(), alpha=0.2, linewidth=0,
            )
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title if title is not None else f"{metric} over training")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def growth_curves(
    events_rows: Iterable[Mapping[str, Any]],
    metrics_rows: Iterable[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Per run, its layer sizes and edge count over steps: the growth curve of a growing network.

    Points come from events of the kinds ``growth`` and ``rollback`` (fields ``sizes``, the layer
    sizes input to output, and ``nnz``, the edges after the event) and from metric records with
    ``layer_sizes`` (``{"0": n0, "1": n1, ...}``) and ``nnz``, such as the ones ``growcore run``
    writes at step 0 and after every epoch. At one step, events come before metrics (a metric
    is recorded after the step's events). Runs without any such record are left out; a point
    without ``nnz`` has NaN there.

    Returns ``{run: {"steps", "sizes", "nnz"}}`` in order of first appearance: ``steps`` int64
    ``(n,)``, ``sizes`` float64 ``(n, layers)`` (NaN where a point has fewer layers), ``nnz``
    float64 ``(n,)``.
    """
    # run -> [(step, order, sizes, nnz)], order 0 for events and 1 for metrics.
    points: dict[str, list[tuple[int, int, list[float], float]]] = {}

    def add(row: Mapping[str, Any], order: int, sizes: Any) -> None:
        run, step = row.get("run"), row.get("step")
        if not isinstance(run, str) or isinstance(step, bool) or not isinstance(step, int):
            raise InvalidArgumentError(
                f"a growth record needs a str 'run' and an int 'step', got run={run!r}, step={step!r}"
            )
        nnz = row.get("nnz")
        edges = float(nnz) if isinstance(nnz, (int, float)) and not isinstance(nnz, bool) else math.nan
        values = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan for v in sizes]
        points.setdefault(run, []).append((step, order, values, edges))

    for row in events_rows:
        if row.get("kind") in GROWTH_KINDS and isinstance(row.get("sizes"), list):
            add(row, 0, row["sizes"])
    for row in metrics_rows:
        sizes = row.get("layer_sizes")
        if isinstance(sizes, Mapping) and sizes:
            try:
                ordered = [sizes[k] for k in sorted(sizes, key=int)]
            except ValueError:
                raise InvalidArgumentError(
                    f"metric 'layer_sizes' must be keyed by layer numbers, got keys {sorted(sizes)}"
                ) from None
            add(row, 1, ordered)
    out: dict[str, dict[str, Any]] = {}
    for run, rows in points.items():
        rows.sort(key=lambda r: (r[0], r[1]))  # stable: equal keys keep the order written
        width = max(len(r[2]) for r in rows)
        sizes_table = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            sizes_table[i, : len(r[2])] = r[2]
        out[run] = {
            "steps": np.asarray([r[0] for r in rows], dtype=np.int64),
            "sizes": sizes_table,
            "nnz": np.asarray([r[3] for r in rows], dtype=np.float64),
        }
    return out


def growth_per_window(curve: Mapping[str, Any], window: int, end: int) -> dict[str, Any]:
    """What a growing run added in each window of ``window`` steps up to step ``end``: the
    growth rate behind the self-limiting question (do additions fall as the network grows?).

    ``curve`` is one run's entry of :func:`growth_curves` and must have a point at or before
    step 0. Window ``i`` covers steps ``(i*window, min((i+1)*window, end)]``, so an event at a
    window's last step counts in that window; the last window is shorter when ``window`` does
    not divide ``end``. Counts are net: hidden neurons (every layer but the first and the last)
    and edges at the window's end minus at its start, so a rollback subtracts what it undoes.

    Returns ``{"window", "ends", "neurons", "edges"}``: the window length, each window's last
    step, and the lists of int counts (``edges`` None where the curve has no edge count).
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidArgumentError(f"window: must be an int of at least 1 step, got {window!r}")
    if isinstance(end, bool) or not isinstance(end, int) or end < 0:
        raise InvalidArgumentError(f"end: must be a non-negative int step, got {end!r}")
    steps = np.asarray(curve["steps"], dtype=np.int64)
    if steps.size == 0 or steps[0] > 0:
        raise InvalidArgumentError("curve: needs a point at or before step 0 (the starting size)")
    hidden = np.nansum(np.asarray(curve["sizes"], dtype=np.float64)[:, 1:-1], axis=1)
    nnz = np.asarray(curve["nnz"], dtype=np.float64)
    ends = [min(e, end) for e in range(window, end + window, window)] if end > 0 else []
    # The value at step b is the last point at or before b (points are sorted by step).
    at = np.searchsorted(steps, [0, *ends], side="right") - 1
    neurons = np.diff(hidden[at])
    edges = np.diff(nnz[at])
    return {
        "window": window,
        "ends": ends,
        "neurons": [int(round(n)) for n in neurons],
        "edges": [None if math.isnan(e) else int(round(e)) for e in edges],
    }


def plot_growth(
    events_rows: Iterable[Mapping[str, Any]],
    metrics_rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Plot each growing run's neurons per hidden layer (top) and edges (bottom) over steps
    into the PNG file ``path``, from :func:`growth_curves`.

    The curves are steps (a value holds until the next record). One colour per run, one line
    style per hidden layer. Raises :class:`InvalidArgumentError` when no run has a growth
    record. Uses matplotlib's Agg renderer without touching pyplot's global state. Returns the
    path written.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_growth needs matplotlib: pip install 'growcore[run]' (or pip install matplotlib)"
        ) from exc
    curves = growth_curves(events_rows, metrics_rows)
    if not curves:
        raise InvalidArgumentError(
            "no growth records: expected 'growth'/'rollback' events with 'sizes' or metrics with 'layer_sizes'"
        )
    fig = Figure(figsize=(7.0, 6.5), dpi=100)
    neurons, edges = fig.subplots(2, 1, sharex=True)
    styles = ("-", "--", ":", "-.")
    colors = [f"C{i % 10}" for i in range(len(curves))]
    for color, (run, c) in zip(colors, curves.items()):
        steps, sizes = c["steps"], c["sizes"]
        for layer in range(1, sizes.shape[1] - 1):  # hidden layers only
            have = np.isfinite(sizes[:, layer])
            if have.any():
                neurons.plot(
                    steps[have], sizes[have, layer], drawstyle="steps-post", color=color,
                    linestyle=styles[(layer - 1) % len(styles)], linewidth=1.5, label=f"{run} layer {layer}",
                )
        have = np.isfinite(c["nnz"])
        if have.any():
            edges.plot(steps[have], c["nnz"][have], drawstyle="steps-post", color=color, linewidth=1.5, label=run)
    neurons.set_ylabel("neurons")
    neurons.set_title(title if title is not None else "growth: neurons per hidden layer and edges")
    edges.set_ylabel("edges (nnz)")
    edges.set_xlabel("step")
    for ax in (neurons, edges):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


# ---------------------------------------------------------------------- internals


def _check_name(argument: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise InvalidArgumentError(f"{argument} must be a non-empty string, got ''")


def _check_step(step: object) -> int:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an int, got {type(step).__name__} {step!r}")
    if not 0 <= int(step) <= _INT64[1]:
        raise InvalidArgumentError(f"step must be in [0, 2**63), got {step}")
    return int(step)


def _number(value: object, argument: str, path: str, counts: dict[str, int]) -> int | float | None:
    """A metric value as a Python int or float, or None (counted) when it is not finite."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"metric {argument} must be a real number (int or float; call .item() on a tensor), "
            f"got {type(value).__name__} {value!r}"
        )
    if isinstance(value, (int, np.integer)):
        if not _INT64[0] <= int(value) <= _INT64[1]:
            raise InvalidArgumentError(
                f"metric {argument} = {value} does not fit in a signed 64-bit integer"
            )
        return int(value)
    f = float(value)
    if math.isfinite(f):
        return f
    counts[path] = counts.get(path, 0) + 1
    return None


def _clean(value: Any, path: str, counts: dict[str, int]) -> Any:
    """``value`` as plain JSON data: non-finite floats become None (counted under ``path``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f):
            return f
        counts[path] = counts.get(path, 0) + 1
        return None
    if isinstance(value, np.ndarray):
        return _clean(value.tolist(), path, counts)
    if isinstance(value, (list, tuple)):
        return [_clean(v, path, counts) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{path} has key {k!r} of type {type(k).__name__}; JSON keys must be str"
                )
            out[k] = _clean(v, f"{path}.{k}", counts)
        return out
    raise TypeError(
        f"{path} must hold JSON values (None, bool, int, float, str, list, dict, numpy "
        f"scalar or array), got {type(value).__name__} {value!r}"
    )


def _json_line(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"record for run {record.get('run')!r} at step {record.get('step')} holds text "
            f"that is not valid Unicode (a lone surrogate): {exc}"
        ) from None


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        raise InvalidArgumentError(
            f"{str(path)!r} ends in a partial line: the log was cut short while writing and "
            "cannot be appended to"
        )
    return data.count(b"\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"no run log at {str(path)!r}")
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(
                    f"{str(path)!r} line {number} is not valid JSON: {exc}"
                ) from None
            if not isinstance(record, dict):
                raise InvalidArgumentError(
                    f"{str(path)!r} line {number} is not a JSON object: {line[:80]!r}"
                )
            out.append(record)
    return out


class _open_readonly:
    """A read-only SQLite connection that never creates the file, closed on exit."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no run log at {str(path)!r}")
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()


__all__ = [
    "EVENTS_FILE",
    "GROWTH_KINDS",
    "GROWTH_PLOT_FILE",
    "METRICS_FILE",
    "PLOT_FILE",
    "SQLITE_FILE",
    "SUMMARY_FILE",
    "RunLog",
    "growth_curves",
    "growth_per_window",
    "mean_curves",
    "plot_accuracy",
    "plot_growth",
    "read_events",
    "read_metrics",
    "read_nonfinite_counts",
    "run_name",
    "split_run_name",
]
