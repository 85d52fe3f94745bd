//! Property tests of the per-step reductions that feed the statistics: activation sums of a
//! batch and gradient norms over a block's edges, each against a naive f64 reference.

mod common;

use growcore_core::stats::add_activation_sums;
use proptest::prelude::*;

/// Values on a coarse grid, so that many land exactly on the thresholds (0 and 1).
fn grid_values(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-8i32..=8).prop_map(|k| k as f32 * 0.25), len)
}

fn batch() -> impl Strategy<Value = ((usize, usize, usize), Vec<f32>)> {
    // Up to 600 rows of a linear layer (pieces hold 256) or outer items of a convolution.
    (
        1usize..40,
        prop_oneof![Just(1usize), 2usize..20],
        0usize..600,
    )
        .prop_flat_map(|(n, inner, outer)| {
            let outer = if inner == 1 { outer } else { outer / 4 };
            (Just((outer, n, inner)), grid_values(outer * n * inner))
        })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn activation_sums_match_a_naive_reduction(((outer, n, inner), x) in batch(), start in -2.0f64..2.0) {
        let (low, high) = (0.0f32, 1.0f32);
        let mut sums = vec![start; 4 * n];
        let samples = add_activation_sums(&x, (n, inner), (low, high), &mut sums).unwrap();
        prop_assert_eq!(samples, (outer * inner) as u64);
        let mut want = vec![start; 4 * n];
        for o in 0..outer {
            for j in 0..n {
                for &v in &x[(o * n + j) * inner..][..inner] {
                    want[j] += f64::from(v);
                    want[n + j] += f64::from(v) * f64::from(v);
                    want[2 * n + j] += f64::from(u8::from(v >= high));
                    want[3 * n + j] += f64::from(u8::from(v <= low));
                }
            }
        }
        for (i, (&got, &want)) in sums.iter().zip(&want).enumerate() {
            prop_assert!(close(got, want), "sum {} of {}: {} != {}", i / n, i % n, got, want);
        }
    }

    #[test]
    fn row_norms_match_the_masked_dense_norm(
        rows in 1u32..60, cols in 1u32..60, density in 0.0f64..1.0, seed in 0u64..1000,
    ) {
        let g = common::graph(&[cols, rows], density, seed);
        let block = g.block((0, 1)).unwrap();
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 + seed as u32) % 97) as f32 / 13.0 - 3.5).collect();
        let norms = block.row_norms(&values).unwrap();
        let mask = block.to_dense();
        prop_assert_eq!(norms.len(), rows as usize);
        for r in 0..rows as usize {
            let want: f64 = (0..cols as usize)
                .filter(|&c| mask[r * cols as usize + c])
                .map(|c| f64::from(values[r * cols as usize + c]).powi(2))
                .sum::<f64>()
                .sqrt();
            prop_assert!(close(f64::from(norms[r]), want), "row {}: {} != {}", r, norms[r], want);
        }
    }
}
