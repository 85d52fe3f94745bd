//! Neuron lifecycle decisions: fitness normalised per layer, life stages, and apoptosis (which
//! neurons die, which parents their replacements descend from, with what mixing weight and noise
//! seed). The core decides and records the lineage; the caller applies the plan to the tensors.

use rand::Rng;

use crate::error::{GrowError, Result};
use crate::graph::Graph;
use crate::neurons::{Fate, NeuronId, NeuronRecord};
use crate::Step;

/// How the replacement of a dying neuron is initialised (applied by the caller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regrowth {
    /// Fresh incoming weights, zero outgoing weights. Lineage parent: the dying neuron.
    Random,
    /// A fitness-weighted parent's incoming weights plus noise. Lineage parent: that parent.
    Mutation,
    /// `alpha * p1 + (1 - alpha) * p2` plus noise, two distinct fitness-weighted parents.
    Crossover(AlphaRule),
    /// Fresh incoming weights; the dying neuron's mean contribution moves into the next
    /// layer's bias. Lineage parent: the dying neuron.
    FunctionPreserving,
}

/// How a crossover's mixing weight `alpha` (of the first parent) is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlphaRule {
    /// Uniform in `[low, high]`.
    Uniform { low: f64, high: f64 },
    /// `f1 / (f1 + f2)` of the parents' selection weights.
    FitnessWeighted,
}

impl Regrowth {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "random" => Regrowth::Random,
            "mutation" => Regrowth::Mutation,
            "crossover" => Regrowth::Crossover(AlphaRule::Uniform {
                low: 0.3,
                high: 0.7,
            }),
            "function_preserving" => Regrowth::FunctionPreserving,
            other => {
                return Err(GrowError::invalid(
                    "strategy",
                    format!(
                        "unknown regrowth strategy {other:?}; expected \"random\", \"mutation\", \
                         \"crossover\" or \"function_preserving\""
                    ),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Regrowth::Random => "random",
            Regrowth::Mutation => "mutation",
            Regrowth::Crossover(_) => "crossover",
            Regrowth::FunctionPreserving => "function_preserving",
        }
    }
}

/// Which neurons of a layer die at one apoptosis event, and how they are replaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApoptosisSpec {
    /// At most this fraction of the layer's eligible (mature) neurons dies, lowest fitness first.
    pub fraction: f64,
    /// If set, only neurons whose normalised fitness is below it die (still capped by `fraction`).
    pub threshold: Option<f64>,
    /// Neurons younger than this many steps never die.
    pub maturity_age: Step,
    pub regrowth: Regrowth,
}

/// One replacement: the neuron in `slot` died and a newborn took its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    pub slot: u32,
    pub dead: NeuronId,
    pub born: NeuronId,
    /// Slots (in the same layer) whose incoming weights the newborn inherits: one for a
    /// mutation, two for a crossover, none otherwise.
    pub parent_slots: Vec<u32>,
    /// A crossover's weight of the first parent.
    pub alpha: Option<f64>,
    /// Seed for the caller's noise and fresh initialisation of this newborn.
    pub noise_seed: u64,
    /// Normalised fitness of the dead neuron when it died.
    pub fitness: f64,
    /// Whether the neuron died escalated from senescence rather than for low fitness.
    pub escalated: bool,
}

/// Which per-neuron score apoptosis ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitnessKind {
    /// The accumulated `alpha*grad_norm + beta*variance - gamma*stagnation`.
    Default,
    /// Continual Backprop's contribution utility: activation magnitude times the mean magnitude
    /// of the neuron's outgoing weights.
    Utility,
    /// ReDo's dormancy score: activation magnitude over the layer's mean activation magnitude
    /// (a dormant neuron scores near 0).
    Dormancy,
}

impl FitnessKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "default" => Ok(FitnessKind::Default),
            "utility" => Ok(FitnessKind::Utility),
            "dormancy" => Ok(FitnessKind::Dormancy),
            other => Err(GrowError::invalid(
                "fitness",
                format!(
                    "unknown fitness {other:?}; expected \"default\", \"utility\" or \"dormancy\""
                ),
            )),
        }
    }
}

/// Weights of the multi-objective fitness's terms (each term is z-scored within the layer
/// first, so the weights compare like with like). Energy is a cost: it is subtracted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectiveWeights {
    pub importance: f64,
    pub diversity: f64,
    pub stability: f64,
    pub energy: f64,
}

impl Default for ObjectiveWeights {
    fn default() -> Self {
        ObjectiveWeights {
            importance: 1.0,
            diversity: 0.5,
            stability: 0.5,
            energy: 0.25,
        }
    }
}

/// The raw terms of a multi-objective fitness (empty when a term's weight is 0 and its input
/// was not given) and their combination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectiveScores {
    pub importance: Vec<f64>,
    pub diversity: Vec<f64>,
    pub stability: Vec<f64>,
    pub energy: Vec<f64>,
    /// `w_i z(importance) + w_d z(diversity) + w_s z(stability) - w_e z(energy)`.
    pub fitness: Vec<f64>,
}

/// Life stages by age (steps since birth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageAges {
    /// Younger than this: newborn (never killed).
    pub mature: Step,
    /// From this age on: senior.
    pub senior: Step,
}

impl Graph {
    /// Fitness of a layer's neurons normalised within the layer: z-scores `(f - mean) / std`
    /// over the layer's neurons (0 for every neuron when they are all equal). `raw` replaces the
    /// accumulated fitness (one value per slot) when given.
    pub fn normalized_fitness(&self, layer: u32, raw: Option<&[f64]>) -> Result<Vec<f64>> {
        self.check_layer("layer", layer as i64)?;
        let values = match raw {
            Some(v) => self.layer_values("fitness", layer, v)?,
            None => self.stats(layer).fitness,
        };
        Ok(zscores(&values))
    }

    /// `values` checked as one finite number per neuron of `layer` (`arg` names them).
    pub(crate) fn layer_values(&self, arg: &str, layer: u32, values: &[f64]) -> Result<Vec<f64>> {
        let n = self.layer_size(layer) as usize;
        if values.len() != n {
            return Err(GrowError::invalid(
                arg,
                format!(
                    "has {} values, expected one per neuron of layer {layer} ({n})",
                    values.len()
                ),
            ));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(GrowError::invalid(
                format!("{arg}[{i}]"),
                format!("must be finite, got {}", values[i]),
            ));
        }
        Ok(values.to_vec())
    }

    /// A layer's raw fitness of the given kind, one value per slot. Activation magnitude is the
    /// root mean square `sqrt(E[h^2])` of the accumulated statistics (equal to `E|h|` when a
    /// neuron's activation is constant, an upper bound otherwise). `Utility` needs `out_weight`,
    /// each neuron's mean |outgoing weight|.
    pub fn fitness_scores(
        &self,
        layer: u32,
        kind: FitnessKind,
        out_weight: Option<&[f64]>,
    ) -> Result<Vec<f64>> {
        self.check_layer("layer", layer as i64)?;
        let report = self.stats(layer);
        let magnitude: Vec<f64> = report.sq_mean.iter().map(|&s| s.max(0.0).sqrt()).collect();
        Ok(match kind {
            FitnessKind::Default => report.fitness,
            FitnessKind::Utility => {
                let n = magnitude.len();
                let w = out_weight.ok_or_else(|| {
                    GrowError::invalid(
                        "out_weight",
                        "the utility fitness needs each neuron's mean |outgoing weight|",
                    )
                })?;
                if w.len() != n {
                    return Err(GrowError::invalid(
                        "out_weight",
                        format!(
                            "has {} values, expected one per neuron of layer {layer} ({n})",
                            w.len()
                        ),
                    ));
                }
                if let Some(i) = w.iter().position(|x| !x.is_finite() || *x < 0.0) {
                    return Err(GrowError::invalid(
                        format!("out_weight[{i}]"),
                        format!("must be finite and non-negative, got {}", w[i]),
                    ));
                }
                magnitude.iter().zip(w).map(|(m, w)| m * w).collect()
            }
            FitnessKind::Dormancy => {
                let mean = magnitude.iter().sum::<f64>() / magnitude.len().max(1) as f64;
                magnitude
                    .iter()
                    .map(|m| if mean > 0.0 { m / mean } else { 0.0 })
                    .collect()
            }
        })
    }

    /// How steady each neuron's activation level is: `1 - min(1, |fast_mean - mean| / std)`,
    /// where `fast_mean` is the short EMA of the activation mean, `mean` the long one and `std`
    /// the activation's standard deviation. 1 when the recent level matches the long-run level,
    /// 0 when it has drifted by a standard deviation or more, and 0 before any observation.
    pub fn stability(&self, layer: u32) -> Result<Vec<f64>> {
        self.check_layer("layer", layer as i64)?;
        let r = self.stats(layer);
        Ok((0..r.mean.len())
            .map(|i| {
                if r.observations[i] == 0 {
                    return 0.0;
                }
                let drift = (r.fast_mean[i] - r.mean[i]).abs();
                let std = r.variance[i].max(0.0).sqrt();
                if drift == 0.0 {
                    1.0
                } else if std == 0.0 {
                    0.0
                } else {
                    1.0 - (drift / std).min(1.0)
                }
            })
            .collect())
    }

    /// The multi-objective fitness of a layer: importance (`importance`, per slot, or the
    /// accumulated fitness), diversity (per slot, for example [`crate::Profiles::diversity`]),
    /// stability ([`Graph::stability`]) and energy (per slot, for example the RMS of the neuron's
    /// weights), each z-scored within the layer and combined by `weights`. A term whose weight is
    /// 0 may be left out; one whose weight is not 0 must be given.
    pub fn multi_objective_fitness(
        &self,
        layer: u32,
        weights: ObjectiveWeights,
        importance: Option<&[f64]>,
        diversity: Option<&[f64]>,
        energy: Option<&[f64]>,
    ) -> Result<ObjectiveScores> {
        self.check_layer("layer", layer as i64)?;
        let n = self.layer_size(layer) as usize;
        for (name, w) in [
            ("weights.importance", weights.importance),
            ("weights.diversity", weights.diversity),
            ("weights.stability", weights.stability),
            ("weights.energy", weights.energy),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(GrowError::invalid(
                    name,
                    format!("must be finite and non-negative, got {w}"),
                ));
            }
        }
        let term = |name: &str, values: Option<&[f64]>, weight: f64| -> Result<Vec<f64>> {
            match values {
                None if weight == 0.0 => Ok(Vec::new()),
                None => Err(GrowError::invalid(
                    name,
                    format!("is needed: its weight is {weight}"),
                )),
                Some(v) => self.layer_values(name, layer, v),
            }
        };
        let importance = match importance {
            Some(v) => self.layer_values("importance", layer, v)?,
            None => self.stats(layer).fitness,
        };
        let diversity = term("diversity", diversity, weights.diversity)?;
        let energy = term("energy", energy, weights.energy)?;
        let stability = self.stability(layer)?;
        let mut fitness = vec![0.0; n];
        for (values, w) in [
            (&importance, weights.importance),
            (&diversity, weights.diversity),
            (&stability, weights.stability),
            (&energy, -weights.energy),
        ] {
            if w != 0.0 && !values.is_empty() {
                for (f, z) in fitness.iter_mut().zip(zscores(values)) {
                    *f += w * z;
                }
            }
        }
        Ok(ObjectiveScores {
            importance,
            diversity,
            stability,
            energy,
            fitness,
        })
    }

    /// Each neuron's stage code in a layer: 0 newborn, 1 mature, 2 senior.
    pub fn stages(&self, layer: u32, ages: StageAges) -> Result<Vec<u8>> {
        self.check_layer("layer", layer as i64)?;
        Ok(self
            .ages(layer)
            .into_iter()
            .map(|a| {
                if a < ages.mature {
                    0
                } else if a < ages.senior {
                    1
                } else {
                    2
                }
            })
            .collect())
    }

    /// Kills the least fit mature neurons of `layer` and replaces each in place by a newborn
    /// (new id, fresh statistics, lineage parents per the regrowth strategy). Returns what it
    /// did, in slot order; nothing changes on error.
    ///
    /// `escalated` slots (senescent neurons escalated by [`crate::Senescence::update`]) die
    /// too, with fate `Senescence`, on top of the fitness-ranked ones: they do not count
    /// against `fraction` and are not parents. They must be distinct and mature.
    ///
    /// Parents are drawn among the layer's mature survivors with probability proportional to
    /// `fitness - min + 1e-3` (normalised fitness, so the fittest are likeliest and every
    /// survivor has a chance). A crossover needs two distinct parents; with only one eligible
    /// it falls back to a mutation of that one (`alpha` is then `None`), and with none to
    /// random regrowth, as does a mutation without parents.
    pub fn apoptosis(
        &mut self,
        layer: u32,
        spec: &ApoptosisSpec,
        raw_fitness: Option<&[f64]>,
        escalated: &[u32],
    ) -> Result<Vec<Replacement>> {
        if !(0.0..=1.0).contains(&spec.fraction) {
            return Err(GrowError::invalid(
                "fraction",
                format!("must be in [0, 1], got {}", spec.fraction),
            ));
        }
        if let Some(t) = spec.threshold.filter(|t| t.is_nan()) {
            return Err(GrowError::invalid(
                "threshold",
                format!("must be a number, got {t}"),
            ));
        }
        if let Regrowth::Crossover(AlphaRule::Uniform { low, high }) = spec.regrowth {
            if !(0.0 <= low && low <= high && high <= 1.0) {
                return Err(GrowError::invalid(
                    "alpha",
                    format!("the range must satisfy 0 <= low <= high <= 1, got [{low}, {high}]"),
                ));
            }
        }
        let fitness = self.normalized_fitness(layer, raw_fitness)?;
        let ages = self.ages(layer);
        let mut doomed = vec![false; fitness.len()];
        for (i, &s) in escalated.iter().enumerate() {
            let arg = || format!("escalated[{i}]");
            match ages.get(s as usize) {
                None => {
                    return Err(GrowError::out_of_range(
                        arg(),
                        s as i64,
                        fitness.len() as u64,
                        format!("layer {layer} of size {}", fitness.len()),
                    ))
                }
                Some(&age) if age < spec.maturity_age => {
                    return Err(GrowError::invalid(
                        arg(),
                        format!(
                            "slot {s} is {age} steps old, younger than maturity_age {}",
                            spec.maturity_age
                        ),
                    ))
                }
                _ if doomed[s as usize] => {
                    return Err(GrowError::invalid(
                        arg(),
                        format!("slot {s} is named twice"),
                    ))
                }
                _ => doomed[s as usize] = true,
            }
        }
        let eligible: Vec<u32> = (0..fitness.len() as u32)
            .filter(|&s| ages[s as usize] >= spec.maturity_age && !doomed[s as usize])
            .collect();
        let cap = (spec.fraction * eligible.len() as f64).floor() as usize;
        let mut ranked: Vec<u32> = eligible
            .iter()
            .copied()
            .filter(|&s| spec.threshold.is_none_or(|t| fitness[s as usize] < t))
            .collect();
        ranked.sort_by(|&a, &b| {
            fitness[a as usize]
                .total_cmp(&fitness[b as usize])
                .then(a.cmp(&b))
        });
        ranked.truncate(cap);
        ranked.extend_from_slice(escalated);
        ranked.sort_unstable();
        let dying = ranked;
        let survivors: Vec<u32> = eligible
            .iter()
            .copied()
            .filter(|s| dying.binary_search(s).is_err())
            .collect();
        let low = survivors
            .iter()
            .map(|&s| fitness[s as usize])
            .fold(f64::INFINITY, f64::min);
        let weights: Vec<f64> = survivors
            .iter()
            .map(|&s| fitness[s as usize] - low + 1e-3)
            .collect();

        let step = self.step;
        let mut out = Vec::with_capacity(dying.len());
        for &slot in &dying {
            let mut regrowth = spec.regrowth;
            let wanted = match regrowth {
                Regrowth::Mutation => 1,
                Regrowth::Crossover(_) => 2,
                _ => 0,
            };
            if wanted > survivors.len() {
                regrowth = match survivors.len() {
                    1 => Regrowth::Mutation,
                    _ => Regrowth::Random,
                };
            }
            let picks = match regrowth {
                Regrowth::Mutation => draw(&mut self.rng, &weights, 1),
                Regrowth::Crossover(_) => draw(&mut self.rng, &weights, 2),
                _ => Vec::new(),
            };
            let alpha = match regrowth {
                Regrowth::Crossover(AlphaRule::Uniform { low, high }) => Some(if high > low {
                    self.rng.random_range(low..=high)
                } else {
                    low
                }),
                Regrowth::Crossover(AlphaRule::FitnessWeighted) => {
                    let (w1, w2) = (weights[picks[0]], weights[picks[1]]);
                    Some(w1 / (w1 + w2))
                }
                _ => None,
            };
            let noise_seed: u64 = self.rng.random();
            let parent_slots: Vec<u32> = picks.iter().map(|&i| survivors[i]).collect();
            let dead = self.layers[layer as usize][slot as usize];
            let parent_ids: Vec<NeuronId> = if parent_slots.is_empty() {
                vec![dead]
            } else {
                parent_slots
                    .iter()
                    .map(|&s| self.layers[layer as usize][s as usize])
                    .collect()
            };
            let generation = parent_ids
                .iter()
                .map(|&p| self.neurons[p as usize].generation.saturating_add(1))
                .max()
                .unwrap_or(0);
            let fate = if doomed[slot as usize] {
                Fate::Senescence
            } else {
                Fate::Apoptosis
            };
            self.neurons[dead as usize].die(step, fate);
            let born = self.neurons.len() as NeuronId;
            self.neurons.push(NeuronRecord::newborn(
                layer,
                slot,
                step,
                [parent_ids.first().copied(), parent_ids.get(1).copied()],
                generation,
            ));
            self.layers[layer as usize][slot as usize] = born;
            self.stats[layer as usize].clear(slot as usize);
            out.push(Replacement {
                slot,
                dead,
                born,
                parent_slots,
                alpha,
                noise_seed,
                fitness: fitness[slot as usize],
                escalated: doomed[slot as usize],
            });
        }
        Ok(out)
    }
}

/// `(x - mean) / std` over the values; all zeros when they do not vary.
pub(crate) fn zscores(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    // z-scores do not change with the scale; bringing the values to at most 1 first keeps the
    // squares below finite for huge values.
    let m = crate::numeric::max_abs(values);
    if m == 0.0 || !m.is_finite() {
        return vec![0.0; values.len()];
    }
    let scaled: Vec<f64> = values.iter().map(|v| v / m).collect();
    let values = &scaled[..];
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    if std <= 1e-12 * mean.abs().max(1.0) {
        return vec![0.0; values.len()];
    }
    values.iter().map(|x| (x - mean) / std).collect()
}

/// `k` distinct indices drawn with probability proportional to `weights` (without replacement).
fn draw(rng: &mut impl Rng, weights: &[f64], k: usize) -> Vec<usize> {
    let mut taken: Vec<usize> = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = weights
            .iter()
            .enumerate()
            .filter(|(i, _)| !taken.contains(i))
            .map(|(_, w)| w)
            .sum();
        let mut x = rng.random::<f64>() * total;
        let mut pick = None;
        for (i, &w) in weights.iter().enumerate() {
            if taken.contains(&i) {
                continue;
            }
            pick = Some(i);
            if x < w {
                break;
            }
            x -= w;
        }
        taken.push(pick.expect("draw needs k <= weights.len()"));
    }
    taken
}
