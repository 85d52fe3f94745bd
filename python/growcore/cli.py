"""The ``growcore`` command line.

``growcore run`` trains an MLP densely and under sparse-training policies, prints a comparison
table and writes a run folder (see :mod:`growcore.log`). With no options it compares dense,
static, SET and RigL at 10% density on scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from growcore.errors import GrowcoreError

FIELDS = ("test_accuracy", "test_loss", "density", "active_params", "train_seconds", "turnover")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (GrowcoreError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as e:
        print(f"growcore {args.command}: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="growcore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser(
        "run",
        help="train and compare dense / static / SET / RigL",
        description="Train an MLP densely and with sparse-training policies; print a table and write a run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--dataset", default="digits", help="digits, or mnist:DIR with MNIST IDX files (t10k only: the 8,000/2,000 split)")
    run.add_argument("--policy", default="dense,static,set,rigl", help="comma-separated methods: dense, static, set, rigl, apoptosis")
    run.add_argument("--density", type=float, default=0.1, help="fraction of each sparse layer's weights kept (over all layers with ERK)")
    run.add_argument("--distribution", default="erk", choices=["erk", "uniform"], help="how the density is spread over layers")
    run.add_argument("--epochs", type=int, default=30)
    run.add_argument("--seed", type=int, default=0, help="first seed")
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
    from growcore.torch.train import RunConfig, train_run

    methods = [m.strip() for m in args.policy.split(",") if m.strip()]
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise ValueError(f"--hidden: expected comma-separated integers, got {args.hidden!r}") from None
    if args.seeds < 1:
        raise ValueError(f"--seeds: must be at least 1, got {args.seeds}")
    if args.senescence and "apoptosis" not in methods:
        raise ValueError(f"--senescence: only applies to the apoptosis policy, got --policy {args.policy!r}")
    strategies = [x.strip() for x in args.strategy.split(",") if x.strip()]
    configs = [
        RunConfig(
            method=m, seed=args.seed + s, density=args.density, distribution=args.distribution,
            hidden=hidden, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            interval=args.interval, drop_fraction=args.drop_fraction, strategy=strategy, rate=args.rate,
            senescence=args.senescence and m == "apoptosis", lr_scale=args.lr_scale,
        )
        for s in range(args.seeds)
        for m in methods
        for strategy in (strategies if m == "apoptosis" else [strategies[0] if strategies else ""])
    ]  # every config is checked before any training starts
    data = load_dataset(args.dataset, seed=args.seed)
    if args.limit is not None:
        n = args.limit
        data = Dataset(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:n], data.y_test[:n], data.num_classes)
    out = Path(args.out) if args.out else Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")

    runs: list[dict[str, Any]] = []
    with RunLog(out) as log, _Progress(args.quiet) as progress:
        for config in configs:
            task = progress.add(f"{config.method} seed {config.seed}", config.epochs)
            # One family tree per apoptosis method, from its first seed's run.
            first = config.method == "apoptosis" and config.seed == args.seed
            tree = out / f"family_tree-{config.label}.png" if first else None
            runs.append(train_run(config, data, log, progress=progress.callback(task), family_tree=tree))
        summary = _summary(args, data.name, runs)
        log.summary(summary)
        log.plot_accuracy()
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    if not args.quiet:
        _print_table(summary, out)
    return 0


def _summary(args: argparse.Namespace, dataset: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run folder's summary: every run, and mean/std per method over seeds (``by_policy``,
    keyed by the policy, or ``apoptosis-<strategy>``). With exactly one run its fields are also
    at the top level."""
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
    summary: dict[str, Any] = {
        "dataset": dataset,
        "command": ["growcore", "run", *sys.argv[2:]] if sys.argv[1:2] == ["run"] else None,
        "options": {k: v for k, v in vars(args).items() if k != "func"},
        "runs": runs,
        "by_policy": by_method,
    }
    if len(runs) == 1:
        summary.update(runs[0])
    return summary


def _print_table(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"growcore run on {summary['dataset']}")
    turnover = any("turnover" in s for s in summary["by_policy"].values())
    columns = ["method", "test accuracy %", "test loss", "density", "active params", "train s"]
    for column in columns + (["turnover"] if turnover else []):
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
        table.add_row(*row)
    console = Console()
    console.print(table)
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
