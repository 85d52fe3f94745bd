//! Everything checkpointable about a graph as plain columns (`GraphState`), its strict
//! validation on the way back in, and a compact byte encoding.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::csr::CsrBlock;
use crate::error::{GrowError, Result};
use crate::graph::Graph;
use crate::neurons::{Fate, NeuronRecord};
use crate::stats::{LayerStats, StatsConfig};
use crate::{Step, MAX_STEP};

/// Version of the state layout; bumped whenever a field changes.
pub const STATE_VERSION: u32 = 1;

/// Prefix of the graph's byte encoding, so foreign bytes are rejected before decoding.
const MAGIC: &[u8; 8] = b"GROWCORE";

/// `magic ‖ CRC-32 of body (little-endian) ‖ body`. The checksum makes a flipped, cut or
/// extended checkpoint an error up front: many corruptions otherwise decode into a different
/// state that is still valid (another edge, another age) and would load silently.
pub(crate) fn frame(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + 4 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of [`frame`]d bytes, once the magic and the checksum match; `what` names the kind
/// of data in the errors.
pub(crate) fn unframe<'a>(magic: &[u8; 8], what: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let rest = bytes.strip_prefix(magic.as_slice()).ok_or_else(|| {
        let header = String::from_utf8_lossy(magic);
        GrowError::state(
            "bytes",
            format!("not a growcore {what} (missing the {header} header)"),
        )
    })?;
    let (stored, body) = rest.split_first_chunk::<4>().ok_or_else(|| {
        GrowError::state("bytes", format!("{what} truncated before its checksum"))
    })?;
    let (stored, actual) = (u32::from_le_bytes(*stored), crc32fast::hash(body));
    if stored != actual {
        let msg = format!(
            "{what} is corrupt: checksum {actual:#010x} of its {} bytes, {stored:#010x} stored \
             (the data was changed, cut short or extended)",
            body.len()
        );
        return Err(GrowError::state("bytes", msg));
    }
    Ok(body)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockState {
    pub src: u32,
    pub dst: u32,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub birth: Vec<u32>,
    pub frozen: Vec<bool>,
}

/// Lineage columns, one entry per id ever issued; -1 marks "none" (alive, no parent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronsState {
    pub layer: Vec<u32>,
    pub birth: Vec<u32>,
    pub death: Vec<i64>,
    pub parent_a: Vec<i64>,
    pub parent_b: Vec<i64>,
    pub generation: Vec<u32>,
    pub fate: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphState {
    pub version: u32,
    pub step: u32,
    /// Per layer: slot -> id.
    pub slot_ids: Vec<Vec<u64>>,
    pub neurons: NeuronsState,
    pub blocks: Vec<BlockState>,
    pub stats: Vec<LayerStats>,
    pub stats_config: StatsConfig,
    pub rng: RngState,
}

fn opt_to_i64(x: Option<u64>) -> i64 {
    x.map_or(-1, |v| v as i64)
}

fn i64_to_opt(field: &str, x: i64) -> Result<Option<u64>> {
    match x {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        v => Err(GrowError::state(
            field,
            format!("{v} is neither an id nor -1"),
        )),
    }
}

impl Graph {
    pub fn to_state(&self) -> GraphState {
        let n = &self.neurons;
        GraphState {
            version: STATE_VERSION,
            step: self.step,
            slot_ids: self.layers.clone(),
            neurons: NeuronsState {
                layer: n.iter().map(|r| r.layer).collect(),
                birth: n.iter().map(|r| r.birth).collect(),
                death: n.iter().map(|r| r.death.map_or(-1, i64::from)).collect(),
                parent_a: n.iter().map(|r| opt_to_i64(r.parents[0])).collect(),
                parent_b: n.iter().map(|r| opt_to_i64(r.parents[1])).collect(),
                generation: n.iter().map(|r| r.generation).collect(),
                fate: n.iter().map(|r| r.fate.code()).collect(),
            },
            blocks: self
                .blocks
                .values()
                .map(|b| BlockState {
                    src: b.src,
                    dst: b.dst,
                    indptr: b.indptr.clone(),
                    indices: b.indices.clone(),
                    birth: b.births(),
                    frozen: b.frozen(),
                })
                .collect(),
            stats: self.stats.clone(),
            stats_config: self.stats_config,
            rng: RngState {
                seed: self.rng.get_seed(),
                stream: self.rng.get_stream(),
                word_pos: self.rng.get_word_pos(),
            },
        }
    }

    /// Rebuilds a graph from a state, checking every field and every invariant.
    pub fn from_state(state: GraphState) -> Result<Graph> {
        if state.version != STATE_VERSION {
            return Err(GrowError::state(
                "version",
                format!(
                    "unsupported state version {} (this growcore reads {STATE_VERSION})",
                    state.version
                ),
            ));
        }
        let n = &state.neurons;
        let count = n.layer.len();
        for (name, len) in [
            ("neurons.birth", n.birth.len()),
            ("neurons.death", n.death.len()),
            ("neurons.parent_a", n.parent_a.len()),
            ("neurons.parent_b", n.parent_b.len()),
            ("neurons.generation", n.generation.len()),
            ("neurons.fate", n.fate.len()),
        ] {
            if len != count {
                return Err(GrowError::state(
                    name,
                    format!("has {len} entries, neurons.layer has {count}"),
                ));
            }
        }
        let mut neurons = Vec::with_capacity(count);
        for i in 0..count {
            let fate = Fate::from_code(n.fate[i]).ok_or_else(|| {
                GrowError::state(
                    "neurons.fate",
                    format!("unknown code {} at id {i}", n.fate[i]),
                )
            })?;
            let death = i64_to_opt("neurons.death", n.death[i])?;
            if death.is_some_and(|d| d > Step::MAX as u64) {
                return Err(GrowError::state(
                    "neurons.death",
                    format!("step {} too large at id {i}", n.death[i]),
                ));
            }
            neurons.push(NeuronRecord {
                layer: n.layer[i],
                slot: None,
                birth: n.birth[i],
                death: death.map(|d| d as Step),
                parents: [
                    i64_to_opt("neurons.parent_a", n.parent_a[i])?,
                    i64_to_opt("neurons.parent_b", n.parent_b[i])?,
                ],
                generation: n.generation[i],
                fate,
            });
        }
        for (layer, ids) in state.slot_ids.iter().enumerate() {
            for (slot, &id) in ids.iter().enumerate() {
                let record = neurons.get_mut(id as usize).ok_or_else(|| {
                    GrowError::state(
                        "slot_ids",
                        format!("layer {layer} slot {slot} names unknown id {id}"),
                    )
                })?;
                record.slot = Some(slot as u32);
            }
        }
        if state.stats.len() != state.slot_ids.len() {
            return Err(GrowError::state(
                "stats",
                format!(
                    "has {} layers, slot_ids has {}",
                    state.stats.len(),
                    state.slot_ids.len()
                ),
            ));
        }
        let mut blocks = std::collections::BTreeMap::new();
        for (i, b) in state.blocks.into_iter().enumerate() {
            let field = format!("blocks[{i}]");
            let size = |layer: u32| state.slot_ids.get(layer as usize).map(|l| l.len() as u32);
            let (Some(n_cols), Some(n_rows)) = (size(b.src), size(b.dst)) else {
                return Err(GrowError::state(
                    &field,
                    format!("names a missing layer ({}, {})", b.src, b.dst),
                ));
            };
            if blocks.contains_key(&(b.src, b.dst)) {
                return Err(GrowError::state(
                    &field,
                    format!("block ({}, {}) appears twice", b.src, b.dst),
                ));
            }
            if b.birth.len() != b.indices.len() || b.frozen.len() != b.indices.len() {
                return Err(GrowError::state(
                    &field,
                    "birth and frozen must be aligned with indices",
                ));
            }
            if let Some(&s) = b.birth.iter().find(|&&s| s > MAX_STEP) {
                return Err(GrowError::state(
                    &field,
                    format!("birth step {s} exceeds the largest step {MAX_STEP}"),
                ));
            }
            let block = CsrBlock::from_parts(
                b.src, b.dst, n_rows, n_cols, b.indptr, b.indices, &b.birth, &b.frozen,
            );
            block.check().map_err(|m| GrowError::state(&field, m))?;
            blocks.insert((b.src, b.dst), block);
        }
        let (stats, stats_config) = (state.stats, state.stats_config);
        stats_config
            .validate()
            .map_err(|e| e.into_state("stats_config"))?;
        // ChaCha counts 2^64 blocks of 16 words: a position beyond 2^68 would be wrapped.
        if state.rng.word_pos >> 68 != 0 {
            return Err(GrowError::state(
                "rng.word_pos",
                format!(
                    "{} is beyond the generator's 2**68 words",
                    state.rng.word_pos
                ),
            ));
        }
        let mut rng = ChaCha8Rng::from_seed(state.rng.seed);
        rng.set_stream(state.rng.stream);
        rng.set_word_pos(state.rng.word_pos);
        if state.step > MAX_STEP {
            return Err(GrowError::state(
                "step",
                format!("{} exceeds the largest step {MAX_STEP}", state.step),
            ));
        }
        let graph = Graph {
            layers: state.slot_ids,
            neurons,
            blocks,
            stats,
            stats_config,
            step: state.step,
            rng,
        };
        graph.validate()?;
        Ok(graph)
    }

    /// Replaces this graph by the one in `state`; on error nothing changes.
    pub fn load_state(&mut self, state: GraphState) -> Result<()> {
        *self = Graph::from_state(state)?;
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain vectors and numbers into a Vec cannot fail.
        let body = postcard::to_stdvec(&self.to_state()).expect("a GraphState always serialises");
        frame(MAGIC, &body)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Graph> {
        let body = unframe(MAGIC, "graph", bytes)?;
        let (state, rest): (GraphState, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| GrowError::state("bytes", format!("cannot decode: {e}")))?;
        if !rest.is_empty() {
            let msg = format!("{} unexpected bytes after the graph", rest.len());
            return Err(GrowError::state("bytes", msg));
        }
        Graph::from_state(state)
    }
}
