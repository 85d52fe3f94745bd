"""growcore quickstart: build a sparse layered network, rewire it, track its neurons.

Builds LeNet-300-100's connectivity (784-300-100-10) at 10% density with the ERK distribution,
runs a few SET-style prune-and-regrow cycles (drop the oldest 20% of each block's edges, grow as
many at random), feeds made-up activation statistics, replaces the least fit hidden neurons,
adds a skip block, and checks that a checkpoint round-trips. Needs only numpy.

    python examples/quickstart.py [--seed 0] [--cycles 5]
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np

import growcore


def summary(g: growcore.Graph) -> None:
    print(f"  {'block':>8} {'shape':>11} {'edges':>8} {'density':>8}")
    for a, b in g.blocks:
        shape = f"{g.layer_sizes[b]}x{g.layer_sizes[a]}"
        print(f"  {f'{a}->{b}':>8} {shape:>11} {g.block_nnz(a, b):>8} {g.density(a, b):>8.4f}")
    print(f"  total {g.nnz} edges, density {g.density():.4f}, {g.nbytes / max(g.nnz, 1):.2f} bytes/edge")


def prune_and_regrow(g: growcore.Graph, rng: np.random.Generator, fraction: float) -> int:
    """Drop the oldest `fraction` of each block's edges and grow as many absent ones at random."""
    changed = 0
    for a, b in g.blocks:
        indptr, cols = g.csr(a, b)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        free_rows, free_cols = np.nonzero(~g.to_dense(a, b))
        k = min(int(fraction * len(cols)), len(free_rows))  # a dense block has no room to regrow
        oldest = np.argsort(g.edge_births(a, b), kind="stable")[:k]
        pick = rng.choice(len(free_rows), k, replace=False)
        g.rewire(a, b, rows[oldest], cols[oldest], free_rows[pick], free_cols[pick])
        changed += k
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    g = growcore.Graph([784, 300, 100, 10], density=0.1, distribution="erk", seed=args.seed)
    print(f"built {g!r}")
    summary(g)

    for cycle in range(args.cycles):
        for layer in range(1, g.num_layers):
            n = g.layer_sizes[layer]
            mean = rng.normal(0.5, 0.2, n).astype(np.float32)
            g.observe(
                layer,
                mean=mean,
                sq_mean=mean**2 + rng.uniform(0.01, 0.2, n).astype(np.float32),
                frac_high=rng.uniform(0, 0.1, n).astype(np.float32),
                frac_low=rng.uniform(0, 0.3, n).astype(np.float32),
                grad_norm=rng.gamma(2.0, 0.05, n).astype(np.float32),
            )
        g.advance(100)
        changed = prune_and_regrow(g, rng, fraction=0.2)
        print(f"step {g.step}: rewired {changed} edges, nnz stays {g.nnz}")

    weakest = np.argsort(g.fitness(1))[:5]
    new_ids = g.reset_neurons(1, weakest)
    print(f"reset the 5 least fit neurons of layer 1 (slots {weakest.tolist()}) -> new ids {new_ids.tolist()}")
    kept = g.remove_neurons(2, [0, 1])
    print(f"removed 2 neurons of layer 2; layer sizes now {g.layer_sizes}, kept {len(kept)} slots")
    g.add_block(0, 2)
    g.add_edges(0, 2, [0, 1, 2], [10, 20, 30])
    print(f"added skip block 0->2 with {g.block_nnz(0, 2)} edges")

    lineage = g.lineage()
    causes, counts = np.unique(lineage["cause"], return_counts=True)
    print("lineage:", dict(zip(causes.tolist(), counts.tolist())), f"max generation {lineage['generation'].max()}")

    restored = pickle.loads(pickle.dumps(g))
    assert restored == g
    g.validate()
    print("checkpoint round-trip: identical")
    summary(g)


if __name__ == "__main__":
    main()
