//! growcore-core: the pure-Rust engine of growcore.
//!
//! A [`Graph`] is a layered DAG of neurons (layer 0 = inputs, last layer = outputs) whose edges
//! live in one CSR block per connected (source layer, target layer) pair. Neurons have stable ids
//! that are never reused, a slot (their row/column in tensors) that can change, lineage records,
//! and per-neuron training statistics that follow them through slot changes.
//!
//! This crate knows nothing of Python; `growcore-py` wraps it.

pub mod csr;
pub mod error;
pub mod extrema;
pub mod graph;
pub mod growth;
pub mod init;
pub mod katz;
pub mod lifecycle;
pub mod neurons;
mod numeric;
pub mod profiles;
pub mod prune_grow;
pub mod senescence;
pub mod state;
pub mod stats;

/// Training steps, as counted by the caller. 32 bits keep per-edge birth steps at 4 bytes.
pub type Step = u32;

/// The largest step: an edge's birth step shares its 32-bit word with the frozen flag.
pub const MAX_STEP: Step = (1 << 31) - 1;

pub use csr::CsrBlock;
pub use error::{GrowError, Result};
pub use extrema::{Activation, Extrema, ExtremaSpec};
pub use graph::{BlockInput, BlockKey, Graph, InitSpec};
pub use growth::{CloneType, GrowSpec, GrowthPlan, Load, NeuronClone, Route};
pub use init::Distribution;
pub use katz::{katz, katz_general, Adjacency, Beta, Direction, Iteration};
pub use lifecycle::{
    AlphaRule, ApoptosisSpec, FitnessKind, ObjectiveScores, ObjectiveWeights, Regrowth,
    Replacement, StageAges,
};
pub use neurons::{Fate, NeuronId, NeuronRecord};
pub use profiles::Profiles;
pub use prune_grow::{RewirePlan, Scores};
pub use senescence::{Senescence, SenescenceSpec, SenescenceUpdate};
pub use state::{GraphState, STATE_VERSION};
pub use stats::{LayerStats, Observation, StatsConfig, StatsReport};
