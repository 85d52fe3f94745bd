//! Exact Katz centrality on a layered DAG.
//!
//! Every edge goes from an earlier layer to a later one, so the adjacency matrix is nilpotent and
//! `x = beta + alpha * A^T x` has the exact solution computed in one pass in layer order:
//! `x_v = beta_v + alpha * sum_{u -> v} w_uv * x_u` ("in": importance flows along edges), or the
//! same pass in reverse layer order over out-edges ("out"). No tolerance, no iteration limit, any
//! alpha. Conventions follow networkx's `katz_centrality_numpy`, including its normalisation
//! `x / (sign(sum x) * ||x||_2)`.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::error::{GrowError, Result};
use crate::graph::{BlockKey, Graph};

/// Rows (targets) per rayon task when a block is large enough to share out.
const ROWS_PER_TASK: usize = 256;
/// Blocks with fewer edges than this are computed on one thread.
const PARALLEL_MIN_EDGES: usize = 1 << 15;
/// Graphs with at least this many edges run their pass inside the thread pool.
const SCOPED_MIN_EDGES: usize = 1 << 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A neuron is central when central neurons feed it (networkx's convention for DiGraphs).
    In,
    /// A neuron is central when it feeds central neurons.
    Out,
}

impl Direction {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "in" => Ok(Direction::In),
            "out" => Ok(Direction::Out),
            other => Err(GrowError::invalid(
                "direction",
                format!("must be \"in\" or \"out\", got {other:?}"),
            )),
        }
    }
}

/// The constant term: the same for every neuron, or one value per neuron in global slot order.
#[derive(Debug, Clone, Copy)]
pub enum Beta<'a> {
    Scalar(f64),
    PerNeuron(&'a [f64]),
}

/// Katz centrality of every neuron, in global slot order (layer 0's slots, then layer 1's, ...).
/// `weights` maps blocks to per-edge weights aligned with their CSR indices; blocks not named
/// have weight 1 on every edge.
pub fn katz(
    g: &Graph,
    alpha: f64,
    beta: Beta,
    weights: &BTreeMap<BlockKey, Vec<f64>>,
    direction: Direction,
    normalized: bool,
) -> Result<Vec<f64>> {
    check_alpha(alpha)?;
    let mut x = beta_vector(beta, g.num_neurons(), "neuron")?;
    check_weights(g, weights)?;
    // A long pass runs on a pool thread: the blocks' parallel loops then start from inside the
    // pool, without handing each block over from the caller's thread and waiting for a sleeping
    // worker to wake (slow on VMs). The hand-over of the whole pass costs about as much, so a
    // short pass (under about a millisecond) stays on the caller's thread.
    if g.nnz() >= SCOPED_MIN_EDGES {
        rayon::scope(|_| katz_pass(g, alpha, &mut x, weights, direction));
    } else {
        katz_pass(g, alpha, &mut x, weights, direction);
    }
    finish(x, normalized, "neuron")
}

fn katz_pass(
    g: &Graph,
    alpha: f64,
    x: &mut [f64],
    weights: &BTreeMap<BlockKey, Vec<f64>>,
    direction: Direction,
) {
    let sizes = g.layer_sizes();
    let offsets = g.layer_offsets();
    match direction {
        Direction::In => {
            for layer in 1..sizes.len() {
                let (earlier, rest) = x.split_at_mut(offsets[layer]);
                let targets = &mut rest[..sizes[layer] as usize];
                for (&(a, b), block) in g.blocks().filter(|((_, b), _)| *b as usize == layer) {
                    let sources = &earlier[offsets[a as usize]..offsets[a as usize + 1]];
                    let w = weights.get(&(a, b)).map(Vec::as_slice);
                    let row_sum = |v: usize| -> f64 {
                        let range = block.indptr()[v] as usize..block.indptr()[v + 1] as usize;
                        let cols = &block.indices()[range.clone()];
                        match w {
                            Some(w) => gather_sum(cols, sources, |k| w[range.start + k]),
                            None => gather_sum(cols, sources, |_| 1.0),
                        }
                    };
                    if block.nnz() >= PARALLEL_MIN_EDGES {
                        targets
                            .par_iter_mut()
                            .with_min_len(ROWS_PER_TASK)
                            .enumerate()
                            .for_each(|(v, xv)| *xv += alpha * row_sum(v));
                    } else {
                        for (v, xv) in targets.iter_mut().enumerate() {
                            *xv += alpha * row_sum(v);
                        }
                    }
                }
            }
        }
        Direction::Out => {
            for layer in (0..sizes.len() - 1).rev() {
                let (head, later) = x.split_at_mut(offsets[layer + 1]);
                let sources = &mut head[offsets[layer]..];
                for (&(a, b), block) in g.blocks().filter(|((a, _), _)| *a as usize == layer) {
                    let base = offsets[b as usize] - offsets[layer + 1];
                    let targets = &later[base..base + sizes[b as usize] as usize];
                    let w = weights.get(&(a, b)).map(Vec::as_slice);
                    // Scatter each target's value back to its sources; rows are independent, so
                    // large blocks give each task its own accumulator and add them up.
                    let scatter = |acc: &mut Vec<f64>, v: usize| {
                        let range = block.indptr()[v] as usize..block.indptr()[v + 1] as usize;
                        for (k, &u) in block.indices()[range.clone()].iter().enumerate() {
                            let wt = w.map_or(1.0, |w| w[range.start + k]);
                            acc[u as usize] += wt * targets[v];
                        }
                    };
                    let n_rows = block.shape().0 as usize;
                    let acc = if block.nnz() >= PARALLEL_MIN_EDGES {
                        (0..n_rows)
                            .into_par_iter()
                            .with_min_len(ROWS_PER_TASK)
                            .fold(
                                || vec![0.0; sources.len()],
                                |mut acc, v| {
                                    scatter(&mut acc, v);
                                    acc
                                },
                            )
                            .reduce(
                                || vec![0.0; sources.len()],
                                |mut a, b| {
                                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                                    a
                                },
                            )
                    } else {
                        let mut acc = vec![0.0; sources.len()];
                        (0..n_rows).for_each(|v| scatter(&mut acc, v));
                        acc
                    };
                    for (xu, s) in sources.iter_mut().zip(acc) {
                        *xu += alpha * s;
                    }
                }
            }
        }
    }
}

/// `sum_k weight(k) * sources[cols[k]]` with four independent partial sums. A single running
/// f64 sum waits for each add to finish (~4 cycles per edge); four chains let the adds overlap,
/// so the pass is limited by loading the indices instead. The order of additions depends only on
/// the row, so results are the same on any number of threads, and a weight of exactly 1 gives
/// the unweighted result bit for bit.
#[inline(always)]
fn gather_sum(cols: &[u32], sources: &[f64], weight: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut chunks = cols.chunks_exact(4);
    let mut k = 0;
    for c in &mut chunks {
        acc[0] += weight(k) * sources[c[0] as usize];
        acc[1] += weight(k + 1) * sources[c[1] as usize];
        acc[2] += weight(k + 2) * sources[c[2] as usize];
        acc[3] += weight(k + 3) * sources[c[3] as usize];
        k += 4;
    }
    for (j, &u) in chunks.remainder().iter().enumerate() {
        acc[j] += weight(k + j) * sources[u as usize];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// A general directed graph as CSR over sources: row `u` lists the targets `v` of edges `u -> v`
/// (the layout of `networkx.adjacency_matrix` and of a scipy `A[u, v]`).
pub struct Adjacency<'a> {
    pub n: usize,
    pub indptr: &'a [i64],
    pub indices: &'a [i64],
    /// Per-edge weights aligned with `indices`; `None` weighs every edge 1.
    pub weights: Option<&'a [f64]>,
}

/// How the power iteration on a cyclic graph stops.
#[derive(Debug, Clone, Copy)]
pub struct Iteration {
    pub tol: f64,
    pub max_iter: u32,
}

/// Katz centrality of a general directed graph. An acyclic graph is solved exactly in one pass in
/// topological order (any finite alpha); a cyclic one by power iteration, which stops when the
/// L1 change is below `n * tol` (networkx's rule) and fails clearly when it does not converge.
pub fn katz_general(
    adj: &Adjacency,
    alpha: f64,
    beta: Beta,
    direction: Direction,
    normalized: bool,
    iteration: Iteration,
) -> Result<Vec<f64>> {
    check_adjacency(adj)?;
    check_alpha(alpha)?;
    let mut x = beta_vector(beta, adj.n, "node")?;
    let beta_vec = x.clone();
    let edges = |u: usize| {
        let range = adj.indptr[u] as usize..adj.indptr[u + 1] as usize;
        adj.indices[range.clone()]
            .iter()
            .zip(range)
            .map(move |(&v, k)| (v as usize, adj.weights.map_or(1.0, |w| w[k])))
    };
    match topological_order(adj) {
        Some(order) => match direction {
            // In topological order every predecessor of v is final before v is reached.
            Direction::In => {
                for &u in &order {
                    let xu = x[u];
                    for (v, w) in edges(u) {
                        x[v] += alpha * w * xu;
                    }
                }
            }
            Direction::Out => {
                for &u in order.iter().rev() {
                    let s: f64 = edges(u).map(|(v, w)| w * x[v]).sum();
                    x[u] += alpha * s;
                }
            }
        },
        None => {
            if alpha <= 0.0 {
                return Err(GrowError::invalid(
                    "alpha",
                    format!("must be positive on a cyclic graph (power iteration), got {alpha}"),
                ));
            }
            let mut converged = false;
            for _ in 0..iteration.max_iter {
                let mut next = beta_vec.clone();
                for u in 0..adj.n {
                    match direction {
                        Direction::In => {
                            for (v, w) in edges(u) {
                                next[v] += alpha * w * x[u];
                            }
                        }
                        Direction::Out => {
                            next[u] += alpha * edges(u).map(|(v, w)| w * x[v]).sum::<f64>();
                        }
                    }
                }
                let change: f64 = next.iter().zip(&x).map(|(a, b)| (a - b).abs()).sum();
                x = next;
                if !change.is_finite() {
                    break;
                }
                if change < adj.n as f64 * iteration.tol {
                    converged = true;
                    break;
                }
            }
            if !converged {
                return Err(GrowError::invalid(
                    "alpha",
                    format!(
                        "power iteration did not converge in {} iterations (tol {}) on this cyclic graph: \
                         alpha = {alpha} is probably not below 1 / spectral radius of the adjacency matrix",
                        iteration.max_iter, iteration.tol
                    ),
                ));
            }
        }
    }
    finish(x, normalized, "node")
}

fn check_adjacency(adj: &Adjacency) -> Result<()> {
    if adj.indptr.len() != adj.n + 1
        || adj.indptr[0] != 0
        || adj.indptr[adj.n] != adj.indices.len() as i64
    {
        return Err(GrowError::invalid(
            "graph",
            "inconsistent CSR structure (indptr)",
        ));
    }
    if let Some(i) = adj.indptr.windows(2).position(|w| w[0] > w[1]) {
        return Err(GrowError::invalid(
            "graph",
            format!("indptr decreases at row {i}"),
        ));
    }
    if let Some(k) = adj
        .indices
        .iter()
        .position(|&v| v < 0 || v as usize >= adj.n)
    {
        return Err(GrowError::out_of_range(
            "graph.indices",
            adj.indices[k],
            adj.n as u64,
            "the nodes",
        ));
    }
    if let Some(w) = adj.weights {
        if w.len() != adj.indices.len() {
            return Err(GrowError::invalid(
                "weights",
                format!("has {} values for {} edges", w.len(), adj.indices.len()),
            ));
        }
        check_finite("weights", w)?;
    }
    Ok(())
}

/// Kahn's algorithm: a topological order of the nodes, or `None` when there is a cycle.
fn topological_order(adj: &Adjacency) -> Option<Vec<usize>> {
    let mut indegree = vec![0u32; adj.n];
    for &v in adj.indices {
        indegree[v as usize] += 1;
    }
    let mut order: Vec<usize> = (0..adj.n).filter(|&v| indegree[v] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let u = order[next];
        next += 1;
        for &v in &adj.indices[adj.indptr[u] as usize..adj.indptr[u + 1] as usize] {
            indegree[v as usize] -= 1;
            if indegree[v as usize] == 0 {
                order.push(v as usize);
            }
        }
    }
    (order.len() == adj.n).then_some(order)
}

/// Divides by `sign(sum x) * ||x||_2`, as networkx does; an all-zero vector stays zero.
fn normalize(x: &mut [f64]) {
    let norm = crate::numeric::l2_norm(x);
    let sum: f64 = x.iter().sum();
    let scale = if sum < 0.0 { -norm } else { norm };
    if scale != 0.0 && scale.is_finite() {
        x.iter_mut().for_each(|v| *v /= scale);
    }
}

fn check_alpha(alpha: f64) -> Result<()> {
    if !alpha.is_finite() {
        return Err(GrowError::invalid(
            "alpha",
            format!("must be finite, got {alpha}"),
        ));
    }
    Ok(())
}

/// `values` must all be finite; the error names `arg[i]`.
fn check_finite(arg: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(GrowError::invalid(
            format!("{arg}[{i}]"),
            format!("must be finite, got {}", values[i]),
        )),
        None => Ok(()),
    }
}

/// `beta` as one finite value per node (`what` names the nodes in messages).
fn beta_vector(beta: Beta, n: usize, what: &str) -> Result<Vec<f64>> {
    match beta {
        Beta::Scalar(b) if b.is_finite() => Ok(vec![b; n]),
        Beta::Scalar(b) => Err(GrowError::invalid(
            "beta",
            format!("must be finite, got {b}"),
        )),
        Beta::PerNeuron(b) if b.len() != n => Err(GrowError::invalid(
            "beta",
            format!("has {} values, expected one per {what} ({n})", b.len()),
        )),
        Beta::PerNeuron(b) => check_finite("beta", b).map(|_| b.to_vec()),
    }
}

/// Normalises if asked, and refuses a result that overflowed.
fn finish(mut x: Vec<f64>, normalized: bool, what: &str) -> Result<Vec<f64>> {
    if normalized {
        normalize(&mut x);
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(GrowError::invalid(
            "alpha",
            format!("the centrality overflowed ({what} {i} reached {}); use a smaller alpha or smaller weights", x[i]),
        ));
    }
    Ok(x)
}

/// Every named block exists and its weights are finite and aligned with its CSR.
fn check_weights(g: &Graph, weights: &BTreeMap<BlockKey, Vec<f64>>) -> Result<()> {
    for (&(a, b), w) in weights {
        let block = g.block((a, b)).map_err(|_| {
            GrowError::invalid(
                "weights",
                format!("names block ({a}, {b}), which the graph does not have"),
            )
        })?;
        if w.len() != block.nnz() {
            return Err(GrowError::invalid(
                format!("weights[({a}, {b})]"),
                format!(
                    "has {} values, but the block has {} edges (align weights with csr({a}, {b}))",
                    w.len(),
                    block.nnz()
                ),
            ));
        }
        check_finite(&format!("weights[({a}, {b})]"), w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{BlockInput, InitSpec};

    /// 0 -> 1 -> 2 chain plus a skip 0 -> 2, one neuron per layer.
    fn chain() -> Graph {
        let one = [0i64, 1];
        let col = [0i64];
        let blocks = vec![
            (
                (0, 1),
                BlockInput::Csr {
                    indptr: &one,
                    indices: &col,
                    shape: None,
                },
            ),
            (
                (1, 2),
                BlockInput::Csr {
                    indptr: &one,
                    indices: &col,
                    shape: None,
                },
            ),
            (
                (0, 2),
                BlockInput::Csr {
                    indptr: &one,
                    indices: &col,
                    shape: None,
                },
            ),
        ];
        Graph::from_blocks(&[1, 1, 1], 0, blocks).unwrap()
    }

    #[test]
    fn exact_on_a_small_dag_in_both_directions() {
        let g = chain();
        let x = katz(
            &g,
            0.5,
            Beta::Scalar(1.0),
            &BTreeMap::new(),
            Direction::In,
            false,
        )
        .unwrap();
        // x0 = 1; x1 = 1 + 0.5*x0 = 1.5; x2 = 1 + 0.5*(x1 + x0) = 2.25
        assert_eq!(x, vec![1.0, 1.5, 2.25]);
        let y = katz(
            &g,
            0.5,
            Beta::Scalar(1.0),
            &BTreeMap::new(),
            Direction::Out,
            false,
        )
        .unwrap();
        assert_eq!(y, vec![2.25, 1.5, 1.0]);
    }

    #[test]
    fn weights_and_normalisation() {
        let g = chain();
        let w: BTreeMap<BlockKey, Vec<f64>> = [((0, 2), vec![2.0])].into_iter().collect();
        let x = katz(&g, 1.0, Beta::Scalar(1.0), &w, Direction::In, false).unwrap();
        assert_eq!(x, vec![1.0, 2.0, 5.0]);
        let n = katz(&g, 1.0, Beta::Scalar(1.0), &w, Direction::In, true).unwrap();
        let norm = (1.0f64 + 4.0 + 25.0).sqrt();
        assert!(n.iter().zip(&x).all(|(a, b)| (a - b / norm).abs() < 1e-15));
    }

    #[test]
    fn gather_sum_covers_every_edge_of_any_row_length() {
        // Powers of two are exact in any order, so each edge's contribution is visible.
        let sources: Vec<f64> = (0..12).map(|i| f64::from(1u32 << i)).collect();
        for len in 0..12u32 {
            let cols: Vec<u32> = (0..len).rev().collect();
            let expected = f64::from((1u32 << len) - 1);
            assert_eq!(gather_sum(&cols, &sources, |_| 1.0), expected);
            let weighted = gather_sum(&cols, &sources, |k| if k % 2 == 0 { 3.0 } else { 1.0 });
            let expected_w: f64 = cols
                .iter()
                .enumerate()
                .map(|(k, &u)| sources[u as usize] * if k % 2 == 0 { 3.0 } else { 1.0 })
                .sum();
            assert_eq!(weighted, expected_w);
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let g = Graph::new(&[3, 2], &InitSpec::default()).unwrap();
        let none = BTreeMap::new();
        assert!(katz(&g, f64::NAN, Beta::Scalar(1.0), &none, Direction::In, true).is_err());
        assert!(katz(&g, 0.1, Beta::PerNeuron(&[1.0]), &none, Direction::In, true).is_err());
        let short: BTreeMap<BlockKey, Vec<f64>> = [((0, 1), vec![1.0])].into_iter().collect();
        let err = katz(&g, 0.1, Beta::Scalar(1.0), &short, Direction::In, true).unwrap_err();
        assert!(err.to_string().contains("weights[(0, 1)]"));
    }
}
