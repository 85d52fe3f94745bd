//! Per-neuron training statistics: bias-corrected exponential moving averages of the summaries
//! that training feeds in, and the fitness computed from them.
//!
//! Storage is per layer in slot order (structure of arrays), so `observe` is one pass over
//! contiguous memory; the graph permutes these arrays whenever slots change, which is what makes
//! statistics follow neuron ids.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{GrowError, Result};

/// Coefficients and policies of the statistics. Defaults are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatsConfig {
    /// Decay of the long EMAs (mean, mean of squares, saturation fractions, gradient norm): 0.99.
    pub decay: f64,
    /// Decay of the short EMA of the activation mean used for stagnation: 0.9.
    pub fast_decay: f64,
    /// Fitness weight of the gradient norm: 1.0.
    pub alpha: f64,
    /// Fitness weight of the activation variance: 1.0.
    pub beta: f64,
    /// Fitness weight (subtracted) of stagnation: 0.1.
    pub gamma: f64,
    /// Stagnation is 0 until a neuron has this many activation observations: 10.
    pub stagnation_warmup: u32,
    /// Raise on NaN/inf instead of skipping the sample: false.
    pub strict: bool,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            decay: 0.99,
            fast_decay: 0.9,
            alpha: 1.0,
            beta: 1.0,
            gamma: 0.1,
            stagnation_warmup: 10,
            strict: false,
        }
    }
}

/// Floor added to the standard deviation when scaling the drift for stagnation.
const STAGNATION_EPS: f64 = 1e-8;

impl StatsConfig {
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("decay", self.decay), ("fast_decay", self.fast_decay)] {
            if !(value > 0.0 && value < 1.0) {
                return Err(GrowError::invalid(
                    name,
                    format!("must be in (0, 1), got {value}"),
                ));
            }
        }
        for (name, value) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
        ] {
            if !value.is_finite() {
                return Err(GrowError::invalid(
                    name,
                    format!("must be finite, got {value}"),
                ));
            }
        }
        if self.stagnation_warmup < 1 {
            return Err(GrowError::invalid(
                "stagnation_warmup",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// One layer's raw (not yet bias-corrected) EMAs and observation counts, in slot order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LayerStats {
    pub mean: Vec<f64>,
    pub sq_mean: Vec<f64>,
    pub frac_high: Vec<f64>,
    pub frac_low: Vec<f64>,
    pub fast_mean: Vec<f64>,
    pub act_count: Vec<u32>,
    pub grad_norm: Vec<f64>,
    pub grad_count: Vec<u32>,
    /// Neuron-samples skipped because an input was NaN or inf.
    pub nonfinite: u64,
}

/// One observation of a layer: per-neuron summaries of a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation<'a> {
    pub mean: Option<&'a [f32]>,
    pub sq_mean: Option<&'a [f32]>,
    pub frac_high: Option<&'a [f32]>,
    pub frac_low: Option<&'a [f32]>,
    pub grad_norm: Option<&'a [f32]>,
}

/// Bias-corrected statistics of a layer, as reported to users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsReport {
    pub mean: Vec<f64>,
    pub sq_mean: Vec<f64>,
    pub variance: Vec<f64>,
    pub frac_high: Vec<f64>,
    pub frac_low: Vec<f64>,
    pub grad_norm: Vec<f64>,
    pub fast_mean: Vec<f64>,
    pub stagnation: Vec<f64>,
    pub fitness: Vec<f64>,
    pub observations: Vec<u32>,
    pub grad_observations: Vec<u32>,
}

impl LayerStats {
    pub fn zeros(n: usize) -> Self {
        let mut s = LayerStats::default();
        s.resize(n);
        s
    }

    pub fn len(&self) -> usize {
        self.mean.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Grows (new neurons start at zero) or shrinks to `n` slots.
    /// Reserves room for `n` neurons in every column; fails instead of aborting when the memory
    /// is not there.
    pub(crate) fn try_reserve_total(
        &mut self,
        n: usize,
    ) -> std::result::Result<(), std::collections::TryReserveError> {
        let extra = n.saturating_sub(self.len());
        for v in self.f64_columns_mut() {
            v.try_reserve_exact(extra)?;
        }
        self.act_count.try_reserve_exact(extra)?;
        self.grad_count.try_reserve_exact(extra)
    }

    pub(crate) fn resize(&mut self, n: usize) {
        for v in self.f64_columns_mut() {
            v.resize(n, 0.0);
        }
        self.act_count.resize(n, 0);
        self.grad_count.resize(n, 0);
    }

    fn f64_columns_mut(&mut self) -> [&mut Vec<f64>; 6] {
        [
            &mut self.mean,
            &mut self.sq_mean,
            &mut self.frac_high,
            &mut self.frac_low,
            &mut self.fast_mean,
            &mut self.grad_norm,
        ]
    }

    /// Forgets everything about the neuron in `slot` (a reset neuron starts fresh).
    pub(crate) fn clear(&mut self, slot: usize) {
        for v in self.f64_columns_mut() {
            v[slot] = 0.0;
        }
        self.act_count[slot] = 0;
        self.grad_count[slot] = 0;
    }

    /// Keeps the slots listed in `kept` (ascending), renumbered 0..kept.len().
    pub(crate) fn keep(&mut self, kept: &[u32]) {
        fn pick<T: Copy>(v: &mut Vec<T>, kept: &[u32]) {
            *v = kept.iter().map(|&i| v[i as usize]).collect();
        }
        for v in self.f64_columns_mut() {
            pick(v, kept);
        }
        pick(&mut self.act_count, kept);
        pick(&mut self.grad_count, kept);
    }

    /// Folds one observation in. Validates everything first, so an error changes nothing.
    pub fn observe(&mut self, obs: &Observation, config: &StatsConfig) -> Result<()> {
        let n = self.len();
        let act = [
            ("mean", obs.mean),
            ("sq_mean", obs.sq_mean),
            ("frac_high", obs.frac_high),
            ("frac_low", obs.frac_low),
        ];
        let given = act.iter().filter(|(_, v)| v.is_some()).count();
        if given != 0 && given != 4 {
            let missing: Vec<&str> = act
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            return Err(GrowError::invalid(
                missing[0],
                format!(
                    "mean, sq_mean, frac_high and frac_low go together; missing {}",
                    missing.join(", ")
                ),
            ));
        }
        if given == 0 && obs.grad_norm.is_none() {
            return Err(GrowError::invalid(
                "mean",
                "nothing to observe: give the activation summaries, grad_norm, or both",
            ));
        }
        let inputs = act.iter().copied().chain([("grad_norm", obs.grad_norm)]);
        for (name, values) in inputs.clone() {
            if let Some(v) = values {
                check_input(name, v, n, config.strict)?;
            }
        }

        if let [Some(mean), Some(sq), Some(hi), Some(lo)] = act.map(|(_, v)| v) {
            let d = config.decay;
            let f = config.fast_decay;
            for i in 0..n {
                let x = [mean[i], sq[i], hi[i], lo[i]];
                if x.iter().any(|v| !v.is_finite()) {
                    self.nonfinite += 1;
                    continue;
                }
                let [m, s, h, l] = x.map(f64::from);
                self.mean[i] = d * self.mean[i] + (1.0 - d) * m;
                self.sq_mean[i] = d * self.sq_mean[i] + (1.0 - d) * s;
                self.frac_high[i] = d * self.frac_high[i] + (1.0 - d) * h;
                self.frac_low[i] = d * self.frac_low[i] + (1.0 - d) * l;
                self.fast_mean[i] = f * self.fast_mean[i] + (1.0 - f) * m;
                self.act_count[i] = self.act_count[i].saturating_add(1);
            }
        }
        if let Some(grad) = obs.grad_norm {
            let d = config.decay;
            for ((ema, count), &g) in self
                .grad_norm
                .iter_mut()
                .zip(&mut self.grad_count)
                .zip(grad)
            {
                if !g.is_finite() {
                    self.nonfinite += 1;
                    continue;
                }
                *ema = d * *ema + (1.0 - d) * f64::from(g);
                *count = count.saturating_add(1);
            }
        }
        Ok(())
    }

    /// Bias-corrected statistics, stagnation and fitness.
    pub fn report(&self, config: &StatsConfig) -> StatsReport {
        let n = self.len();
        let mut r = StatsReport {
            observations: self.act_count.clone(),
            grad_observations: self.grad_count.clone(),
            ..StatsReport::default()
        };
        for i in 0..n {
            let slow = correction(config.decay, self.act_count[i]);
            let fast = correction(config.fast_decay, self.act_count[i]);
            let mean = self.mean[i] * slow;
            let sq_mean = self.sq_mean[i] * slow;
            let variance = (sq_mean - mean * mean).max(0.0);
            let fast_mean = self.fast_mean[i] * fast;
            let grad = self.grad_norm[i] * correction(config.decay, self.grad_count[i]);
            let stagnation = if self.act_count[i] < config.stagnation_warmup {
                0.0
            } else {
                1.0 / (1.0 + (fast_mean - mean).abs() / (variance.sqrt() + STAGNATION_EPS))
            };
            r.mean.push(mean);
            r.sq_mean.push(sq_mean);
            r.variance.push(variance);
            r.frac_high.push(self.frac_high[i] * slow);
            r.frac_low.push(self.frac_low[i] * slow);
            r.grad_norm.push(grad);
            r.fast_mean.push(fast_mean);
            r.stagnation.push(stagnation);
            r.fitness
                .push(config.alpha * grad + config.beta * variance - config.gamma * stagnation);
        }
        r
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let n = self.len();
        let ok = [
            &self.sq_mean,
            &self.frac_high,
            &self.frac_low,
            &self.fast_mean,
            &self.grad_norm,
        ]
        .iter()
        .all(|v| v.len() == n)
            && self.act_count.len() == n
            && self.grad_count.len() == n;
        if !ok {
            return Err("statistics columns differ in length".into());
        }
        // The accumulators only ever hold finite values (non-finite inputs are skipped), means
        // of squares and norms are non-negative, and fractions lie in [0, 1].
        type Rule = (fn(&f64) -> bool, &'static str);
        let finite: Rule = (|v| v.is_finite(), "finite");
        let non_negative: Rule = (|v| v.is_finite() && *v >= 0.0, "finite and non-negative");
        let fraction: Rule = (|v| (0.0..=1.0).contains(v), "in [0, 1]");
        let columns = [
            ("mean", &self.mean, finite),
            ("fast_mean", &self.fast_mean, finite),
            ("sq_mean", &self.sq_mean, non_negative),
            ("grad_norm", &self.grad_norm, non_negative),
            ("frac_high", &self.frac_high, fraction),
            ("frac_low", &self.frac_low, fraction),
        ];
        for (name, values, (ok, rule)) in columns {
            if let Some(i) = values.iter().position(|v| !ok(v)) {
                return Err(format!("{name}[{i}] = {} is not {rule}", values[i]));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- reducing a batch

/// Elements per piece of work: pieces are summed in f32 and folded into f64 in order; large
/// batches (see [`crate::csr::PARALLEL_STEP_WORK`]) reduce their pieces on all cores.
const PIECE: usize = 1 << 16;

/// Adds a batch of activations to per-neuron sums, the raw material of an [`Observation`].
///
/// `x` is row-major `(outer, neurons, inner)` as `layout = (neurons, inner)`: `(batch, neurons,
/// 1)` for a linear layer's output, `(batch, channels, height * width)` for a convolution's;
/// every (outer, inner) pair is one sample. `sums` is `(4, neurons)` row-major, its rows the sum,
/// the sum of squares, and the numbers of samples at or above `high` and at or below `low`. Returns the number of samples added. Nothing changes on error.
///
/// The result depends only on the input, not on the number of threads: each piece of about
/// [`PIECE`] elements is reduced alone and the pieces are added in order.
pub fn add_activation_sums(
    x: &[f32],
    (neurons, inner): (usize, usize),
    (low, high): (f32, f32),
    sums: &mut [f64],
) -> Result<u64> {
    if neurons == 0 || inner == 0 {
        return Err(GrowError::invalid(
            "x",
            format!("needs at least one neuron and one position per sample, got layout ({neurons}, {inner})"),
        ));
    }
    let per_outer = neurons * inner;
    if x.len() % per_outer != 0 {
        return Err(GrowError::invalid(
            "x",
            format!(
                "has {} values, not a whole number of ({neurons}, {inner}) samples",
                x.len()
            ),
        ));
    }
    if sums.len() != 4 * neurons {
        return Err(GrowError::invalid(
            "sums",
            format!(
                "has {} values, expected 4 rows of {neurons} neurons",
                sums.len()
            ),
        ));
    }
    if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
        return Err(GrowError::invalid(
            "thresholds",
            format!("expected low < high, got ({low}, {high})"),
        ));
    }
    // Pieces of whole outer items; for a linear layer at most 256 rows, so f32 counts stay exact
    // and the f32 sums short.
    let outer_per_piece = if inner == 1 {
        (PIECE / neurons).clamp(1, 256)
    } else {
        (PIECE / per_outer).max(1)
    };
    let piece = |chunk: &[f32]| {
        let mut part = vec![0.0f64; 4 * neurons];
        if inner == 1 {
            sum_rows(chunk, neurons, (low, high), &mut part);
        } else {
            sum_runs(chunk, inner, (low, high), &mut part);
        }
        // f32 sums overflow for |x| beyond about 1.8e19 (its square) while f64 holds them: such
        // a piece, rare, is summed again in f64 (inf or NaN in `x` stay inf or NaN).
        if part.iter().any(|v| !v.is_finite()) {
            part.fill(0.0);
            sum_exact(chunk, (neurons, inner), (low, high), &mut part);
        }
        part
    };
    let chunk_len = outer_per_piece * per_outer;
    let parts: Vec<Vec<f64>> = if x.len() >= crate::csr::PARALLEL_STEP_WORK {
        x.par_chunks(chunk_len).map(piece).collect()
    } else {
        x.chunks(chunk_len).map(piece).collect()
    };
    for part in parts {
        for (s, p) in sums.iter_mut().zip(part) {
            *s += p;
        }
    }
    Ok((x.len() / neurons) as u64)
}

/// Eight neurons' (or eight samples') running sums, one lane each.
#[derive(Clone, Copy, Default)]
struct Lanes {
    sum: [f32; 8],
    sq: [f32; 8],
    above: [u32; 8],
    below: [u32; 8],
}

impl Lanes {
    /// Adds eight values, one per lane. A fixed length and one loop per quantity: each loop
    /// compiles to a few vector instructions.
    #[inline(always)]
    fn add8(&mut self, x: &[f32; 8], (low, high): (f32, f32)) {
        for (s, &v) in self.sum.iter_mut().zip(x) {
            *s += v;
        }
        for (s, &v) in self.sq.iter_mut().zip(x) {
            *s += v * v;
        }
        for (s, &v) in self.above.iter_mut().zip(x) {
            *s += u32::from(v >= high);
        }
        for (s, &v) in self.below.iter_mut().zip(x) {
            *s += u32::from(v <= low);
        }
    }

    /// Adds up to eight values (the remainder of a row or run).
    fn add(&mut self, x: &[f32], (low, high): (f32, f32)) {
        for (k, &v) in x.iter().enumerate().take(8) {
            self.sum[k] += v;
            self.sq[k] += v * v;
            self.above[k] += u32::from(v >= high);
            self.below[k] += u32::from(v <= low);
        }
    }

    /// Lane `k` of the four quantities, in the order of the rows of the sums.
    fn lane(&self, k: usize) -> [f64; 4] {
        [
            f64::from(self.sum[k]),
            f64::from(self.sq[k]),
            f64::from(self.above[k]),
            f64::from(self.below[k]),
        ]
    }
}

/// Sums of rows of `neurons` values (at most 256 rows): eight neurons per group of lanes.
fn sum_rows(x: &[f32], neurons: usize, thresholds: (f32, f32), out: &mut [f64]) {
    // Row by row, all groups in turn: the sums stay in the first-level cache. (Going down the
    // rows one group at a time would keep a group in registers, but rows a power-of-two apart
    // share cache sets, and that was three times slower for 1024 neurons.)
    let mut groups = vec![Lanes::default(); neurons.div_ceil(8)];
    let (full, last) = groups.split_at_mut(neurons / 8);
    for row in x.chunks_exact(neurons) {
        let mut eights = row.chunks_exact(8);
        for (lanes, eight) in full.iter_mut().zip(&mut eights) {
            lanes.add8(eight.try_into().expect("8 values"), thresholds);
        }
        if let Some(lanes) = last.first_mut() {
            lanes.add(eights.remainder(), thresholds);
        }
    }
    for n in 0..neurons {
        for (q, v) in groups[n / 8].lane(n % 8).into_iter().enumerate() {
            out[q * neurons + n] += v;
        }
    }
}

/// Sums of runs of `inner` values, one run per (outer, neuron), neuron-major within an outer item:
/// eight samples per group of lanes, flushed to f64 every 2048 values.
fn sum_runs(x: &[f32], inner: usize, thresholds: (f32, f32), out: &mut [f64]) {
    let neurons = out.len() / 4;
    for (i, run) in x.chunks_exact(inner).enumerate() {
        let n = i % neurons;
        for part in run.chunks(2048) {
            let mut lanes = Lanes::default();
            let mut eights = part.chunks_exact(8);
            for eight in &mut eights {
                lanes.add8(eight.try_into().expect("8 values"), thresholds);
            }
            lanes.add(eights.remainder(), thresholds);
            for k in 0..8 {
                for (q, v) in lanes.lane(k).into_iter().enumerate() {
                    out[q * neurons + n] += v;
                }
            }
        }
    }
}

/// The sums of `add_activation_sums` in f64, one value at a time.
fn sum_exact(
    x: &[f32],
    (neurons, inner): (usize, usize),
    (low, high): (f32, f32),
    out: &mut [f64],
) {
    for (i, &v) in x.iter().enumerate() {
        let n = i / inner % neurons;
        let v64 = f64::from(v);
        out[n] += v64;
        out[neurons + n] += v64 * v64;
        out[2 * neurons + n] += f64::from(u8::from(v >= high));
        out[3 * neurons + n] += f64::from(u8::from(v <= low));
    }
}

/// Bias correction factor 1 / (1 - d^n) of an EMA started at zero; 0 before any observation.
fn correction(decay: f64, count: u32) -> f64 {
    if count == 0 {
        0.0
    } else {
        1.0 / (1.0 - decay.powi(count.min(i32::MAX as u32) as i32))
    }
}

fn check_input(name: &str, values: &[f32], n: usize, strict: bool) -> Result<()> {
    if values.len() != n {
        return Err(GrowError::invalid(
            name,
            format!("has length {}, expected the layer size {n}", values.len()),
        ));
    }
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            if strict {
                return Err(GrowError::NonFinite {
                    arg: name.to_string(),
                    index: i,
                    value: v,
                    why: " (strict mode is on)",
                });
            }
            continue;
        }
        let bad = match name {
            "frac_high" | "frac_low" => !(0.0..=1.0).contains(&v),
            "sq_mean" | "grad_norm" => v < 0.0,
            _ => false,
        };
        if bad {
            let rule = if name.starts_with("frac") {
                "in [0, 1]"
            } else {
                ">= 0"
            };
            return Err(GrowError::invalid(
                format!("{name}[{i}]"),
                format!("must be {rule}, got {v}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_is_bias_corrected() {
        let mut s = LayerStats::zeros(1);
        let cfg = StatsConfig::default();
        let x = [2.0f32];
        let obs = Observation {
            mean: Some(&x),
            sq_mean: Some(&[5.0]),
            frac_high: Some(&[0.5]),
            frac_low: Some(&[0.0]),
            grad_norm: Some(&[3.0]),
        };
        s.observe(&obs, &cfg).unwrap();
        let r = s.report(&cfg);
        assert!(
            (r.mean[0] - 2.0).abs() < 1e-12,
            "one observation reads back exactly"
        );
        assert!((r.variance[0] - 1.0).abs() < 1e-12);
        assert!((r.grad_norm[0] - 3.0).abs() < 1e-12);
        assert_eq!(r.stagnation[0], 0.0, "stagnation waits for the warm-up");
    }

    #[test]
    fn activation_sums_refuse_bad_input_and_change_nothing() {
        let x = [0.5f32; 12];
        let mut sums = [1.0f64; 12];
        for (layout, thresholds, len, arg) in [
            ((5, 1), (0.0, 1.0), 12, "x"),
            ((0, 1), (0.0, 1.0), 12, "x"),
            ((3, 2), (0.0, 1.0), 8, "sums"),
            ((3, 1), (1.0, 1.0), 12, "thresholds"),
            ((3, 1), (f32::NAN, 1.0), 12, "thresholds"),
        ] {
            let err = add_activation_sums(&x, layout, thresholds, &mut sums[..len]).unwrap_err();
            assert!(err.to_string().contains(arg), "{err}");
            assert!(sums.iter().all(|&s| s == 1.0), "{layout:?}: sums changed");
        }
    }

    #[test]
    fn activation_sums_of_huge_values_are_finite_in_f64() {
        // 1e20 squared overflows f32 (and 256 values of 3e38 overflow an f32 sum), not f64.
        for (layout, x) in [
            ((2, 1), vec![1e20f32, 1.0, -3e20, 2.0]),
            ((1, 3), vec![3e38f32, 3e38, 1.0]),
        ] {
            let mut sums = vec![0.0f64; 4 * layout.0];
            add_activation_sums(&x, layout, (0.0, 1.0), &mut sums).unwrap();
            let mut exact = vec![0.0f64; 4 * layout.0];
            sum_exact(&x, layout, (0.0, 1.0), &mut exact);
            assert!(sums.iter().all(|v| v.is_finite()), "{sums:?}");
            assert_eq!(sums, exact);
        }
        let mut sums = vec![0.0f64; 8];
        add_activation_sums(&[1e20, 1.0, -3e20, 2.0], (2, 1), (0.0, 1.0), &mut sums).unwrap();
        assert_eq!(sums[0], 1e20f32 as f64 - 3e20f32 as f64);
        assert_eq!(sums[2], (1e20f32 as f64).powi(2) + (3e20f32 as f64).powi(2));
        assert_eq!(&sums[4..], &[1.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn activation_sums_keep_nan_out_of_the_counts() {
        let x = [f32::NAN, 2.0, -1.0, 0.5];
        let mut sums = vec![0.0f64; 8];
        assert_eq!(
            add_activation_sums(&x, (2, 1), (0.0, 1.0), &mut sums).unwrap(),
            2
        );
        assert!(sums[0].is_nan() && sums[2].is_nan(), "NaN reaches the sums");
        assert_eq!(&sums[1..2], &[2.5]);
        assert_eq!(
            &sums[4..],
            &[0.0, 1.0, 1.0, 0.0],
            "counts: >= 1 and <= 0 per neuron"
        );
    }

    #[test]
    fn activation_sums_do_not_depend_on_the_threads() {
        // A batch of many pieces, both layouts, on one thread and on four.
        let x: Vec<f32> = (0..1_200_000)
            .map(|i| ((i * 37 % 1001) as f32 - 500.0) / 97.0)
            .collect();
        assert!(x.len() >= crate::csr::PARALLEL_STEP_WORK);
        for layout in [(1000usize, 1usize), (10, 50)] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut sums = vec![0.0f64; 4 * layout.0];
                pool.install(|| add_activation_sums(&x, layout, (-1.0, 1.0), &mut sums))
                    .unwrap();
                sums
            };
            let one = run(1);
            assert_eq!(one, run(4), "{layout:?}");
            let total: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let scale: f64 = x.iter().map(|&v| f64::from(v).abs()).sum();
            let got: f64 = one[..layout.0].iter().sum();
            assert!((got - total).abs() < 1e-6 * scale, "{got} != {total}");
        }
    }

    #[test]
    fn nonfinite_skipped_or_rejected() {
        let mut s = LayerStats::zeros(2);
        let mut cfg = StatsConfig::default();
        let g = [f32::NAN, 1.0];
        let obs = Observation {
            grad_norm: Some(&g),
            ..Default::default()
        };
        s.observe(&obs, &cfg).unwrap();
        assert_eq!(s.nonfinite, 1);
        assert_eq!(s.grad_count, vec![0, 1]);
        cfg.strict = true;
        let before = s.clone();
        assert!(matches!(
            s.observe(&obs, &cfg),
            Err(GrowError::NonFinite { index: 0, .. })
        ));
        assert_eq!(s, before);
    }
}
