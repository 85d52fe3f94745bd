//! Initial edge counts per block (uniform or ERK) and random placement of those edges.

use rand::seq::index;
use rand::Rng;

use crate::csr::{sort_keys, CsrBlock};
use crate::error::{GrowError, Result};

/// How the requested density is spread over the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every block gets the same density.
    Uniform,
    /// Erdős–Rényi–Kernel: a block's density is proportional to (rows + cols) / (rows * cols),
    /// capped at 1 with the excess redistributed to the other blocks.
    Erk,
}

impl Distribution {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "uniform" => Ok(Distribution::Uniform),
            "erk" => Ok(Distribution::Erk),
            other => Err(GrowError::invalid(
                "distribution",
                format!("unknown distribution {other:?}; expected \"uniform\" or \"erk\""),
            )),
        }
    }
}

pub fn check_density(arg: &str, density: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&density) {
        return Err(GrowError::invalid(
            arg,
            format!("must be in [0, 1], got {density}"),
        ));
    }
    Ok(())
}

/// Exact edge counts for blocks of the given (rows, cols) shapes. Uniform: every block gets
/// `round(density * capacity)`. ERK: the counts sum to exactly `round(density * total capacity)`
/// and no block exceeds its capacity.
pub fn edge_counts(shapes: &[(u32, u32)], density: f64, distribution: Distribution) -> Vec<u64> {
    let capacity: Vec<u64> = shapes.iter().map(|&(r, c)| r as u64 * c as u64).collect();
    match distribution {
        Distribution::Uniform => capacity
            .iter()
            .map(|&c| (density * c as f64).round() as u64)
            .collect(),
        Distribution::Erk => {
            let target = (density * capacity.iter().sum::<u64>() as f64).round() as u64;
            // Layer sizes are at least 1, so rows * cols > 0.
            let weights: Vec<f64> = shapes
                .iter()
                .map(|&(r, c)| (r as f64 + c as f64) / (r as f64 * c as f64))
                .collect();
            let ideal = capped_shares(&capacity, &weights, target);
            largest_remainder(&ideal, &capacity, target)
        }
    }
}

/// Real-valued edge counts `min(capacity, eps * weight * capacity)` with eps chosen so that they
/// sum to `target`: blocks that would exceed their capacity are fixed dense and eps is re-solved
/// on the rest until no block overflows.
fn capped_shares(capacity: &[u64], weights: &[f64], target: u64) -> Vec<f64> {
    let mut dense = vec![false; capacity.len()];
    loop {
        let fixed: f64 = (0..capacity.len())
            .filter(|&i| dense[i])
            .map(|i| capacity[i] as f64)
            .sum();
        let mass: f64 = (0..capacity.len())
            .filter(|&i| !dense[i])
            .map(|i| weights[i] * capacity[i] as f64)
            .sum();
        let eps = if mass > 0.0 {
            (target as f64 - fixed).max(0.0) / mass
        } else {
            0.0
        };
        let mut changed = false;
        for i in 0..capacity.len() {
            if !dense[i] && eps * weights[i] > 1.0 {
                dense[i] = true;
                changed = true;
            }
        }
        if !changed {
            return (0..capacity.len())
                .map(|i| {
                    if dense[i] {
                        capacity[i] as f64
                    } else {
                        eps * weights[i] * capacity[i] as f64
                    }
                })
                .collect();
        }
    }
}

/// Rounds real counts to integers summing exactly to `target` (largest remainder, ties to the
/// earlier block), never above capacity.
fn largest_remainder(ideal: &[f64], capacity: &[u64], target: u64) -> Vec<u64> {
    let mut counts: Vec<u64> = ideal
        .iter()
        .zip(capacity)
        .map(|(&x, &cap)| (x.floor() as u64).min(cap))
        .collect();
    let mut short = target.saturating_sub(counts.iter().sum());
    let mut order: Vec<usize> = (0..ideal.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = ideal[a] - ideal[a].floor();
        let fb = ideal[b] - ideal[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    while short > 0 {
        let before = short;
        for &i in &order {
            if short == 0 {
                break;
            }
            if counts[i] < capacity[i] {
                counts[i] += 1;
                short -= 1;
            }
        }
        if short == before {
            break; // every block is full: target exceeded total capacity (cannot happen for density <= 1)
        }
    }
    counts
}

/// A block with `count` edges at uniformly random distinct positions.
pub fn random_block<R: Rng + ?Sized>(
    src: u32,
    dst: u32,
    n_rows: u32,
    n_cols: u32,
    count: u64,
    rng: &mut R,
) -> CsrBlock {
    let capacity = n_rows as usize * n_cols as usize;
    let mut keys: Vec<u64> = if count as usize == capacity {
        (0..capacity as u64).collect()
    } else {
        index::sample(rng, capacity, count as usize)
            .into_iter()
            .map(|k| k as u64)
            .collect()
    };
    sort_keys(&mut keys);
    CsrBlock::from_sorted_keys(src, dst, n_rows, n_cols, &keys, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_counts_round_per_block_total() {
        let counts = edge_counts(&[(10, 10), (5, 10)], 0.5, Distribution::Uniform);
        assert_eq!(counts, vec![50, 25]);
    }

    #[test]
    fn erk_caps_small_blocks_and_keeps_total() {
        let shapes = [(300, 784), (100, 300), (10, 100)];
        let counts = edge_counts(&shapes, 0.1, Distribution::Erk);
        let total: u64 = shapes.iter().map(|&(r, c)| r as u64 * c as u64).sum();
        assert_eq!(
            counts.iter().sum::<u64>(),
            (0.1 * total as f64).round() as u64
        );
        // ERK favours the small output block over the large input block.
        assert!(counts[2] as f64 / 1000.0 > counts[0] as f64 / 235_200.0);
        let dense = edge_counts(&[(2, 2), (1000, 1000)], 0.5, Distribution::Erk);
        assert_eq!(dense[0], 4, "the tiny block is capped dense");
        assert_eq!(dense.iter().sum::<u64>(), 500_002);
    }
}
