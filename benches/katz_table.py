"""Katz centrality on layered DAGs: growcore against networkx, rustworkx and scipy, one table.

Every method computes the same thing, Katz centrality ``x = beta + alpha * A^T x`` (direction
"in", alpha 0.1, beta 1) normalised by ``sign(sum x) * ||x||_2`` as networkx does, and the results
are checked to agree before anything is timed. Inputs are built outside the timed region, in each
method's own representation:

- growcore: ``growcore.katz(g)`` on the Graph (one exact pass in layer order, in Rust);
- scipy per-layer pass: the same recurrence with ``csr_array @ vector`` per block (float64 data);
- scipy triangular solve: ``spsolve_triangular(I - alpha A^T, beta)`` on CSR, global slot order
  being a topological order (the matrix, which depends on alpha, is built outside the timer);
- rustworkx: ``rustworkx.katz_centrality`` (power iteration in Rust; on a DAG it is exact once the
  iteration count passes the depth) on a PyDiGraph built from the edge list;
- networkx: ``networkx.katz_centrality`` (power iteration in Python) on a DiGraph; skipped above
  ``--nx-max-edges`` edges.

A peer whose median passes ``--cap`` seconds is skipped at the larger sizes (its time would
only grow); skipped cells say so. Times are medians of ``--repeats`` runs. Ratios are peer time /
growcore time (> 1: growcore is faster). The machine's memory bandwidth (numpy copy and sum of a
large array) is measured in the same run, with growcore's achieved rate over the bytes its pass
must read (column indices, row pointers, the result vector); the bound it is held to is the
read rate of numpy summing on as many threads as growcore uses. With the MLP shape in the run,
the last lines check the issue's targets there (>= 30x rustworkx, >= 12x the scipy per-layer
pass, within 2x of that bound).

    python benches/katz_table.py                      # 1e4, 1e5, 1e6 edges (about a minute)
    python benches/katz_table.py --full               # 1e4 .. 1e7 and the issue's MLP shape
    python benches/katz_table.py --edges 1e5 3e6 --repeats 9
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import growcore

ALPHA, BETA = 0.1, 1.0
DENSITY = 0.2
# The issue's reference network: an MLP of 784 -> 4096 x 3 -> 10 at 20% density (~7.4M edges).
ISSUE_SHAPE = [784, 4096, 4096, 4096, 10]


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm up (page faults, thread pool start)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def normalise(x: np.ndarray) -> np.ndarray:
    s = np.linalg.norm(x) * (-1.0 if x.sum() < 0 else 1.0)
    return x / s if s else x


def memory_bandwidth(threads: int, mbytes: int = 512) -> dict[str, float]:
    """GB/s of a numpy copy (bytes read + written) and sum (bytes read) on one thread, and of
    the sum split over ``threads`` threads (numpy releases the GIL while it sums), the bound that
    applies to growcore's pass on as many threads."""
    src = np.ones(mbytes * 2**20 // 8)
    dst = np.empty_like(src)
    copy = median_time(lambda: np.copyto(dst, src), 5)
    total = median_time(lambda: src.sum(), 5)
    parts = np.array_split(src, threads)
    with ThreadPoolExecutor(threads) as pool:
        split = median_time(lambda: list(pool.map(np.sum, parts)), 5)
    return {
        "copy": 2 * src.nbytes / copy / 1e9,
        "read": src.nbytes / total / 1e9,
        "read_threads": src.nbytes / split / 1e9,
    }


class Case:
    """One graph in every method's representation, built outside the timed region."""

    def __init__(self, sizes: list[int], density: float) -> None:
        self.sizes = sizes
        self.g = growcore.Graph(sizes, density, seed=0)
        self.nnz = self.g.nnz
        self.n = self.g.num_neurons
        self.off = np.cumsum([0, *sizes])
        # Per block as float64 CSR (what a scipy user multiplies with), grouped by target layer.
        self.blocks: dict[int, list[tuple[int, Any]]] = {}
        for a, b in self.g.blocks:
            self.blocks.setdefault(b, []).append((a, self.g.to_scipy(a, b).astype(np.float64)))
        self._adjacency: Any = None

    @property
    def adjacency(self) -> Any:
        if self._adjacency is None:
            self._adjacency, _ = growcore.to_scipy_adjacency(self.g)
        return self._adjacency

    def edge_chunks(self, chunk: int = 1 << 20):
        """The global (source, target) edge list in chunks, to bound the Python objects alive."""
        coo = self.adjacency.tocoo()
        for i in range(0, coo.nnz, chunk):
            yield list(zip(coo.row[i : i + chunk].tolist(), coo.col[i : i + chunk].tolist()))

    # -- the methods ----------------------------------------------------------------------------

    def growcore(self) -> Callable[[], np.ndarray]:
        g = self.g
        return lambda: growcore.katz(g, alpha=ALPHA, beta=BETA)

    def scipy_layers(self) -> Callable[[], np.ndarray]:
        off, blocks, n = self.off, self.blocks, self.n

        def run() -> np.ndarray:
            x = np.full(n, BETA)
            for b in range(1, len(off) - 1):
                xb = x[off[b] : off[b + 1]]
                for a, m in blocks.get(b, []):
                    xb += ALPHA * (m @ x[off[a] : off[a + 1]])
            return normalise(x)

        return run

    def scipy_triangular(self) -> Callable[[], np.ndarray]:
        m = sp.csr_array(sp.identity(self.n, format="csr") - ALPHA * self.adjacency.T.tocsr())
        b = np.full(self.n, BETA)
        return lambda: normalise(spla.spsolve_triangular(m, b, lower=True))

    def rustworkx(self) -> Callable[[], np.ndarray]:
        import rustworkx as rx

        G = rx.PyDiGraph()
        G.add_nodes_from(range(self.n))
        for part in self.edge_chunks():
            G.extend_from_edge_list(part)
        n = self.n

        def run() -> np.ndarray:
            x = rx.katz_centrality(G, alpha=ALPHA, beta=BETA)
            return np.array([x[i] for i in range(n)])

        return run

    def networkx(self) -> Callable[[], np.ndarray]:
        import networkx as nx

        G = nx.DiGraph()
        G.add_nodes_from(range(self.n))
        for part in self.edge_chunks():
            G.add_edges_from(part)
        n = self.n

        def run() -> np.ndarray:
            x = nx.katz_centrality(G, alpha=ALPHA, beta=BETA)
            return np.array([x[i] for i in range(n)])

        return run

    def growcore_bytes(self) -> int:
        """Bytes growcore's pass must stream: u32 column indices, u64 row pointers, and the
        float64 result (read for the sources, written for the targets)."""
        rows = sum(self.sizes[b] + 1 for _, b in self.g.blocks)
        return 4 * self.nnz + 8 * rows + 16 * self.n


PEERS = ["scipy per-layer", "scipy triangular", "rustworkx", "networkx"]


def shape_for(edges: float) -> list[int]:
    """Four equal layers (three blocks) at DENSITY holding about ``edges`` edges."""
    width = max(2, round(math.sqrt(edges / (3 * DENSITY))))
    return [width] * 4


def fmt_time(t: float) -> str:
    return f"{t * 1e3:.3f} ms" if t < 1 else f"{t:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=float, nargs="+", default=[1e4, 1e5, 1e6], help="approximate edge counts")
    parser.add_argument("--full", action="store_true", help="1e4 .. 1e7 edges and the issue's MLP shape")
    parser.add_argument("--issue-shape", action="store_true", help=f"add {ISSUE_SHAPE} at {DENSITY * 100:.0f}%% density")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (median reported)")
    parser.add_argument("--nx-max-edges", type=float, default=1e5, help="skip networkx above this many edges")
    parser.add_argument("--threads", type=int, default=0, help="growcore's threads (default: all cores); peers use one")
    parser.add_argument("--cap", type=float, default=5.0, help="skip a peer at larger sizes once its median passes this (s)")
    args = parser.parse_args()
    if args.threads:
        # rayon reads this when its thread pool starts, on growcore's first parallel call.
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    threads = args.threads or os.cpu_count()
    shapes = [shape_for(e) for e in ([1e4, 1e5, 1e6, 1e7] if args.full else sorted(args.edges))]
    if args.full or args.issue_shape:
        shapes.append(ISSUE_SHAPE)

    bw = memory_bandwidth(threads)
    print(
        f"memory bandwidth (numpy): one thread copy {bw['copy']:.1f} GB/s, read (sum) {bw['read']:.1f} GB/s; "
        f"read on {threads} thread(s) {bw['read_threads']:.1f} GB/s"
    )
    print(
        f"Katz, direction in, alpha {ALPHA}, beta {BETA}, normalised; density {DENSITY}; median of "
        f"{args.repeats}; growcore on {threads} thread(s), the peers on one"
    )
    print()
    header = ["layers", "edges", "growcore", *PEERS, "growcore GB/s", "growcore ns/edge"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    capped: dict[str, float] = {}
    issue_ratios: dict[str, float] = {}
    issue_rate = 0.0
    scaling: list[tuple[int, float]] = []
    for sizes in shapes:
        case = Case(sizes, DENSITY)
        runners: dict[str, Callable[[], np.ndarray] | str] = {"growcore": case.growcore()}
        makers = {
            "scipy per-layer": case.scipy_layers,
            "scipy triangular": case.scipy_triangular,
            "rustworkx": case.rustworkx,
            "networkx": case.networkx,
        }
        for peer, make in makers.items():
            if peer == "networkx" and case.nnz > args.nx_max_edges:
                runners[peer] = f"skipped (> {args.nx_max_edges:.0e} edges)"
            elif peer in capped:
                runners[peer] = f"skipped ({fmt_time(capped[peer])} at fewer edges)"
            else:
                runners[peer] = make()
        # Agreement first: every method must give growcore's vector.
        reference = growcore.katz(case.g, alpha=ALPHA, beta=BETA)
        for peer, run in runners.items():
            if callable(run):
                np.testing.assert_allclose(run(), reference, rtol=1e-6, atol=1e-12, err_msg=peer)
        ours = median_time(case.growcore(), args.repeats)
        cells = [str(sizes), f"{case.nnz:,}", fmt_time(ours)]
        for peer in PEERS:
            run = runners[peer]
            if not callable(run):
                cells.append(run)
                continue
            t = median_time(run, args.repeats if case.nnz <= 1e6 else max(3, args.repeats // 2))
            if t > args.cap:
                capped[peer] = t
            cells.append(f"{fmt_time(t)} ({t / ours:.1f}x)")
            if sizes == ISSUE_SHAPE:
                issue_ratios[peer] = t / ours
        rate = case.growcore_bytes() / ours / 1e9
        cells += [f"{rate:.1f}", f"{ours / case.nnz * 1e9:.2f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
        if sizes == ISSUE_SHAPE:
            issue_rate = rate
        else:
            scaling.append((case.nnz, ours))
        del case, runners

    # Linear in the edges: the log-log slope of time against edges over the sizes large enough
    # that fixed costs (the call, the thread pool) do not dominate.
    big = [(e, t) for e, t in scaling if e >= 5e4]
    if len(big) >= 2:
        slope = np.polyfit(np.log([e for e, _ in big]), np.log([t for _, t in big]), 1)[0]
        verdict = "linear" if 0.8 <= slope <= 1.2 else "NOT linear"
        print(f"\ngrowcore time ~ edges^{slope:.2f} over {big[0][0]:,}..{big[-1][0]:,} edges ({verdict})")
    if issue_rate:
        # The issue's targets on its MLP shape, each against what this run measured.
        print(f"\nOn {ISSUE_SHAPE}:")
        for peer, goal in (("rustworkx", 30.0), ("scipy per-layer", 12.0)):
            if peer in issue_ratios:
                got = issue_ratios[peer]
                print(f"  {got:.1f}x {peer} (target >= {goal:.0f}x: {'met' if got >= goal else 'not met'})")
        short = bw["read_threads"] / issue_rate
        print(
            f"  {issue_rate:.1f} GB/s, {short:.2f}x below the {threads}-thread read bandwidth "
            f"(target within 2x: {'met' if short <= 2 else 'not met'})"
        )


if __name__ == "__main__":
    main()
