"""The ``growcore`` command line.

``growcore run`` trains an MLP densely and under sparse-training policies, prints a comparison
table and writes a run folder (see :mod:`growcore.log`). With no options it compares dense,
static, SET and RigL at 10% density on scikit-learn's digits. ``--policy grow`` trains a network
that grows from small hidden layers (:class:`growcore.torch.GrowingMLP` and
:class:`growcore.torch.Grower`); the run folder then also has ``growth.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from growcore.errors import GrowcoreError, InvalidArgumentError

FIELDS = ("test_accuracy", "test_loss", "density", "final_density", "active_params", "train_seconds", "turnover")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for the summary's "command"
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with _sigterm_raises():
            return int(args.func(args))
    except (GrowcoreError, ValueError, OSError) as e:  # OSError: e.g. a file the options name
        print(f"growcore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated) as e:
        why = "terminated" if isinstance(e, _Terminated) else "interrupted"
        print(f"growcore {args.command}: {why} (a run folder is put in place only once complete)", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130


class _Terminated(BaseException):
    """SIGTERM (e.g. from a job scheduler), raised like Ctrl-C's KeyboardInterrupt so that the
    command cleans up as it does for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="growcore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser(
        "run",
        help="train and compare dense / static / SET / RigL / apoptosis / grow",
        description="Train an MLP densely and with sparse-training policies; print a table and write a run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--dataset", default="digits", help="digits, or mnist:DIR with MNIST IDX files (t10k only: the 8,000/2,000 split)")
    run.add_argument("--policy", default="dense,static,set,rigl", help="comma-separated methods: dense, static, set, rigl, apoptosis, grow, or a combination of rules run by one engine such as rigl+apoptosis")
    run.add_argument("--density", type=float, default=0.1, help="fraction of each sparse layer's weights kept (over all layers with ERK)")
    run.add_argument("--distribution", default="erk", choices=["erk", "uniform"], help="how the density is spread over layers")
    run.add_argument("--epochs", type=int, default=30)
    run.add_argument("--seed", type=int, default=0, help="first seed (of the initialization, the training order and, on digits, the train/test split)")
    run.add_argument("--seeds", type=int, default=1, help="number of seeds per method (seed, seed+1, ...)")
    run.add_argument("--hidden", default="256,128", help="hidden layer sizes, comma-separated")
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    run.add_argument("--interval", type=int, default=100, help="optimizer steps between structure updates")
    run.add_argument("--drop-fraction", type=float, default=0.3, help="initial fraction of edges moved per update (cosine decay to 0 at 75%% of training)")
    run.add_argument("--strategy", default="function_preserving", help="apoptosis regrowth, comma-separated to compare several: random, mutation, crossover, function_preserving")
    run.add_argument("--rate", type=float, default=0.05, help="apoptosis: fraction of each hidden layer's mature neurons replaced per event (every --interval steps, until 75%% of training)")
    run.add_argument("--senescence", action="store_true", help="apoptosis: also retire senior neurons whose fitness has been flat (senescent after 5 flat intervals, replaced 5 intervals later)")
    run.add_argument("--lr-scale", type=float, default=1.0, help="with --senescence: factor on a senescent neuron's weight updates (1 keeps them, 0 freezes it)")
    grow = run.add_argument_group("grow", "options of --policy grow: a dense MLP that starts small and grows where its neurons saturate")
    grow.add_argument("--start-hidden", default="16,16", help="the hidden layer sizes it starts from, comma-separated")
    grow.add_argument("--activation", default="relu", choices=["relu", "tanh", "sigmoid"], help="hidden activation (sets the saturation thresholds)")
    grow.add_argument("--clone-type", default="both", choices=["vertical", "horizontal", "both"], help="vertical: the clone goes one layer up; horizontal: a Net2Net split in the same layer")
    grow.add_argument("--clone-budget", type=int, default=4, help="clones per growth event")
    grow.add_argument("--max-layer-size", type=int, default=None, help="no clone makes a hidden layer larger than this (None: no limit)")
    grow.add_argument("--radius", type=int, default=3, help="routes (new edges from saturated to spare neurons) reach the hidden layers up to this many ahead")
    grow.add_argument("--fan-in-cap", type=int, default=None, help="no route raises a neuron's fan-in above this (None: no cap)")
    grow.add_argument("--trigger", default="interval", choices=["interval", "grad_variance", "plateau"], help="when to grow: every --grow-every steps, when the gradient norm's variance changes between windows, or when the windowed loss plateaus")
    grow.add_argument("--grow-every", type=int, default=None, help="steps between growth events (interval trigger), or the window of the other triggers (None: --interval)")
    grow.add_argument("--braess", action="store_true", help="roll a growth event back when the mean loss of the 50 steps after it is more than 5%% worse than of the 50 before (no growth meanwhile)")
    grow.add_argument("--katz", action="store_true", help="Katz centrality over |W| picks which saturated neurons are cloned first and get more routes")
    grow.add_argument("--selection", default="extrema", help="which neurons grow, comma-separated to compare: extrema, random (the ablation: random neurons, as many as the extrema)")
    grow.add_argument("--growth-window", type=int, default=1000, metavar="STEPS", help="the summary counts the neurons and edges added in each window of this many steps")
    run.add_argument("--limit", type=int, default=None, help="use only the first N training and N test samples (smoke tests)")
    run.add_argument("--out", default=None, help="run folder (default: runs/<date>-<time>)")
    run.add_argument("--json", default=None, metavar="FILE", help="also write the summary JSON here")
    run.add_argument("--quiet", action="store_true", help="no progress bars or table")
    run.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    # torch is imported here so that `growcore --help` works without it.
    from growcore.data import Dataset, load_dataset
    from growcore.log import RunLog
    from growcore.torch.growth import SELECTIONS
    from growcore.torch.neurons import STRATEGIES
    from growcore.torch.train import RunConfig, check_edges, train_run

    # A method (strategy, selection) listed twice would log two runs under one name: once is enough.
    methods = list(dict.fromkeys(_items("--policy", args.policy)))
    if not methods:
        raise ValueError(f"--policy: expected at least one method, got {args.policy!r}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit: must be at least 1, got {args.limit}")
    out = Path(args.out) if args.out else Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    _check_out(out)
    json_copy = Path(args.json) if args.json is not None else None
    if json_copy is not None:
        _check_json(json_copy, out)
    hidden = _ints("--hidden", args.hidden)
    if args.seeds < 1:
        raise ValueError(f"--seeds: must be at least 1, got {args.seeds}")
    if args.senescence and not any("apoptosis" in m.split("+") for m in methods):
        raise ValueError(f"--senescence: only applies to the apoptosis policy, got --policy {args.policy!r}")
    for flag in ("braess", "katz"):
        if getattr(args, flag) and not any("grow" in m.split("+") for m in methods):
            raise ValueError(f"--{flag}: only applies to the grow policy, got --policy {args.policy!r}")
    start_hidden = _ints("--start-hidden", args.start_hidden)
    # Checked whatever --policy is, like every other option.
    strategies = _choices("--strategy", args.strategy, STRATEGIES)
    selections = _choices("--selection", args.selection, SELECTIONS)
    common: dict[str, Any] = dict(
        density=args.density, distribution=args.distribution, hidden=hidden, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, interval=args.interval, drop_fraction=args.drop_fraction,
        rate=args.rate, lr_scale=args.lr_scale, start_hidden=start_hidden, activation=args.activation,
        clone_type=args.clone_type, clone_budget=args.clone_budget, max_layer_size=args.max_layer_size,
        radius=args.radius, fan_in_cap=args.fan_in_cap, trigger=args.trigger, grow_every=args.grow_every,
        growth_window=args.growth_window,
    )

    def variants(method: str) -> list[dict[str, Any]]:
        """The runs of one method and seed: one per apoptosis strategy and grow selection."""
        parts = method.split("+")
        by_strategy = (
            [{"strategy": x, "senescence": args.senescence} for x in strategies]
            if "apoptosis" in parts
            else [{"strategy": strategies[0]}]
        )
        if "grow" not in parts:
            return by_strategy
        return [{**v, "selection": x, "braess": args.braess, "katz": args.katz} for v in by_strategy for x in selections]

    try:
        configs = [
            RunConfig(method=m, seed=args.seed + s, **common, **variant)
            for s in range(args.seeds)
            for m in methods
            for variant in variants(m)
        ]  # every config is checked before any training starts
    except GrowcoreError as e:
        raise InvalidArgumentError(_flag_message(str(e), args)) from None
    if args.seed < 0 or args.seed + args.seeds > 2**32:
        raise ValueError(f"--seed: the seeds {args.seed}..{args.seed + args.seeds - 1} must be in [0, 2**32)")

    # Each run's data split comes from its own seed (digits; MNIST's split is fixed), so a run of
    # seed s is the run `--seed s` gives, whatever --seed/--seeds it was part of. The runs come in
    # seed order: one split is held at a time.
    loaded: dict[int, Dataset] = {}

    def data_for(seed: int) -> Dataset:
        if seed not in loaded:
            loaded.clear()
            data = load_dataset(args.dataset, seed=seed)
            if args.limit is not None:
                n = args.limit
                data = Dataset(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:n], data.y_test[:n], data.num_classes)
            loaded[seed] = data
        return loaded[seed]

    initial = data_for(args.seed)  # a bad --dataset fails here, before the run folder exists
    dataset, features, classes = initial.name, initial.num_features, initial.num_classes
    del initial  # only one split in memory at a time
    try:
        for config in configs:  # a density that leaves a layer without edges, before training
            check_edges(config, features, classes)
    except GrowcoreError as e:
        raise InvalidArgumentError(_flag_message(str(e), args)) from None

    runs: list[dict[str, Any]] = []
    # Written into a hidden folder and put in place only once complete: a failure or an
    # interruption leaves nothing behind, and a rerun with the same --out is not refused.
    with _StagedFolder(out) as stage, RunLog(stage) as log, _Progress(args.quiet) as progress:
        for config in configs:
            task = progress.add(f"{config.label} seed {config.seed}", config.epochs)
            # One family tree per apoptosis method, from its first seed's run.
            first = "apoptosis" in config.parts and config.seed == args.seed
            tree = stage / f"family_tree-{config.label}.png" if first else None
            runs.append(train_run(config, data_for(config.seed), log, progress=progress.callback(task), family_tree=tree))
        summary = _summary(args, dataset, runs)
        log.summary(summary)
        log.plot_accuracy()
        if any("grow" in r["policy"].split("+") for r in runs):
            log.plot_growth()
    if json_copy is not None:
        # The same cleaned JSON as the run folder's (non-finite numbers written as null).
        try:
            json_copy.write_text((out.resolve() / "summary.json").read_text())
        except OSError as e:
            raise InvalidArgumentError(
                f"--json: cannot write {str(json_copy)!r} ({e.strerror or e}); the run folder {str(out)!r} is complete"
            ) from None
    if not args.quiet:
        _print_table(summary, out)
    return 0


def _items(flag: str, text: str) -> list[str]:
    """The stripped items of a comma-separated option (none for a blank one); an empty item, as
    in "8,,8" or "8,", is an error naming the flag."""
    if not text.strip():
        return []
    items = [x.strip() for x in text.split(",")]
    if "" in items:
        raise InvalidArgumentError(f"{flag}: empty item in {text!r}; expected comma-separated values")
    return items


def _ints(flag: str, text: str) -> tuple[int, ...]:
    items = _items(flag, text)
    try:
        return tuple(int(x) for x in items)
    except ValueError:
        raise InvalidArgumentError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _choices(flag: str, text: str, allowed: Sequence[str]) -> list[str]:
    """At least one of ``allowed``, each once, in the order given."""
    chosen = list(dict.fromkeys(_items(flag, text)))
    unknown = [x for x in chosen if x not in allowed]
    if unknown or not chosen:
        raise InvalidArgumentError(f"{flag}: expected one or more of {', '.join(allowed)}, got {text!r}")
    return chosen


def _flag_message(message: str, args: argparse.Namespace) -> str:
    """A RunConfig error ("drop_fraction: must be ...") as the option that set it names it
    ("--drop-fraction: must be ..."); a message about anything else is kept as it is."""
    name, sep, rest = message.partition(":")
    if sep and name.isidentifier() and name in vars(args) and name not in ("func", "argv", "command"):
        return f"--{name.replace('_', '-')}:{rest}"
    return message


def _check_out(out: Path) -> None:
    """Fails now, before any training, if ``out`` is a file or holds a file a run writes (a
    run's, or the user's: neither is overwritten)."""
    if os.path.lexists(out) and not out.is_dir():  # a file, or a link to nowhere
        raise InvalidArgumentError(f"--out: {str(out)!r} exists and is not a folder")
    held = _run_files_in(out.resolve())  # the folder _StagedFolder writes to
    if held:
        raise InvalidArgumentError(
            f"--out: the folder {str(out)!r} already holds files a run writes ({', '.join(held)}); choose another --out"
        )


def _run_files_in(folder: Path) -> list[str]:
    """The names in ``folder`` (if it is one) that a run writes."""
    return sorted(p.name for p in folder.iterdir() if _is_run_file(p.name)) if folder.is_dir() else []


def _is_run_file(name: str) -> bool:
    """Whether a run folder's file may have this name: its logs, summary or plots."""
    from growcore.log import EVENTS_FILE, GROWTH_PLOT_FILE, METRICS_FILE, PLOT_FILE, SQLITE_FILE, SUMMARY_FILE

    names = (EVENTS_FILE, METRICS_FILE, SQLITE_FILE, SUMMARY_FILE, PLOT_FILE, GROWTH_PLOT_FILE)
    return name in names or name.startswith("family_tree-")


class _StagedFolder:
    """The run folder ``out``, written in a hidden folder and put in place only when the block
    succeeds, so a failed or interrupted run leaves nothing behind and ``out`` can be used again.

    A new ``out`` is staged beside it (with any missing parent folders) and renamed into place;
    an existing folder is staged inside it, and the finished files move up next to the user's
    (``_check_out`` made sure none has their names). When the block raises, the hidden folder and
    the parent folders made for it are removed and the error goes on unchanged. If the finished
    run cannot be put in place, it stays in the hidden folder, which the error names."""

    def __init__(self, out: Path) -> None:
        self.out = out
        # Links followed, as the kernel does, then "a/new/../b" is a/b even when a/new is missing.
        self.path = out.resolve()
        self.inside = False
        self.stage: Path | None = None
        self.created: list[Path] = []  # parent folders made here, deepest last

    def __enter__(self) -> Path:
        self.inside = self.path.is_dir()
        parent = self.path if self.inside else self.path.parent
        try:
            for folder in reversed([p for p in (parent, *parent.parents) if not p.exists()]):
                folder.mkdir()
                self.created.append(folder)
            prefix = ".growcore-run-" if self.inside else f".{self.path.name}."
            self.stage = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent))
            # mkdtemp's 0o700 would become the run folder's: the umask's mode instead, keeping
            # the setgid bit a shared folder passes down.
            os.chmod(self.stage, (self.stage.stat().st_mode & 0o7000) | (0o777 & ~_umask()))
        except BaseException as e:  # Ctrl-C too: __exit__ does not run when __enter__ raises
            self._clean()
            if isinstance(e, OSError):
                raise InvalidArgumentError(f"--out: cannot create the run folder {str(self.out)!r}: {_reason(e)}") from None
            raise
        return self.stage

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self._clean()
            return
        try:
            self._publish()
        except BaseException as e:
            if not isinstance(e, OSError):  # Ctrl-C or SIGTERM: the user's folder was put back
                self._clean()
                raise
            raise InvalidArgumentError(
                f"--out: the run finished but could not be put in {str(self.out)!r} ({_reason(e)}); "
                f"its files are in {str(self.stage)!r}"
            ) from None

    def _publish(self) -> None:
        assert self.stage is not None
        if not self.inside:
            if os.path.lexists(self.path):  # made during the run (rename would replace an empty one)
                raise FileExistsError(errno.EEXIST, "File exists", str(self.path))
            os.rename(self.stage, self.path)
            return
        moved: list[str] = []
        try:
            for entry in sorted(self.stage.iterdir()):
                target = self.path / entry.name
                if os.path.lexists(target):  # appeared during the run: never overwrite it
                    raise FileExistsError(errno.EEXIST, "File exists", str(target))
                os.rename(entry, target)
                moved.append(entry.name)
        except BaseException:  # Ctrl-C too
            for name in moved:  # back into the stage: the user's folder is as it was
                with contextlib.suppress(OSError):
                    os.rename(self.path / name, self.stage / name)
            raise
        self.stage.rmdir()

    def _clean(self) -> None:
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only if still empty
            except OSError:
                break


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(e: OSError) -> str:
    """An OSError's reason with the path it names, e.g. "Permission denied: '/sys/x'"."""
    if e.strerror is None:
        return str(e)
    return f"{e.strerror}: {e.filename!r}" if e.filename is not None else e.strerror


def _check_json(path: Path, out: Path) -> None:
    """Fails now, before any training, if the summary cannot be copied to ``path`` later: a
    folder, a missing folder (other than the run folder ``out`` this command creates), one of the
    run folder's own files, or a file that cannot be written (tried: a new file is created and
    removed again, an existing one opened for appending and left as it was)."""
    if path.is_dir():
        raise InvalidArgumentError(f"--json: {str(path)!r} is a folder; expected a file name")
    if path.resolve() == out.resolve() or path.resolve() in out.resolve().parents:
        raise InvalidArgumentError(f"--json: {str(path)!r} is where the run folder --out {str(out)!r} goes")
    in_out = path.parent.resolve() == out.resolve()
    if in_out and _is_run_file(path.name) and path.name != "summary.json":  # a copy of itself is fine
        raise InvalidArgumentError(f"--json: {str(path)!r} is one of the files of the run folder --out {str(out)!r}")
    if not path.parent.is_dir():
        if in_out:
            return  # written after the run folder is in place
        raise InvalidArgumentError(f"--json: the folder {str(path.parent)!r} of {str(path)!r} does not exist")
    try:
        if path.exists():
            open(path, "ab").close()
        else:
            open(path, "xb").close()
            path.unlink()
    except OSError as e:
        raise InvalidArgumentError(f"--json: cannot write {str(path)!r}: {e.strerror or e}") from None


def _summary(args: argparse.Namespace, dataset: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run folder's summary: every run, and mean/std per method over seeds (``by_policy``,
    keyed by the policy, ``apoptosis-<strategy>`` or ``grow-<selection>``; a grow method also
    lists each seed's final ``layer_sizes``). With exactly one run its fields are also at the
    top level."""
    by_method: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        stats = {}
        for key in FIELDS:
            if key not in mine[0]:
                continue
            values = [float(r[key]) for r in mine]
            stats[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        by_method[method] = {"seeds": [r["seed"] for r in mine], **stats}
        if "layer_sizes" in mine[0]:
            by_method[method]["layer_sizes"] = [r["layer_sizes"] for r in mine]
        if "growth" in mine[0]:
            by_method[method]["growth"] = _mean_growth([r["growth"] for r in mine])
    summary: dict[str, Any] = {
        "dataset": dataset,
        "command": ["growcore", *args.argv],
        "options": {k: v for k, v in vars(args).items() if k not in ("func", "argv")},
        "runs": runs,
        "by_policy": by_method,
    }
    if len(runs) == 1:
        summary.update(runs[0])
    return summary


def _mean_growth(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' growth per window (:func:`growcore.log.growth_per_window`), averaged window by
    window (the seeds of a method train for the same steps, so their windows agree)."""
    first = per_seed[0]

    def mean(key: str) -> list[float | None]:
        columns = zip(*(g[key] for g in per_seed))
        return [None if None in c else statistics.fmean(c) for c in columns]

    return {"window": first["window"], "ends": first["ends"], "neurons": mean("neurons"), "edges": mean("edges")}


def _print_table(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"growcore run on {summary['dataset']}")
    turnover = any("turnover" in s for s in summary["by_policy"].values())
    grown = any("layer_sizes" in s for s in summary["by_policy"].values())
    columns = ["method", "test accuracy %", "test loss", "density", "active params", "train s"]
    for column in columns + (["turnover"] if turnover else []) + (["hidden sizes"] if grown else []):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, s in summary["by_policy"].items():
        pm = len(s["seeds"]) > 1

        def cell(key: str, fmt: str) -> str:
            text = format(s[key]["mean"], fmt)
            return f"{text} ± {format(s[key]['std'], fmt)}" if pm else text

        row = [method, cell("test_accuracy", ".2f"), cell("test_loss", ".4f"), cell("density", ".4f"),
               cell("active_params", ",.0f"), cell("train_seconds", ".1f")]
        if turnover:
            row.append(cell("turnover", ".2f") if "turnover" in s else "")
        if grown:  # a grow method's final hidden sizes, one group per seed
            row.append(" | ".join(",".join(map(str, sizes[1:-1])) for sizes in s.get("layer_sizes", [])))
        table.add_row(*row)
    console = Console()
    console.print(table)
    for method, s in summary["by_policy"].items():
        if "growth" in s:
            g = s["growth"]

            def counts(values: list[float | None]) -> str:
                return ", ".join("?" if v is None else f"{v:,.0f}" for v in values)

            console.print(
                f"{method}: per {g['window']:,} steps (mean over seeds), hidden neurons added "
                f"{counts(g['neurons'])}; edges added {counts(g['edges'])}"
            )
    console.print(f"run folder: {out}")


class _Progress:
    """rich progress bars, or nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self._bars: Any = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    def __enter__(self) -> _Progress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def add(self, description: str, total: int) -> Any:
        return self._bars.add_task(description, total=total) if self._bars is not None else None

    def callback(self, task: Any) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback that moves ``task``'s bar."""

        def update(done: int, total: int) -> None:
            if self._bars is not None:
                self._bars.update(task, completed=done, total=total)

        return update


if __name__ == "__main__":
    raise SystemExit(main())
