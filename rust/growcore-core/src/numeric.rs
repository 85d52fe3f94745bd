//! Small numeric helpers that stay finite where the textbook formula overflows or underflows.

/// The largest magnitude of `values`, the factor that brings them to at most 1: dividing by it
/// first keeps squares finite (|x| up to about 1e308) and away from zero (down to about 1e-308).
/// 0 for an empty or all-zero slice.
pub(crate) fn max_abs(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m: f64, v| m.max(v.abs()))
}

/// The L2 norm of `values`, computed on values scaled by their largest magnitude.
pub(crate) fn l2_norm(values: &[f64]) -> f64 {
    let m = max_abs(values);
    if m == 0.0 || !m.is_finite() {
        return m;
    }
    m * values.iter().map(|v| (v / m) * (v / m)).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_of_huge_tiny_and_zero_values() {
        assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
        assert!((l2_norm(&[3e200, -4e200]) / 5e200 - 1.0).abs() < 1e-15);
        assert!((l2_norm(&[3e-200, 4e-200]) / 5e-200 - 1.0).abs() < 1e-15);
        assert_eq!(l2_norm(&[0.0, 0.0]), 0.0);
        assert_eq!(l2_norm(&[]), 0.0);
        assert_eq!(max_abs(&[-2.0, 1.0]), 2.0);
    }
}
