//! Senescence: neurons whose fitness has stopped moving age out of the network.
//!
//! At each update the tracker samples every living neuron's fitness. Over the last `window`
//! samples it fits a least-squares line and measures its *relative slope*: how far the line moves
//! over the window's span, in units of the layer's current fitness standard deviation. A neuron
//! is flat while `|relative slope| < epsilon`; flat for `flat_steps` steps and at least `min_age`
//! steps old, it becomes senescent;
//! senescent for `escalate_after` more steps, it is escalated to apoptosis (the caller kills it
//! with [`Graph::apoptosis`]'s `doomed` slots). Senescence is one-way: a senescent neuron stays
//! senescent until it dies.
//!
//! The tracker keys everything by neuron id, so it follows neurons through slot changes and
//! forgets the dead; a newborn starts with no samples. At most `max_fraction` of a layer becomes
//! senescent per update (the flattest first), and at most `max_fraction` is escalated per update
//! (the longest senescent first).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{GrowError, Result};
use crate::graph::Graph;
use crate::neurons::NeuronId;
use crate::numeric::{l2_norm, max_abs};
use crate::state::{frame, unframe};
use crate::Step;

/// Prefix of the byte encoding (see [`frame`]).
const MAGIC: &[u8; 8] = b"GROWSNSC";

/// When flatness turns into senescence and senescence into death.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenescenceSpec {
    /// Fitness samples in the rolling window (at least 2).
    pub window: usize,
    /// A relative slope below this in magnitude counts as flat.
    pub epsilon: f64,
    /// Steps a neuron must stay flat to become senescent.
    pub flat_steps: Step,
    /// Neurons younger than this never turn senescent (for example the senior age).
    pub min_age: Step,
    /// Steps a senescent neuron lives before it is escalated to apoptosis.
    pub escalate_after: Step,
    /// At most this fraction of a layer turns senescent, and at most this fraction is
    /// escalated, per update.
    pub max_fraction: f64,
}

impl SenescenceSpec {
    pub fn validate(&self) -> Result<()> {
        if self.window < 2 {
            return Err(GrowError::invalid(
                "window",
                format!("a slope needs at least 2 samples, got {}", self.window),
            ));
        }
        if !(self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            return Err(GrowError::invalid(
                "epsilon",
                format!("must be finite and non-negative, got {}", self.epsilon),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_fraction) {
            return Err(GrowError::invalid(
                "max_fraction",
                format!("must be in [0, 1], got {}", self.max_fraction),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Track {
    /// The last `window` samples, oldest first: (step, fitness).
    samples: Vec<(Step, f64)>,
    flat_since: Option<Step>,
    senescent_since: Option<Step>,
}

/// What one update found in a layer, by slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SenescenceUpdate {
    /// Each neuron's relative slope (NaN until its window is full).
    pub slope: Vec<f64>,
    /// Slots that became senescent in this update, ascending.
    pub newly_senescent: Vec<u32>,
    /// Slots escalated to apoptosis in this update, ascending.
    pub escalated: Vec<u32>,
    /// Every senescent slot after the update (including the escalated), ascending.
    pub senescent: Vec<u32>,
}

/// Per-neuron fitness history and senescence state of a graph's neurons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Senescence {
    tracks: BTreeMap<NeuronId, Track>,
}

impl Senescence {
    pub fn new() -> Self {
        Senescence::default()
    }

    /// Samples the fitness of `layer` at the graph's step (`fitness` per slot, or the
    /// accumulated fitness) and advances every neuron's state. Nothing changes on error.
    pub fn update(
        &mut self,
        graph: &Graph,
        layer: u32,
        fitness: Option<&[f64]>,
        spec: &SenescenceSpec,
    ) -> Result<SenescenceUpdate> {
        spec.validate()?;
        graph.check_layer("layer", layer as i64)?;
        let ids = graph.ids(layer);
        let values = match fitness {
            Some(v) => graph.layer_values("fitness", layer, v)?,
            None => graph.stats(layer).fitness,
        };
        let step = graph.step();
        // The layer's spread, 0 when its fitness does not vary beyond rounding (at any scale).
        let spread = match std_dev(&values) {
            sd if sd > 1e-12 * max_abs(&values) => sd,
            _ => 0.0,
        };
        // A graph restored to an earlier step would put samples out of order: refuse it before
        // anything changes.
        if let Some(last) = ids
            .iter()
            .filter_map(|id| self.tracks.get(id)?.samples.last())
            .map(|&(at, _)| at)
            .max()
            .filter(|&last| last > step)
        {
            return Err(GrowError::invalid(
                "graph",
                format!(
                    "its step {step} is before this tracker's last sample (step {last}); \
                     a tracker follows one graph forward in time"
                ),
            ));
        }
        // Forget the dead (ids are never reused, so a dead id's track can only mislead).
        let lineage = graph.lineage();
        self.tracks
            .retain(|&id, _| lineage.get(id as usize).is_some_and(|r| r.is_alive()));

        let mut slope = vec![f64::NAN; ids.len()];
        let mut flat_for = vec![None; ids.len()];
        for (s, (&id, &value)) in ids.iter().zip(&values).enumerate() {
            let track = self.tracks.entry(id).or_default();
            if track.samples.last().is_some_and(|&(at, _)| at == step) {
                track.samples.pop(); // sampled twice in one step: the later value wins
            }
            track.samples.push((step, value));
            // The last `window` samples (more than one may go when the window shrank).
            let excess = track.samples.len().saturating_sub(spec.window);
            track.samples.drain(..excess);
            if track.samples.len() == spec.window {
                let r = relative_slope(&track.samples, spread);
                slope[s] = r;
                if r.abs() < spec.epsilon {
                    track.flat_since.get_or_insert(track.samples[0].0);
                } else if track.senescent_since.is_none() {
                    track.flat_since = None;
                }
            }
            flat_for[s] = track.flat_since.map(|since| step - since.min(step));
        }

        let cap = (spec.max_fraction * ids.len() as f64).floor() as usize;
        let ages = graph.ages(layer);
        // The flattest candidates turn senescent first.
        let mut candidates: Vec<u32> = (0..ids.len() as u32)
            .filter(|&s| {
                let t = &self.tracks[&ids[s as usize]];
                t.senescent_since.is_none()
                    && ages[s as usize] >= spec.min_age
                    && flat_for[s as usize].is_some_and(|f| f >= spec.flat_steps)
            })
            .collect();
        candidates.sort_by(|&a, &b| {
            slope[a as usize]
                .abs()
                .total_cmp(&slope[b as usize].abs())
                .then(a.cmp(&b))
        });
        candidates.truncate(cap);
        candidates.sort_unstable();
        for &s in &candidates {
            self.tracks
                .get_mut(&ids[s as usize])
                .unwrap()
                .senescent_since = Some(step);
        }
        // The longest senescent are escalated first.
        let mut due: Vec<(Step, u32)> = (0..ids.len() as u32)
            .filter_map(|s| {
                let since = self.tracks[&ids[s as usize]].senescent_since?;
                (step - since.min(step) >= spec.escalate_after).then_some((since, s))
            })
            .collect();
        due.sort_unstable();
        due.truncate(cap);
        let mut escalated: Vec<u32> = due.into_iter().map(|(_, s)| s).collect();
        escalated.sort_unstable();
        Ok(SenescenceUpdate {
            slope,
            newly_senescent: candidates,
            escalated,
            senescent: self.senescent(graph, layer),
        })
    }

    /// The senescent slots of a layer, ascending.
    pub fn senescent(&self, graph: &Graph, layer: u32) -> Vec<u32> {
        graph
            .ids(layer)
            .iter()
            .enumerate()
            .filter(|(_, id)| {
                self.tracks
                    .get(id)
                    .is_some_and(|t| t.senescent_since.is_some())
            })
            .map(|(s, _)| s as u32)
            .collect()
    }

    /// Steps since each neuron of a layer became senescent (None if it is not).
    pub fn senescent_since(&self, graph: &Graph, layer: u32) -> Vec<Option<Step>> {
        graph
            .ids(layer)
            .iter()
            .map(|id| self.tracks.get(id).and_then(|t| t.senescent_since))
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        frame(
            MAGIC,
            &postcard::to_stdvec(self).expect("a Senescence always serialises"),
        )
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes = unframe(MAGIC, "senescence state", bytes)?;
        // The map's entries as a list (the same bytes), so that a repeated id is seen rather
        // than silently collapsed into one history.
        #[derive(Deserialize)]
        struct Entries {
            tracks: Vec<(NeuronId, Track)>,
        }
        let (entries, rest): (Entries, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| GrowError::state("bytes", format!("not a senescence state: {e}")))?;
        if !rest.is_empty() {
            return Err(GrowError::state(
                "bytes",
                format!("{} trailing bytes after the senescence state", rest.len()),
            ));
        }
        if let Some(w) = entries.tracks.windows(2).find(|w| w[0].0 >= w[1].0) {
            return Err(GrowError::state(
                "bytes",
                format!(
                    "neuron ids are not strictly increasing ({} then {})",
                    w[0].0, w[1].0
                ),
            ));
        }
        let state = Senescence {
            tracks: entries.tracks.into_iter().collect(),
        };
        for (id, t) in &state.tracks {
            if t.samples.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(GrowError::state(
                    "bytes",
                    format!("neuron {id}: fitness samples are not in step order"),
                ));
            }
            // `update` takes only finite fitness; a NaN sample would make every slope NaN.
            if let Some(&(at, value)) = t.samples.iter().find(|(_, v)| !v.is_finite()) {
                return Err(GrowError::state(
                    "bytes",
                    format!("neuron {id}: fitness sample at step {at} is {value}, not finite"),
                ));
            }
        }
        Ok(state)
    }
}

/// Least-squares slope of the samples times their span, over `spread` (0 when the layer's
/// fitness does not vary or the samples share one step).
fn relative_slope(samples: &[(Step, f64)], spread: f64) -> f64 {
    let n = samples.len() as f64;
    let mx = samples.iter().map(|&(x, _)| x as f64).sum::<f64>() / n;
    let my = samples.iter().map(|&(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = samples.iter().map(|&(x, _)| (x as f64 - mx).powi(2)).sum();
    let sxy: f64 = samples
        .iter()
        .map(|&(x, y)| (x as f64 - mx) * (y - my))
        .sum();
    let span = (samples[samples.len() - 1].0 - samples[0].0) as f64;
    if sxx <= 0.0 || spread <= 0.0 {
        return 0.0;
    }
    sxy / sxx * span / spread
}

/// Population standard deviation, with the deviations scaled before squaring (finite for values
/// near 1e300, nonzero for values near 1e-300).
fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|x| x / n).sum::<f64>();
    let deviations: Vec<f64> = values.iter().map(|x| x - mean).collect();
    l2_norm(&deviations) / n.sqrt()
}
