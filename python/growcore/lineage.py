"""Lineage analysis: who descended from whom, how many descendants each neuron left, whether
that tracks fitness, and a family-tree plot. numpy only; matplotlib and pandas are imported when
a function needs them.

Every function takes a lineage **table**: a mapping of equal-length 1-D numpy columns, one row
per neuron id ever issued, as returned by :meth:`growcore.Graph.lineage`:

``id``, ``layer``, ``slot`` (-1 when dead), ``birth_step``, ``death_step`` (-1 while alive),
``generation``, ``parent_a``, ``parent_b`` (-1 for none) and ``cause`` (``"alive"``,
``"removed"``, ``"reset"``, ``"apoptosis"`` or ``"senescence"``).

Extra columns of the same length (for example ``descendants``) are allowed and carried along by
:func:`lineage_table`.

**Descent is a DAG, not a tree.** A crossover child has two parents, so a neuron can reach the
same descendant along two paths; it is counted once. The core issues ids in order, so a parent's
id is always smaller than its child's; the functions here rely on that and raise
:class:`growcore.InvalidArgumentError` when a table breaks it.

**Succession links.** The core records a parent for every replacement, including the ones that
inherit nothing but the slot: :meth:`Graph.reset_neurons` and the ``random`` and
``function_preserving`` apoptosis strategies (and the fallback of ``mutation``/``crossover`` to
``random`` without survivors) name the dead neuron as its replacement's only parent. Such a link
is *succession* rather than breeding: a mutation or crossover child's parents are survivors. The
table does not say which is which, so a link is taken for succession when the child has exactly
one parent, in the same layer, which died by ``"reset"``, ``"apoptosis"`` or ``"senescence"`` at the child's birth
step. That matches every replacement the core makes; the one case it misreads is a mutation
parent killed later in the same step its child was born (a second apoptosis or reset call on
the layer before the step advances). ``succession=False`` drops these links.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from growcore.errors import InvalidArgumentError, OutOfRangeError

COLUMNS = ("id", "layer", "slot", "birth_step", "death_step", "generation", "parent_a", "parent_b", "cause")
CAUSES = ("alive", "removed", "reset", "apoptosis", "senescence")
_INT_COLUMNS = ("id", "layer", "slot", "birth_step", "death_step", "generation", "parent_a", "parent_b")
_CAUSE_COLOURS = {"alive": "tab:green", "removed": "tab:gray", "reset": "tab:orange", "apoptosis": "tab:red", "senescence": "tab:purple"}

Table = Mapping[str, npt.NDArray[Any]]
Int64Array = npt.NDArray[np.int64]


class FitnessCorrelation(TypedDict):
    """Result of :func:`evolutionary_fitness`. ``pearson`` and ``spearman`` are NaN when ``n < 2``
    or either side is constant (a correlation is undefined then)."""

    n: int
    pearson: float
    spearman: float


__all__ = [
    "CAUSES",
    "COLUMNS",
    "FitnessCorrelation",
    "children",
    "death_fitness",
    "descendants",
    "evolutionary_fitness",
    "lineage_table",
    "pearson",
    "plot_family_tree",
    "spearman",
    "to_pandas",
]


# ---------------------------------------------------------------------- descent


def children(table: Table, *, succession: bool = True) -> tuple[Int64Array, Int64Array]:
    """Each row's children as a CSR pair ``(indptr, indices)``.

    The children of row ``r`` are the ids ``indices[indptr[r]:indptr[r + 1]]``, ascending; a
    child whose two parents are the same neuron is listed once. For a table from
    :meth:`Graph.lineage` rows are ids. Every parent id must be in the table (a filtered table
    that lost a parent raises). ``succession=False`` leaves out succession links (see the
    module docstring).
    """
    ids, child_rows, parent_rows = _links(table, succession)
    n = len(ids)
    order = np.lexsort((child_rows, parent_rows))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent_rows, minlength=n), out=indptr[1:])
    return indptr, ids[child_rows[order]].astype(np.int64, copy=False)


def descendants(table: Table, *, succession: bool = True) -> Int64Array:
    """The number of distinct descendants (children, grandchildren, ...) of every row's neuron.

    Descent is a DAG: a neuron reached along two paths (through a crossover child's two parents)
    counts once. ``succession=False`` counts only descent through breeding links (see the module
    docstring). Raises :class:`growcore.InvalidArgumentError` if ids are not increasing or a
    parent is not older than its child.

    Cost: there is no known linear-time way to count distinct descendants in a general DAG
    (summing the children's counts, which would be linear, counts a crossover's descendants
    twice). This is one pass over the rows with children in reverse id order, each building its
    descendant set as a bitset: ``O(ids + links * ids / 64)`` word operations, with only the
    sets of neurons whose parents are still to come kept in memory (20,000 ids: about 0.1 s).
    """
    ids, child_rows, parent_rows = _links(table, succession)
    n = len(ids)
    order = np.lexsort((child_rows, parent_rows))
    kids = child_rows[order].tolist()
    starts = np.searchsorted(parent_rows[order], np.arange(n + 1)).tolist()
    pending = np.bincount(child_rows, minlength=n).tolist()  # parents of each row not yet visited
    counts = np.zeros(n, dtype=np.int64)
    sets: dict[int, int] = {}
    # Children have larger ids (rows) than their parents, so in reverse row order every child's
    # set is complete before any of its parents is visited.
    for row in reversed(np.flatnonzero(np.diff(starts)).tolist()):
        acc = 0
        for kid in kids[starts[row] : starts[row + 1]]:
            acc |= sets.get(kid, 0) | (1 << kid)
            pending[kid] -= 1
            if pending[kid] == 0:
                sets.pop(kid, None)  # no parent left to read it
        counts[row] = acc.bit_count()
        if pending[row] > 0:
            sets[row] = acc
    return counts


# ---------------------------------------------------------------------- fitness


def death_fitness(events: Iterable[Mapping[str, Any]]) -> dict[int, float]:
    """``{dead id: fitness}`` from apoptosis events (such as :attr:`growcore.torch.Lifecycle.events`):
    the normalised fitness (z-score within its layer) each killed neuron had when it died.
    Events of other kinds are skipped."""
    out: dict[int, float] = {}
    for i, event in enumerate(events):
        if event.get("kind") != "apoptosis":
            continue
        if "dead" not in event or "fitness" not in event:
            raise InvalidArgumentError(
                f"events[{i}]: an apoptosis event needs 'dead' and 'fitness', got keys {sorted(event)}"
            )
        out[int(event["dead"])] = float(event["fitness"])
    return out


def evolutionary_fitness(
    table: Table,
    fitness: Mapping[int, float] | npt.ArrayLike,
    *,
    succession: bool = False,
) -> FitnessCorrelation:
    """How well descendant counts ("evolutionary fitness") follow instantaneous fitness.

    Correlates, over the neurons that have a fitness value, ``descendants(table,
    succession=succession)`` with ``fitness``: Pearson's r of the raw values and Spearman's rho
    (Pearson's r of the ranks, ties given their average rank). Nothing else is adjusted for: an
    older neuron had more chances to be chosen as a parent, and a neuron alive at the end may
    still breed.

    ``fitness`` is ``{id: value}`` or an array with one value per row; NaN means "no value", an
    infinity raises. Which fitness to pass is the caller's choice; :func:`death_fitness` gives
    each apoptosis victim's normalised fitness at death, and :meth:`Graph.normalized_fitness`
    the living neurons' current one (:meth:`growcore.torch.Lifecycle.lineage_summary` uses both).

    Succession links are left out by default: every replaced neuron would otherwise count its
    own replacement as a descendant, tying "many descendants" to "was killed", which is to say
    to low fitness, by bookkeeping alone.
    """
    counts = descendants(table, succession=succession)
    values = _fitness_column(table, fitness)
    known = ~np.isnan(values)
    x, y = counts[known].astype(np.float64), values[known]
    return {"n": int(known.sum()), "pearson": pearson(x, y), "spearman": spearman(x, y)}


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson's correlation coefficient of two equal-length 1-D arrays of finite numbers; NaN
    when there are fewer than two values or either array is constant."""
    a, b = _pair(x, y)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    r = float(np.dot(da, db) / np.sqrt(np.dot(da, da) * np.dot(db, db)))
    return min(1.0, max(-1.0, r))  # rounding can step just outside [-1, 1]


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman's rank correlation: :func:`pearson` of the ranks, tied values sharing their
    average rank. NaN when there are fewer than two values or either array is constant."""
    a, b = _pair(x, y)
    return pearson(_average_ranks(a), _average_ranks(b))


# ---------------------------------------------------------------------- tables


def lineage_table(
    table: Table,
    *,
    alive_only: bool = False,
    layer: int | Sequence[int] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The rows of ``table`` that are alive (``alive_only``) and in ``layer`` (one layer or a
    sequence of layers), every column kept, extra ones included. Compute :func:`descendants`
    on the whole table and add them as a column before filtering: a filtered table may have lost
    the parents they need."""
    n = _check_columns(table, ("layer", "cause"))
    keep = np.ones(n, dtype=bool)
    if alive_only:
        keep &= np.asarray(table["cause"]) == "alive"
    if layer is not None:
        keep &= np.isin(table["layer"], _layers(layer, table["layer"]))
    return {name: np.asarray(column)[keep] for name, column in table.items()}


def to_pandas(table: Table) -> Any:
    """The table as a ``pandas.DataFrame`` (one column per key). pandas is not a dependency of
    growcore; this raises :class:`ImportError` naming it when it is not installed."""
    _check_columns(table, ())
    try:
        pd = importlib.import_module("pandas")  # untyped without pandas-stubs
    except ImportError as exc:
        raise ImportError(
            "to_pandas needs pandas, which growcore does not depend on: pip install pandas "
            "(or use the table, a dict of numpy columns, directly)"
        ) from exc
    return pd.DataFrame({name: np.asarray(column) for name, column in table.items()})


# ---------------------------------------------------------------------- plot


def plot_family_tree(
    table: Table,
    path: str | os.PathLike[str],
    *,
    layer: int | Sequence[int] | None = None,
    max_neurons: int = 2000,
    title: str | None = None,
    end: int | None = None,
) -> Path:
    """Draw the family tree of the neurons of ``layer`` (default: all) into the PNG file ``path``.

    What is drawn:

    - one horizontal **life line** per neuron, from its birth step to its death step (to ``end``
      while alive; default ``end``: the last birth or death in the table), coloured by cause of
      death (alive, removed, reset, apoptosis);
    - neurons stacked bottom to top by layer (a thin line between layers), and within a layer
      in family order: each neuron is followed, upwards, by its children (by id) and their
      families, a child going with its first parent drawn in the same layer, so that a family
      (and a slot's chain of replacements) stays together;
    - one vertical **link** per parent at the child's birth step, from the parent's life line
      to the child's: solid purple for breeding (mutation or crossover parents, two links for a
      crossover child), dashed grey for succession (a replacement whose only parent is the
      neuron it replaced, see the module docstring); a dot marks each child's birth.

    With more than ``max_neurons`` neurons, those that take part in a link are kept first, then
    the rest, the newest (largest id) first within each group, and the title says how many are
    shown. Links to parents that are not drawn (cut by ``max_neurons``, or missing from a
    filtered table) are left out. Uses matplotlib's Agg renderer through the ``Figure`` API
    (pyplot's global state is untouched). Returns the path written.
    """
    if isinstance(max_neurons, (bool, np.bool_)) or not isinstance(max_neurons, (int, np.integer)):
        raise TypeError(f"max_neurons: expected an int, got {type(max_neurons).__name__} {max_neurons!r}")
    if max_neurons < 1:
        raise InvalidArgumentError(f"max_neurons: must be at least 1, got {max_neurons}")
    if end is not None and (isinstance(end, bool) or not isinstance(end, (int, np.integer)) or end < 0):
        raise InvalidArgumentError(f"end: must be a non-negative int step, got {end!r}")
    try:
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as exc:
        raise ImportError(
            "plot_family_tree needs matplotlib: pip install 'growcore[run]' (or pip install matplotlib)"
        ) from exc

    _check_columns(table, ("id", "layer", "birth_step", "death_step", "parent_a", "parent_b", "cause"))
    ids, child_rows, parent_rows = _links(table, succession=True, drop_missing=True)
    bred = _breeding_mask(table, child_rows, parent_rows)
    n = len(ids)
    chosen = np.ones(n, dtype=bool)
    if layer is not None:
        chosen = np.isin(table["layer"], _layers(layer, table["layer"]))
    total = int(chosen.sum())
    if total == 0:
        raise InvalidArgumentError("table: no neurons to draw (the table is empty)")
    if total > max_neurons:
        linked = np.zeros(n, dtype=bool)
        inside = chosen[child_rows] & chosen[parent_rows]
        linked[child_rows[inside]] = True
        linked[parent_rows[inside]] = True
        candidates = np.flatnonzero(chosen)
        # Linked first, the newest first: the end of a run shows the families alive now.
        candidates = candidates[::-1]
        ranked = candidates[np.argsort(~linked[candidates], kind="stable")]
        chosen = np.zeros(n, dtype=bool)
        chosen[ranked[:max_neurons]] = True
    rows = np.flatnonzero(chosen)

    layers = np.asarray(table["layer"], dtype=np.int64)
    births = np.asarray(table["birth_step"], dtype=np.int64)
    deaths = np.asarray(table["death_step"], dtype=np.int64)
    causes = np.asarray(table["cause"]).astype(str)
    last = int(max(births.max(), deaths.max())) if end is None else int(end)
    rows = _family_order(rows, layers, child_rows, parent_rows, chosen)
    y = np.full(n, -1, dtype=np.int64)
    y[rows] = np.arange(len(rows))
    stop = np.where(deaths[rows] >= 0, deaths[rows], np.maximum(last, births[rows]))

    fig = Figure(figsize=(9.0, min(16.0, max(6.0, 2.0 + 0.015 * len(rows)))), dpi=100)  # taller for many
    ax = fig.add_subplot()
    width = float(np.clip(300.0 / len(rows), 0.2, 1.5))
    lives = np.stack(
        [np.stack([births[rows], y[rows]], axis=1), np.stack([stop, y[rows]], axis=1)], axis=1
    ).astype(np.float64)
    colours = [_CAUSE_COLOURS.get(c, "black") for c in causes[rows]]
    ax.add_collection(LineCollection(list(lives), colors=colours, linewidths=width))

    drawn = chosen[child_rows] & chosen[parent_rows]
    for breeding, colour, dashes in ((False, "0.6", "dashed"), (True, "tab:purple", "solid")):
        pick = drawn & (bred == breeding)
        if pick.any():
            x = births[child_rows[pick]]
            segs = np.stack(
                [np.stack([x, y[parent_rows[pick]]], axis=1), np.stack([x, y[child_rows[pick]]], axis=1)], axis=1
            ).astype(np.float64)
            ax.add_collection(
                LineCollection(list(segs), colors=colour, linestyles=dashes, linewidths=width, alpha=0.6)
            )

    born = rows[np.isin(rows, child_rows[drawn])]
    ax.scatter(births[born], y[born], s=max(1.0, 4 * width), c="black", marker="o", linewidths=0, zorder=3)

    band_layers = layers[rows]
    starts = np.flatnonzero(np.r_[True, band_layers[1:] != band_layers[:-1]])
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="0.85", linewidth=0.8)
    ends = np.r_[starts[1:], len(rows)]
    ax.set_yticks((starts + ends - 1) / 2.0)
    ax.set_yticklabels([f"layer {band_layers[s]}" for s in starts])
    ax.set_xlim(float(births[rows].min()) - 0.5, max(float(last), float(stop.max())) + 0.5)
    ax.set_ylim(-1.0, float(len(rows)))
    ax.set_xlabel("step")
    ax.set_ylabel("neurons (by layer, in family order)")
    shown = f"{len(rows)} of {total} neurons" if len(rows) < total else f"{total} neurons"
    ax.set_title(f"{title if title is not None else 'family tree'} ({shown})")
    handles = [Line2D([], [], color=_CAUSE_COLOURS[c], label=c) for c in CAUSES if (causes[rows] == c).any()]
    handles.append(Line2D([], [], color="tab:purple", label="parent -> child"))
    handles.append(Line2D([], [], color="0.6", linestyle="dashed", label="replaced by"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


# ---------------------------------------------------------------------- internals


def _check_columns(table: object, needed: Sequence[str]) -> int:
    """Checks that ``table`` is a mapping of equal-length 1-D columns holding ``needed``;
    returns the number of rows."""
    if not isinstance(table, Mapping):
        raise TypeError(f"table: expected a mapping of numpy columns (Graph.lineage()), got {type(table).__name__}")
    missing = [c for c in needed if c not in table]
    if missing:
        raise InvalidArgumentError(f"table: missing column(s) {missing}; Graph.lineage() has {list(COLUMNS)}")
    lengths = {}
    for name, column in table.items():
        shape = np.shape(column)
        if len(shape) != 1:
            raise InvalidArgumentError(f"table: column {name!r} must be 1-D, got shape {shape}")
        lengths[name] = shape[0]
    if len(set(lengths.values())) > 1:
        raise InvalidArgumentError(f"table: columns differ in length: {lengths}")
    for name in needed:
        if name in _INT_COLUMNS and not np.issubdtype(np.asarray(table[name]).dtype, np.integer):
            raise InvalidArgumentError(
                f"table: column {name!r} must hold integers, got dtype {np.asarray(table[name]).dtype}"
            )
    return next(iter(lengths.values()), 0)


def _links(
    table: Table, succession: bool, *, drop_missing: bool = False
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """``(ids, child_rows, parent_rows)``: the table's ids and one (child row, parent row) pair
    per distinct parent link, after checking that ids increase and parents are older. A parent
    missing from the table raises, or with ``drop_missing`` its link is left out."""
    needed = ("id", "parent_a", "parent_b") + (() if succession else ("layer", "birth_step", "death_step", "cause"))
    _check_columns(table, needed)
    ids = np.asarray(table["id"], dtype=np.int64)
    pa = np.asarray(table["parent_a"], dtype=np.int64)
    pb = np.asarray(table["parent_b"], dtype=np.int64)
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        i = int(np.flatnonzero(np.diff(ids) <= 0)[0]) + 1
        raise InvalidArgumentError(
            f"table: ids must increase row by row (the core issues them in order), "
            f"but row {i} has id {ids[i]} after id {ids[i - 1]}"
        )
    child_parts, parent_parts = [], []
    for name, parents, use in (("parent_a", pa, pa >= 0), ("parent_b", pb, (pb >= 0) & (pb != pa))):
        bad = np.flatnonzero((parents < -1) | (use & (parents >= ids)))
        if len(bad):
            i = int(bad[0])
            raise InvalidArgumentError(
                f"table: neuron {ids[i]} has {name} {parents[i]}, which is not an older id; lineage "
                "analysis relies on a parent's id being smaller than its child's (-1 means none)"
            )
        rows = np.flatnonzero(use)
        at, found = _find(ids, parents[rows])
        if not found.all():
            if not drop_missing:
                i = int(rows[np.flatnonzero(~found)[0]])
                raise InvalidArgumentError(
                    f"table: neuron {ids[i]} has {name} {parents[i]}, which is not in the table; "
                    "descent needs the whole lineage (use Graph.lineage(), filter afterwards)"
                )
            rows, at = rows[found], at[found]
        child_parts.append(rows.astype(np.int64))
        parent_parts.append(at)
    child_rows = np.concatenate(child_parts)
    parent_rows = np.concatenate(parent_parts)
    if not succession:
        keep = _breeding_mask(table, child_rows, parent_rows)
        child_rows, parent_rows = child_rows[keep], parent_rows[keep]
    return ids, child_rows, parent_rows


def _find(ids: Int64Array, wanted: Int64Array) -> tuple[Int64Array, npt.NDArray[np.bool_]]:
    """Rows of ``wanted`` in the sorted ``ids``, and whether each was found (row 0 if not)."""
    if len(ids) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1).astype(np.int64)
    return at, ids[at] == wanted


def _breeding_mask(table: Table, child_rows: Int64Array, parent_rows: Int64Array) -> npt.NDArray[np.bool_]:
    """True for breeding links, False for succession links (see the module docstring)."""
    _check_columns(table, ("layer", "birth_step", "death_step", "cause"))
    pa, pb = np.asarray(table["parent_a"]), np.asarray(table["parent_b"])
    parents_of = (pa >= 0).astype(np.int64) + ((pb >= 0) & (pb != pa))
    layer = np.asarray(table["layer"])
    cause = np.asarray(table["cause"]).astype(str)
    succeeded = (
        (parents_of[child_rows] == 1)
        & (layer[parent_rows] == layer[child_rows])
        & np.isin(cause[parent_rows], ("reset", "apoptosis", "senescence"))
        & (np.asarray(table["death_step"])[parent_rows] == np.asarray(table["birth_step"])[child_rows])
    )
    return np.asarray(~succeeded, dtype=np.bool_)


def _family_order(
    rows: Int64Array,
    layers: Int64Array,
    child_rows: Int64Array,
    parent_rows: Int64Array,
    chosen: npt.NDArray[np.bool_],
) -> Int64Array:
    """``rows`` grouped by layer, and within a layer in depth-first order: each neuron directly
    followed by its children (by id) and their families, a child going with its first parent
    that is drawn and in its layer. A neuron without such a parent starts a family (families
    by id)."""
    first = np.full(len(chosen), -1, dtype=np.int64)
    # child_rows lists parent_a links before parent_b ones; keep the first link of each child.
    keep = chosen[child_rows] & chosen[parent_rows] & (layers[child_rows] == layers[parent_rows])
    kid, parent = child_rows[keep], parent_rows[keep]
    kid_first, at = np.unique(kid, return_index=True)
    first[kid_first] = parent[at]
    roots = rows[first[rows] < 0]
    roots = roots[np.lexsort((roots, layers[roots]))]
    has_parent = rows[first[rows] >= 0]
    by_parent: dict[int, list[int]] = {}
    for r in np.sort(has_parent).tolist():
        by_parent.setdefault(int(first[r]), []).append(r)
    out: list[int] = []
    for root in roots.tolist():
        stack = [root]
        while stack:
            r = stack.pop()
            out.append(r)
            stack.extend(reversed(by_parent.get(r, [])))  # reversed: the oldest child comes next
    return np.asarray(out, dtype=np.int64)


def _fitness_column(table: Table, fitness: Mapping[int, float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``fitness`` as one float per row, NaN where there is none."""
    ids = np.asarray(table["id"], dtype=np.int64)
    if isinstance(fitness, Mapping):
        values = np.full(len(ids), np.nan)
        keys = list(fitness)
        for k in keys:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
                raise TypeError(f"fitness: keys must be int neuron ids, got {type(k).__name__} {k!r}")
        at, found = _find(ids, np.asarray(keys, dtype=np.int64))
        if not found.all():
            raise InvalidArgumentError(f"fitness: neuron id {keys[int(np.flatnonzero(~found)[0])]} is not in the table")
        values[at] = np.asarray([float(fitness[k]) for k in keys], dtype=np.float64)
    else:
        try:
            values = np.asarray(fitness, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"fitness: expected {{id: value}} or an array of numbers, got {type(fitness).__name__}"
            ) from exc
        if values.shape != (len(ids),):
            raise InvalidArgumentError(
                f"fitness: expected one value per table row, shape ({len(ids)},), got shape {values.shape}"
            )
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise InvalidArgumentError(
            f"fitness: neuron {ids[i]} has value {values[i]}; NaN means no value, infinities are refused"
        )
    return values


def _pair(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    for name, v in (("x", a), ("y", b)):
        if v.ndim != 1:
            raise InvalidArgumentError(f"{name}: expected a 1-D array, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise InvalidArgumentError(f"{name}: every value must be finite, got {v[~np.isfinite(v)][0]}")
    if len(a) != len(b):
        raise InvalidArgumentError(f"x and y: lengths differ, {len(a)} and {len(b)}")
    return a, b


def _average_ranks(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks; a group of equal values shares the mean of the ranks it spans."""
    n = len(a)
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _layers(layer: int | Sequence[int], present: npt.ArrayLike) -> Int64Array:
    """``layer`` as an array of layer indices, each of which must occur in ``present``."""
    if isinstance(layer, (int, np.integer)):
        items: list[object] = [layer]
    elif isinstance(layer, (Sequence, np.ndarray)) and not isinstance(layer, str):
        items = list(layer)
    else:
        raise TypeError(f"layer: expected an int or a sequence of ints, got {type(layer).__name__} {layer!r}")
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"layer: expected an int or a sequence of ints, got {type(item).__name__} {item!r}")
        out.append(int(item))
    known = np.unique(np.asarray(present)).tolist()
    absent = [l for l in out if l not in known]
    if absent:
        raise OutOfRangeError(f"layer: {absent[0]} has no neurons in the table (layers present: {known})")
    return np.asarray(out, dtype=np.int64)
