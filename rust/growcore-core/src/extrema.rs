//! Extrema detection: which neurons of a layer sit at the edge of their activation's range
//! ("high" extrema, bottlenecks that growth relieves) and which have spare capacity ("low"
//! extrema, where new connections are routed), from the accumulated statistics.
//!
//! The statistics count, per neuron, the fraction of samples at or above the high saturation
//! threshold and at or below the low one (an EMA over training batches). With an ε-ball of
//! radius `epsilon`, the presets put those thresholds at
//!
//! | activation | low threshold   | high threshold  |
//! |------------|-----------------|-----------------|
//! | tanh       | `-1 + epsilon`  | `1 - epsilon`   |
//! | sigmoid    | `epsilon`       | `1 - epsilon`   |
//! | relu       | `epsilon`       | unused (`+inf`) |
//!
//! and the definitions are:
//!
//! - **tanh, sigmoid** (bounded): *high* when the fraction of samples saturated near the top
//!   exceeds `q`; *low* when the fraction saturated near the bottom exceeds `q`. A neuron
//!   saturated both ways (each above `q`, possible only for `q < 0.5`) counts as high.
//! - **relu** (unbounded above): *low* when *dead* (at or below `epsilon` on at least
//!   `dead_fraction` of samples) or *quiet* (among the `fraction` of the layer with the lowest
//!   activation variance); *high* when among the `fraction` of the layer with the largest mean
//!   activation and that mean is at least `high_z` standard deviations (over the layer's means)
//!   above the layer's average: persistently the largest, since the mean is a long EMA.
//!
//! Neurons with fewer than `min_observations` activation observations (newborns) are neither;
//! a neuron never observed has no statistics and is neither even with `min_observations = 0`.

use crate::error::{GrowError, Result};
use crate::graph::Graph;
use crate::lifecycle::zscores;

/// An activation function's preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    Sigmoid,
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            "relu" => Ok(Activation::Relu),
            other => Err(GrowError::invalid(
                "activation",
                format!(r#"expected "tanh", "sigmoid" or "relu", got {other:?}"#),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
        }
    }

    /// The activation's range `(lowest, highest)`, open at a bound it only approaches.
    pub fn range(self) -> (f64, f64) {
        match self {
            Activation::Tanh => (-1.0, 1.0),
            Activation::Sigmoid => (0.0, 1.0),
            Activation::Relu => (0.0, f64::INFINITY),
        }
    }

    /// The preset saturation thresholds `(low, high)` for an ε-ball of radius `epsilon`.
    pub fn thresholds(self, epsilon: f64) -> Result<(f64, f64)> {
        let (lo, hi) = self.range();
        let widest = if hi.is_finite() {
            (hi - lo) / 2.0
        } else {
            f64::INFINITY
        };
        if !(epsilon > 0.0 && epsilon < widest) {
            return Err(GrowError::invalid(
                "epsilon",
                format!(
                    "must be in (0, {widest}) for {}, got {epsilon}",
                    self.name()
                ),
            ));
        }
        Ok(match self {
            Activation::Relu => (epsilon, f64::INFINITY),
            _ => (lo + epsilon, hi - epsilon),
        })
    }

    /// Checks user-chosen thresholds: both inside the activation's range, `low < high`.
    pub fn check_thresholds(self, low: f64, high: f64) -> Result<()> {
        let (lo, hi) = self.range();
        let name = self.name();
        if !(low.is_finite() && low >= lo && low < hi) {
            return Err(GrowError::invalid(
                "low",
                format!("must lie in the range [{lo}, {hi}) of {name}, got {low}"),
            ));
        }
        // ReLU never saturates at the top: its high threshold may be +inf (unused).
        let high_ok = if hi.is_finite() {
            high > lo && high <= hi
        } else {
            high > lo
        };
        if !high_ok || high.is_nan() {
            return Err(GrowError::invalid(
                "high",
                format!("must lie in the range ({lo}, {hi}] of {name}, got {high}"),
            ));
        }
        if low >= high {
            return Err(GrowError::invalid(
                "high",
                format!("must be above low ({low}), got {high}"),
            ));
        }
        Ok(())
    }
}

/// How extrema are detected; see the module documentation for the definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtremaSpec {
    pub activation: Activation,
    /// Bounded activations: the saturated fraction of samples above which a neuron is an
    /// extremum: 0.5.
    pub q: f64,
    /// ReLU: the fraction of samples at or below the low threshold from which a neuron is
    /// dead: 0.9.
    pub dead_fraction: f64,
    /// ReLU: the fraction of the layer counted as quiet (lowest variance) and as candidates
    /// for high (largest mean): 0.1.
    pub fraction: f64,
    /// ReLU: a high neuron's mean is at least this many standard deviations above the
    /// layer's average mean: 1.0.
    pub high_z: f64,
    /// Neurons with fewer activation observations are neither high nor low: 1. (0 acts as 1:
    /// a neuron never observed has no statistics.)
    pub min_observations: u32,
}

impl ExtremaSpec {
    pub fn new(activation: Activation) -> Self {
        ExtremaSpec {
            activation,
            q: 0.5,
            dead_fraction: 0.9,
            fraction: 0.1,
            high_z: 1.0,
            min_observations: 1,
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("q", self.q),
            ("dead_fraction", self.dead_fraction),
            ("fraction", self.fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(GrowError::invalid(
                    name,
                    format!("must be in [0, 1], got {value}"),
                ));
            }
        }
        if !self.high_z.is_finite() {
            return Err(GrowError::invalid(
                "high_z",
                format!("must be finite, got {}", self.high_z),
            ));
        }
        Ok(())
    }
}

/// A layer's extrema: slots, strongest first (ties by slot), with their scores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extrema {
    pub high: Vec<u32>,
    /// Bounded: the saturated-high fraction; ReLU: the z-score of the mean.
    pub high_score: Vec<f64>,
    pub low: Vec<u32>,
    /// Bounded: the saturated-low fraction; ReLU: the fraction of samples at or below the
    /// low threshold (dead ones first), then quiet ones by `1 / (1 + variance)`.
    pub low_score: Vec<f64>,
}

impl Graph {
    /// The extrema of `layer` from its accumulated statistics.
    pub fn extrema(&self, layer: u32, spec: &ExtremaSpec) -> Result<Extrema> {
        self.check_layer("layer", layer as i64)?;
        spec.validate()?;
        let r = self.stats(layer);
        let n = r.mean.len();
        let seen: Vec<bool> = r
            .observations
            .iter()
            .map(|&c| c >= spec.min_observations.max(1))
            .collect();
        let mut high: Vec<(u32, f64)> = Vec::new();
        let mut low: Vec<(u32, f64)> = Vec::new();
        match spec.activation {
            Activation::Tanh | Activation::Sigmoid => {
                for s in (0..n).filter(|&s| seen[s]) {
                    if r.frac_high[s] > spec.q {
                        high.push((s as u32, r.frac_high[s]));
                    } else if r.frac_low[s] > spec.q {
                        low.push((s as u32, r.frac_low[s]));
                    }
                }
            }
            Activation::Relu => {
                let live: Vec<usize> = (0..n).filter(|&s| seen[s]).collect();
                let take = (spec.fraction * live.len() as f64).floor() as usize;
                let dead: Vec<bool> = (0..n)
                    .map(|s| seen[s] && r.frac_low[s] >= spec.dead_fraction)
                    .collect();
                for &s in live.iter().filter(|&&s| dead[s]) {
                    // Dead neurons rank above every quiet one.
                    low.push((s as u32, 1.0 + r.frac_low[s]));
                }
                let mut by_variance: Vec<usize> =
                    live.iter().copied().filter(|&s| !dead[s]).collect();
                by_variance
                    .sort_by(|&a, &b| r.variance[a].total_cmp(&r.variance[b]).then(a.cmp(&b)));
                for &s in by_variance.iter().take(take) {
                    low.push((s as u32, 1.0 / (1.0 + r.variance[s])));
                }
                let means: Vec<f64> = live.iter().map(|&s| r.mean[s]).collect();
                let z = zscores(&means);
                let mut by_mean: Vec<(usize, f64)> = live.iter().copied().zip(z).collect();
                by_mean.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                for &(s, z) in by_mean.iter().take(take) {
                    if z >= spec.high_z && !dead[s] {
                        high.push((s as u32, z));
                    }
                }
                // A neuron both quiet and high (a tiny layer) counts as high.
                low.retain(|(s, _)| !high.iter().any(|(h, _)| h == s));
            }
        }
        let order =
            |v: &mut Vec<(u32, f64)>| v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        order(&mut high);
        order(&mut low);
        Ok(Extrema {
            high: high.iter().map(|x| x.0).collect(),
            high_score: high.iter().map(|x| x.1).collect(),
            low: low.iter().map(|x| x.0).collect(),
            low_score: low.iter().map(|x| x.1).collect(),
        })
    }
}
