"""Analyse a sparse network's structure with growcore: no torch needed.

Builds LeNet-300-100's connectivity at 10% density (ERK), kills the inputs of a few hidden
neurons, adds a skip block, and reports Katz centrality per layer, the most central hidden
neurons, dead neurons and path counts; then exports the whole graph to scipy.sparse (and to
networkx when it is installed) and checks that Katz on the export agrees.

    python examples/graph_analysis.py [--seed 0] [--density 0.1]
"""

from __future__ import annotations

import argparse

import numpy as np

import growcore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--density", type=float, default=0.1)
    args = parser.parse_args()

    g = growcore.Graph([784, 300, 100, 10], args.density, distribution="erk", seed=args.seed)
    # Cut every input edge of hidden neurons 0..4 so they are unreachable from the inputs, and
    # add a sparse skip block from the inputs straight to the second hidden layer.
    indptr, cols = g.csr(0, 1)
    rows = np.repeat(np.arange(300), np.diff(indptr))
    cut = rows < 5
    g.remove_edges(0, 1, rows[cut], cols[cut])
    g.add_block(0, 2)
    rng = np.random.default_rng(args.seed)
    g.add_edges(0, 2, rng.choice(100, 50, replace=False), rng.choice(784, 50, replace=False))
    print(repr(g))

    off = np.cumsum([0, *g.layer_sizes])
    katz = growcore.katz(g, alpha=0.05)
    print("\nKatz centrality (alpha 0.05, normalised), per layer:")
    for layer in range(g.num_layers):
        x = katz[off[layer] : off[layer + 1]]
        print(f"  layer {layer}: mean {x.mean():.5f}  max {x.max():.5f}")
    hidden = katz[off[1] : off[2]]
    top = np.argsort(hidden)[::-1][:5]
    print(f"most central neurons of hidden layer 1: slots {top.tolist()}")

    reach = growcore.reachability(g)
    unreached = np.flatnonzero(~reach["from_inputs"][off[1] : off[2]])
    print(f"\nhidden layer 1 neurons with no path from the inputs: slots {unreached.tolist()}")
    print(f"dead neurons (no path in, no path out): {int(reach['dead'].sum())}")

    paths = growcore.path_counts(g)
    total = paths["from_inputs"][off[-2] :].sum()
    print(f"input -> output paths: {total:.4g}; through the busiest hidden-1 neuron: "
          f"{paths['through'][off[1] : off[2]].max():.4g}")

    deg = growcore.degrees(g)
    print(f"edges into each layer: {deg['layer_in'].tolist()} (total {g.nnz})")

    # One global adjacency (A[u, v] = edge u -> v in global slot order) for other tools.
    A, offsets = growcore.to_scipy_adjacency(g)
    print(f"\nscipy export: {A.shape} with {A.nnz} edges; layer offsets {offsets.tolist()}")
    assert np.allclose(growcore.katz(A, alpha=0.05), katz)
    back = growcore.from_scipy_adjacency(A, g.layer_sizes)
    print(f"imported back: blocks {back.blocks}, {back.nnz} edges")
    try:
        G = growcore.to_networkx(g)
    except ImportError:
        return
    print(f"networkx export: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges; node 790: {G.nodes[790]}")


if __name__ == "__main__":
    main()
