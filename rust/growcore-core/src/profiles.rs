//! Comparing neurons by their activation profiles: one row per neuron (for example its mean
//! activation per class, or its activations over a batch), compared by cosine similarity.
//!
//! A row of zeros (a silent neuron) has similarity 0 with every other row: it duplicates no one.

use rayon::prelude::*;

use crate::error::{GrowError, Result};

/// Row-major `n x k` profiles.
#[derive(Debug, Clone, Copy)]
pub struct Profiles<'a> {
    values: &'a [f64],
    n: usize,
    k: usize,
}

/// Rows at or above this count are compared in parallel.
const PARALLEL_MIN_ROWS: usize = 256;

impl<'a> Profiles<'a> {
    /// Checks the shape and that every value is finite.
    pub fn new(values: &'a [f64], n: usize, k: usize) -> Result<Self> {
        if values.len() != n * k {
            return Err(GrowError::invalid(
                "profiles",
                format!("has {} values, expected {n} x {k}", values.len()),
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(GrowError::invalid(
                format!("profiles[{}, {}]", i / k.max(1), i % k.max(1)),
                format!("must be finite, got {}", values[i]),
            ));
        }
        Ok(Profiles { values, n, k })
    }

    /// Each row scaled to unit length (zero rows stay zero).
    fn unit_rows(&self) -> Vec<f64> {
        let mut out = self.values.to_vec();
        for row in out.chunks_mut(self.k.max(1)) {
            let norm = crate::numeric::l2_norm(row);
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        out
    }

    /// Cosine similarity of rows `i` and `j`, given the unit rows: exactly 1 for equal nonzero
    /// rows (their rounded dot product can fall just below 1), and never outside [-1, 1].
    fn cosine(&self, unit: &[f64], i: usize, j: usize) -> f64 {
        let k = self.k;
        let (a, b) = (&unit[i * k..(i + 1) * k], &unit[j * k..(j + 1) * k]);
        if a == b && a.iter().any(|&x| x != 0.0) {
            return 1.0;
        }
        a.iter()
            .zip(b)
            .map(|(x, y)| x * y)
            .sum::<f64>()
            .clamp(-1.0, 1.0)
    }

    /// Each neuron's diversity, `1 - max_{j != i} cos(p_i, p_j)`: 0 for an exact duplicate of
    /// another neuron, 1 for a profile orthogonal to all others, up to 2 when every other is its
    /// opposite. A layer of one neuron has diversity 1.
    pub fn diversity(&self) -> Vec<f64> {
        let unit = self.unit_rows();
        let n = self.n;
        let nearest = |i: usize| {
            (0..n)
                .filter(|&j| j != i)
                .map(|j| self.cosine(&unit, i, j))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let best: Vec<f64> = if n >= PARALLEL_MIN_ROWS {
            (0..n).into_par_iter().map(nearest).collect()
        } else {
            (0..n).map(nearest).collect()
        };
        best.into_iter()
            .map(|m| if m.is_finite() { 1.0 - m } else { 1.0 })
            .collect()
    }

    /// Pairs `(i, j, cos)` with `i < j` whose cosine similarity is at least `threshold`, most
    /// similar first (ties by `i`, then `j`).
    pub fn redundant_pairs(&self, threshold: f64) -> Result<Vec<(u32, u32, f64)>> {
        if !(-1.0..=1.0).contains(&threshold) {
            return Err(GrowError::invalid(
                "threshold",
                format!("a cosine similarity must be in [-1, 1], got {threshold}"),
            ));
        }
        let unit = self.unit_rows();
        let close = |i: usize| -> Vec<(u32, u32, f64)> {
            (i + 1..self.n)
                .map(|j| (j, self.cosine(&unit, i, j)))
                .filter(|&(_, c)| c >= threshold)
                .map(|(j, c)| (i as u32, j as u32, c))
                .collect()
        };
        let mut pairs: Vec<(u32, u32, f64)> = if self.n >= PARALLEL_MIN_ROWS {
            (0..self.n).into_par_iter().flat_map_iter(close).collect()
        } else {
            (0..self.n).flat_map(close).collect()
        };
        pairs.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_have_zero_diversity_and_are_reported() {
        // Rows 0 and 2 point the same way; row 1 is orthogonal to both; row 3 is silent.
        let v = [1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0];
        let p = Profiles::new(&v, 4, 2).unwrap();
        let d = p.diversity();
        assert!(d[0].abs() < 1e-12 && d[2].abs() < 1e-12);
        assert!((d[1] - (1.0 - 0.5f64.sqrt())).abs() < 1e-12);
        assert!((d[3] - 1.0).abs() < 1e-12);
        let pairs = p.redundant_pairs(0.99).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].0, pairs[0].1), (0, 2));
    }

    #[test]
    fn bad_shapes_and_values_are_refused() {
        assert!(Profiles::new(&[1.0, 2.0, 3.0], 2, 2).is_err());
        assert!(Profiles::new(&[1.0, f64::NAN], 1, 2).is_err());
        let p = Profiles::new(&[1.0, 2.0], 1, 2).unwrap();
        assert!(p.redundant_pairs(1.5).is_err());
        assert_eq!(p.diversity(), vec![1.0]);
    }
}
