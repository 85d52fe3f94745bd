"""Bytes of connectivity state per edge: growcore against scipy.sparse CSR and dense masks.

growcore's figure counts everything it keeps per edge (column index, birth step, frozen flag)
plus the row pointers; it is cross-checked against the process's resident memory growth.

    python benches/memory.py [--edges 10000000]
"""

from __future__ import annotations

import argparse
import gc

import numpy as np

import growcore


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=float, default=1e7, help="approximate number of edges")
    args = parser.parse_args()
    n = int(np.sqrt(args.edges / 0.2 / 2))  # two n x n blocks at 20% density
    g = growcore.Graph([n, n, n], 0.2, seed=0)
    # A copy writes every page it owns (a fresh graph's all-zero birth/flag words may not be
    # resident yet), so the memory growth across it is the structure's true footprint.
    gc.collect()
    before = rss_bytes()
    copy = g.copy()
    grown = rss_bytes() - before
    nnz = g.nnz
    sizes = g.layer_sizes
    scipy_bytes = 0
    for a, b in g.blocks:
        m = g.to_scipy(a, b)  # bool data + int32 indices + int32 indptr: structure only
        scipy_bytes += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    del copy
    dense_bytes = sum(sizes[a] * sizes[b] for a, b in g.blocks)  # one byte per possible edge
    print(f"graph: layers {sizes}, {nnz:,} edges at density {g.density():.3f}")
    print("| structure | bytes per edge |")
    print("|---|---|")
    print(f"| growcore (index + birth step + frozen flag + row pointers), reported | {g.nbytes / nnz:.3f} |")
    print(f"| growcore, resident memory growth of a copy | {grown / nnz:.3f} |")
    print(f"| scipy.sparse CSR bool mask (no birth step, no frozen flag) | {scipy_bytes / nnz:.3f} |")
    print(f"| dense bool masks (torch/numpy) | {dense_bytes / nnz:.3f} |")


if __name__ == "__main__":
    main()
