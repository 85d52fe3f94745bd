//! The network's connectivity: a layered DAG of neurons with one CSR block per connected
//! (source layer, target layer) pair, stable neuron ids, lineage, and per-neuron statistics.
//!
//! Every mutation validates its whole input before it changes anything, so an `Err` always
//! leaves the graph as it was.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::csr::CsrBlock;
use crate::error::{GrowError, Result};
use crate::init::{check_density, edge_counts, random_block, Distribution};
use crate::neurons::{Fate, NeuronId, NeuronRecord};
use crate::stats::{LayerStats, Observation, StatsConfig, StatsReport};
use crate::{Step, MAX_STEP};

/// Key of a block: (source layer, target layer), source < target.
pub type BlockKey = (u32, u32);

/// How a new graph's adjacent blocks are populated.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSpec {
    /// Fraction of possible edges present, over the blocks not named in `block_density`.
    pub density: f64,
    pub distribution: Distribution,
    /// Blocks with a density of their own (among `blocks`).
    pub block_density: Vec<(BlockKey, f64)>,
    pub seed: u64,
    /// The blocks to create; `None` means every adjacent block (a, a + 1).
    pub blocks: Option<Vec<BlockKey>>,
}

impl Default for InitSpec {
    fn default() -> Self {
        InitSpec {
            density: 1.0,
            distribution: Distribution::Uniform,
            block_density: Vec::new(),
            seed: 0,
            blocks: None,
        }
    }
}

/// A block as a user supplies it.
pub enum BlockInput<'a> {
    /// CSR arrays; `shape` (rows, cols), when the source carries one, must match the layers.
    Csr {
        indptr: &'a [i64],
        indices: &'a [i64],
        shape: Option<(usize, usize)>,
    },
    /// Row-major boolean mask of shape (rows, cols).
    Dense {
        mask: &'a [bool],
        shape: (usize, usize),
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Per layer: slot -> neuron id.
    pub(crate) layers: Vec<Vec<NeuronId>>,
    /// Per id ever issued: its lineage record. Ids index this table.
    pub(crate) neurons: Vec<NeuronRecord>,
    pub(crate) blocks: BTreeMap<BlockKey, CsrBlock>,
    /// Per layer, in slot order.
    pub(crate) stats: Vec<LayerStats>,
    pub(crate) stats_config: StatsConfig,
    pub(crate) step: Step,
    pub(crate) rng: ChaCha8Rng,
}

impl Graph {
    // ------------------------------------------------------------------ construction

    /// A graph with every adjacent block populated as `init` says.
    pub fn new(layer_sizes: &[u32], init: &InitSpec) -> Result<Self> {
        let mut g = Graph::without_blocks(layer_sizes, init.seed)?;
        check_density("density", init.density)?;
        let chosen: Vec<BlockKey> = match &init.blocks {
            None => (0..g.num_layers() as u32 - 1).map(|a| (a, a + 1)).collect(),
            Some(keys) => {
                let mut seen = std::collections::BTreeSet::new();
                for &key in keys {
                    g.check_block_key("blocks", key)?;
                    if !seen.insert(key) {
                        return Err(GrowError::invalid(
                            "blocks",
                            format!("block {key:?} is given twice"),
                        ));
                    }
                }
                keys.clone()
            }
        };
        let mut fixed: BTreeMap<BlockKey, f64> = BTreeMap::new();
        for &(key, d) in &init.block_density {
            if !chosen.contains(&key) {
                let which = if init.blocks.is_some() {
                    "one of the blocks created"
                } else {
                    "an adjacent block (a, a + 1) of this graph"
                };
                return Err(GrowError::invalid(
                    "block_density",
                    format!("key {key:?} is not {which}"),
                ));
            }
            check_density(&format!("block_density[{key:?}]"), d)?;
            fixed.insert(key, d);
        }
        let free: Vec<BlockKey> = chosen
            .iter()
            .copied()
            .filter(|k| !fixed.contains_key(k))
            .collect();
        let shapes: Vec<(u32, u32)> = free.iter().map(|&k| g.block_shape_of(k)).collect();
        let mut counts: BTreeMap<BlockKey, u64> = free
            .iter()
            .copied()
            .zip(edge_counts(&shapes, init.density, init.distribution))
            .collect();
        for (&key, &d) in &fixed {
            let shape = g.block_shape_of(key);
            counts.insert(key, edge_counts(&[shape], d, Distribution::Uniform)[0]);
        }
        for (&(a, b), &count) in &counts {
            let (rows, cols) = g.block_shape_of((a, b));
            let block = random_block(a, b, rows, cols, count, &mut g.rng);
            g.blocks.insert((a, b), block);
        }
        Ok(g)
    }

    /// A graph whose blocks are exactly the given ones.
    pub fn from_blocks(
        layer_sizes: &[u32],
        seed: u64,
        blocks: Vec<(BlockKey, BlockInput)>,
    ) -> Result<Self> {
        let mut g = Graph::without_blocks(layer_sizes, seed)?;
        for (key, input) in blocks {
            g.check_block_key("blocks", key)?;
            if g.blocks.contains_key(&key) {
                return Err(GrowError::invalid(
                    "blocks",
                    format!("block {key:?} is given twice"),
                ));
            }
            let (rows, cols) = g.block_shape_of(key);
            let arg = format!("blocks[{key:?}]");
            let expected = (rows as usize, cols as usize);
            let block = match input {
                BlockInput::Csr {
                    indptr,
                    indices,
                    shape,
                } => {
                    if let Some(shape) = shape.filter(|&s| s != expected) {
                        return Err(shape_error(&arg, shape, expected, key));
                    }
                    CsrBlock::from_csr(key.0, key.1, rows, cols, indptr, indices, 0, &arg)?
                }
                BlockInput::Dense { mask, shape } => {
                    if shape != expected {
                        return Err(shape_error(&arg, shape, expected, key));
                    }
                    CsrBlock::from_dense(key.0, key.1, rows, cols, mask, 0)?
                }
            };
            g.blocks.insert(key, block);
        }
        Ok(g)
    }

    fn without_blocks(layer_sizes: &[u32], seed: u64) -> Result<Self> {
        if layer_sizes.len() < 2 {
            return Err(GrowError::invalid(
                "layer_sizes",
                format!(
                    "needs at least 2 layers (inputs and outputs), got {}",
                    layer_sizes.len()
                ),
            ));
        }
        if let Some(i) = layer_sizes.iter().position(|&n| n == 0) {
            return Err(GrowError::invalid(
                format!("layer_sizes[{i}]"),
                "every layer needs at least one neuron, got 0",
            ));
        }
        let total: u64 = layer_sizes.iter().map(|&n| u64::from(n)).sum();
        let mut g = Graph {
            layers: Vec::with_capacity(layer_sizes.len()),
            neurons: Vec::new(),
            blocks: BTreeMap::new(),
            stats: vec![LayerStats::default(); layer_sizes.len()],
            stats_config: StatsConfig::default(),
            step: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let no_memory = |_| no_memory("layer_sizes", format!("{total} neurons"));
        g.neurons
            .try_reserve_exact(total as usize)
            .map_err(no_memory)?;
        for (stats, &n) in g.stats.iter_mut().zip(layer_sizes) {
            stats.try_reserve_total(n as usize).map_err(no_memory)?;
            stats.resize(n as usize);
        }
        for (layer, &n) in layer_sizes.iter().enumerate() {
            let first = g.neurons.len() as NeuronId;
            g.layers.push((first..first + n as NeuronId).collect());
            g.neurons.extend(
                (0..n).map(|slot| NeuronRecord::newborn(layer as u32, slot, 0, [None, None], 0)),
            );
        }
        Ok(g)
    }

    // ------------------------------------------------------------------ argument checks

    /// Validates a layer index given as a (possibly negative) integer.
    pub fn check_layer(&self, arg: &str, layer: i64) -> Result<u32> {
        if layer < 0 || layer >= self.num_layers() as i64 {
            return Err(GrowError::out_of_range(
                arg,
                layer,
                self.num_layers() as u64,
                "the layers",
            ));
        }
        Ok(layer as u32)
    }

    fn check_block_key(&self, arg: &str, (a, b): BlockKey) -> Result<()> {
        self.check_layer(arg, a as i64)?;
        self.check_layer(arg, b as i64)?;
        if a >= b {
            return Err(GrowError::invalid(
                arg,
                format!("block ({a}, {b}) must go from an earlier layer to a later one (a < b)"),
            ));
        }
        Ok(())
    }

    /// Validates a block given as (possibly negative) integers and checks that it exists.
    pub fn check_block(&self, a: i64, b: i64) -> Result<BlockKey> {
        let key = (self.check_layer("a", a)?, self.check_layer("b", b)?);
        self.check_block_key("b", key)?;
        if !self.blocks.contains_key(&key) {
            return Err(GrowError::Block {
                src: key.0,
                dst: key.1,
                msg: "does not exist (add it with add_block)".into(),
            });
        }
        Ok(key)
    }

    fn block_mut(&mut self, key: BlockKey) -> Result<&mut CsrBlock> {
        self.check_block(key.0 as i64, key.1 as i64)?;
        Ok(self.blocks.get_mut(&key).expect("checked above"))
    }

    // ------------------------------------------------------------------ shape and bookkeeping

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn layer_size(&self, layer: u32) -> u32 {
        self.layers[layer as usize].len() as u32
    }

    pub fn layer_sizes(&self) -> Vec<u32> {
        self.layers.iter().map(|l| l.len() as u32).collect()
    }

    /// Slot offset of each layer in the global (layer by layer) neuron order, and the number
    /// of neurons last: `num_layers + 1` entries.
    pub(crate) fn layer_offsets(&self) -> Vec<usize> {
        let mut offsets = vec![0usize];
        for size in self.layer_sizes() {
            offsets.push(offsets[offsets.len() - 1] + size as usize);
        }
        offsets
    }

    pub fn num_neurons(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    pub fn num_ids(&self) -> usize {
        self.neurons.len()
    }

    pub fn step(&self) -> Step {
        self.step
    }

    /// Moves the step counter forward; ages are measured against it.
    pub fn advance(&mut self, steps: u64) -> Result<Step> {
        let next = self.step as u64 + steps;
        if next > MAX_STEP as u64 {
            return Err(GrowError::invalid(
                "steps",
                format!("advancing by {steps} would pass the largest step {MAX_STEP}"),
            ));
        }
        self.step = next as Step;
        Ok(self.step)
    }

    /// (rows, cols) = (size of the target layer, size of the source layer).
    fn block_shape_of(&self, (a, b): BlockKey) -> (u32, u32) {
        (self.layer_size(b), self.layer_size(a))
    }

    pub fn block_keys(&self) -> Vec<BlockKey> {
        self.blocks.keys().copied().collect()
    }

    pub fn has_block(&self, a: u32, b: u32) -> bool {
        self.blocks.contains_key(&(a, b))
    }

    pub fn block(&self, key: BlockKey) -> Result<&CsrBlock> {
        self.check_block(key.0 as i64, key.1 as i64)?;
        Ok(&self.blocks[&key])
    }

    pub fn blocks(&self) -> impl Iterator<Item = (&BlockKey, &CsrBlock)> {
        self.blocks.iter()
    }

    pub fn nnz(&self) -> usize {
        self.blocks.values().map(CsrBlock::nnz).sum()
    }

    /// Edges present over edges possible, across all blocks (0 when there are no blocks).
    pub fn density(&self) -> f64 {
        let capacity: u64 = self.blocks.values().map(CsrBlock::capacity).sum();
        if capacity == 0 {
            0.0
        } else {
            self.nnz() as f64 / capacity as f64
        }
    }

    /// Bytes held by the connectivity structure (CSR arrays and per-edge attributes).
    pub fn nbytes(&self) -> usize {
        self.blocks.values().map(CsrBlock::nbytes).sum()
    }

    /// Edges into each neuron of `layer`, over every block that targets it.
    pub fn fan_in(&self, layer: u32) -> Vec<u64> {
        let mut out = vec![0u64; self.layer_size(layer) as usize];
        for (_, block) in self.blocks.iter().filter(|((_, b), _)| *b == layer) {
            for (o, f) in out.iter_mut().zip(block.fan_in()) {
                *o += f;
            }
        }
        out
    }

    /// Edges out of each neuron of `layer`, over every block that it feeds.
    pub fn fan_out(&self, layer: u32) -> Vec<u64> {
        let mut out = vec![0u64; self.layer_size(layer) as usize];
        for (_, block) in self.blocks.iter().filter(|((a, _), _)| *a == layer) {
            block.add_fan_out(&mut out);
        }
        out
    }

    // ------------------------------------------------------------------ blocks and edges

    /// Adds an empty block from layer `a` to layer `b > a` (a skip block when `b > a + 1`).
    pub fn add_block(&mut self, a: u32, b: u32) -> Result<()> {
        self.check_block_key("b", (a, b))?;
        if self.blocks.contains_key(&(a, b)) {
            return Err(GrowError::Block {
                src: a,
                dst: b,
                msg: "already exists".into(),
            });
        }
        let (rows, cols) = self.block_shape_of((a, b));
        self.blocks
            .insert((a, b), CsrBlock::empty(a, b, rows, cols));
        Ok(())
    }

    /// Removes a block and its edges; refused while any of its edges is frozen.
    pub fn remove_block(&mut self, a: u32, b: u32) -> Result<()> {
        let block = self.block((a, b))?;
        if let Some(p) = (0..block.nnz()).find(|&p| block.is_frozen(p)) {
            let row = block.indptr().partition_point(|&q| q as usize <= p) as u32 - 1;
            return Err(GrowError::FrozenEdge {
                arg: "b".into(),
                src: a,
                dst: b,
                row,
                col: block.indices()[p],
            });
        }
        self.blocks.remove(&(a, b));
        Ok(())
    }

    pub fn add_edges(&mut self, key: BlockKey, rows: &[u32], cols: &[u32]) -> Result<()> {
        let step = self.step;
        self.block_mut(key)?.insert(rows, cols, step)
    }

    /// Drops some edges of a block and grows others in one pass (see [`CsrBlock::rewire`]).
    pub fn rewire(
        &mut self,
        key: BlockKey,
        (drop_rows, drop_cols): (&[u32], &[u32]),
        (grow_rows, grow_cols): (&[u32], &[u32]),
    ) -> Result<()> {
        let step = self.step;
        self.block_mut(key)?.rewire(
            ("drop_rows", drop_rows, drop_cols),
            ("grow_rows", grow_rows, grow_cols),
            step,
        )
    }

    /// Like [`Graph::rewire`], but an edge both dropped and grown is allowed: it is dropped and
    /// grown again, reborn at the current step (unfrozen), as `prune_and_grow` with
    /// `regrow_dropped` does. This is how another copy of the graph (another rank) replays a plan
    /// that `prune_and_grow` made. Nothing changes on error.
    pub fn rewire_regrowing(
        &mut self,
        key: BlockKey,
        drops: (&[u32], &[u32]),
        grows: (&[u32], &[u32]),
    ) -> Result<()> {
        if !regrows_a_drop(drops, grows) {
            return self.rewire(key, drops, grows);
        }
        // Two passes; the second can still fail (e.g. a grown edge that exists and is not
        // dropped), so the block is put back then.
        let saved = self.block(key)?.clone();
        let none: (&[u32], &[u32]) = (&[], &[]);
        self.rewire(key, drops, none)?;
        self.rewire(key, none, grows).inspect_err(|_| {
            self.blocks.insert(key, saved);
        })
    }

    pub fn remove_edges(&mut self, key: BlockKey, rows: &[u32], cols: &[u32]) -> Result<()> {
        self.block_mut(key)?.remove(rows, cols)
    }

    pub fn set_frozen(
        &mut self,
        key: BlockKey,
        rows: &[u32],
        cols: &[u32],
        frozen: bool,
    ) -> Result<()> {
        self.block_mut(key)?.set_frozen(rows, cols, frozen)
    }

    // ------------------------------------------------------------------ neurons

    pub fn ids(&self, layer: u32) -> &[NeuronId] {
        &self.layers[layer as usize]
    }

    pub fn lineage(&self) -> &[NeuronRecord] {
        &self.neurons
    }

    /// (layer, slot) of a living neuron.
    pub fn locate(&self, arg: &str, id: i64) -> Result<(u32, u32)> {
        let record = self.record(arg, id)?;
        match record.slot {
            Some(slot) => Ok((record.layer, slot)),
            None => Err(GrowError::invalid(
                arg,
                format!(
                    "neuron {id} is no longer alive ({} at step {})",
                    record.fate.name(),
                    record.death.unwrap_or(0)
                ),
            )),
        }
    }

    fn record(&self, arg: &str, id: i64) -> Result<&NeuronRecord> {
        if id < 0 || id as u64 >= self.neurons.len() as u64 {
            return Err(GrowError::out_of_range(
                arg,
                id,
                self.neurons.len() as u64,
                "the neuron ids issued so far",
            ));
        }
        Ok(&self.neurons[id as usize])
    }

    fn layer_records(&self, layer: u32) -> impl Iterator<Item = &NeuronRecord> {
        self.layers[layer as usize]
            .iter()
            .map(|&id| &self.neurons[id as usize])
    }

    pub fn births(&self, layer: u32) -> Vec<Step> {
        self.layer_records(layer).map(|r| r.birth).collect()
    }

    pub fn ages(&self, layer: u32) -> Vec<Step> {
        self.layer_records(layer)
            .map(|r| self.step - r.birth)
            .collect()
    }

    pub fn generations(&self, layer: u32) -> Vec<u32> {
        self.layer_records(layer).map(|r| r.generation).collect()
    }

    /// Appends `count` neurons to `layer` with no edges. `parents` is empty (no parents) or holds
    /// one entry per new neuron of at most two existing ids. Returns the new ids.
    pub fn add_neurons(
        &mut self,
        layer: u32,
        count: u32,
        parents: &[Vec<i64>],
    ) -> Result<Vec<NeuronId>> {
        if !parents.is_empty() && parents.len() != count as usize {
            return Err(GrowError::invalid(
                "parents",
                format!(
                    "has {} entries, expected one per new neuron ({count})",
                    parents.len()
                ),
            ));
        }
        let mut lineage = Vec::with_capacity(parents.len());
        for (i, p) in parents.iter().enumerate() {
            if p.len() > 2 {
                return Err(GrowError::invalid(
                    format!("parents[{i}]"),
                    format!("at most two parents, got {}", p.len()),
                ));
            }
            let mut pair = [None, None];
            let mut generation = 0;
            for (j, &id) in p.iter().enumerate() {
                let parent = self.record(&format!("parents[{i}][{j}]"), id)?;
                generation = generation.max(parent.generation.saturating_add(1));
                pair[j] = Some(id as NeuronId);
            }
            lineage.push((pair, generation));
        }
        let size = self.layer_size(layer);
        if size as u64 + count as u64 > u32::MAX as u64 {
            return Err(GrowError::invalid(
                "count",
                format!("{count} more neurons would overflow layer {layer}"),
            ));
        }
        self.reserve_neurons(layer, count)?;
        let mut ids = Vec::new();
        let extra = count as usize - lineage.len();
        if ids.try_reserve_exact(count as usize).is_err()
            || lineage.try_reserve_exact(extra).is_err()
        {
            return Err(no_memory("count", format!("{count} more neurons")));
        }
        lineage.resize(count as usize, ([None, None], 0));

        let first = self.neurons.len() as NeuronId;
        for (i, (pair, generation)) in lineage.into_iter().enumerate() {
            self.neurons.push(NeuronRecord::newborn(
                layer,
                size + i as u32,
                self.step,
                pair,
                generation,
            ));
            self.layers[layer as usize].push(first + i as NeuronId);
        }
        for ((a, b), block) in self.blocks.iter_mut() {
            if *b == layer {
                block.push_rows(count);
            }
            if *a == layer {
                block.push_cols(count);
            }
        }
        self.stats[layer as usize].resize((size + count) as usize);
        ids.extend(first..first + count as NeuronId);
        Ok(ids)
    }

    /// Reserves the memory `count` new neurons of `layer` need, so that adding them cannot fail
    /// half-way (and a request too large for the machine is an error, not an abort).
    fn reserve_neurons(&mut self, layer: u32, count: u32) -> Result<()> {
        let no_memory = |_| no_memory("count", format!("{count} more neurons"));
        let n = count as usize;
        self.neurons.try_reserve_exact(n).map_err(no_memory)?;
        self.layers[layer as usize]
            .try_reserve_exact(n)
            .map_err(no_memory)?;
        let size = self.layer_size(layer) as usize;
        self.stats[layer as usize]
            .try_reserve_total(size + n)
            .map_err(no_memory)?;
        for ((_, b), block) in self.blocks.iter_mut() {
            if *b == layer {
                block.try_reserve_rows(count).map_err(no_memory)?;
            }
        }
        Ok(())
    }

    /// Removes neurons and their edges, compacting the slots of the layer. Returns `kept`: new
    /// slot `i` holds the neuron that was in old slot `kept[i]`.
    pub fn remove_neurons(&mut self, layer: u32, slots: &[u32]) -> Result<Vec<u32>> {
        let size = self.layer_size(layer);
        let gone = slot_flags("slots", slots, size, layer)?;
        if slots.len() == size as usize {
            return Err(GrowError::invalid(
                "slots",
                format!(
                    "would remove all {size} neurons of layer {layer}; a layer keeps at least one"
                ),
            ));
        }
        for ((a, b), block) in &self.blocks {
            let hit = if *b == layer {
                block.frozen_in_rows(&gone)
            } else {
                None
            };
            let hit = hit.or_else(|| {
                if *a == layer {
                    block.frozen_in_cols(&gone)
                } else {
                    None
                }
            });
            if let Some((row, col)) = hit {
                return Err(GrowError::FrozenEdge {
                    arg: "slots".into(),
                    src: *a,
                    dst: *b,
                    row,
                    col,
                });
            }
        }

        let kept: Vec<u32> = (0..size).filter(|&s| !gone[s as usize]).collect();
        let mut new_slot = vec![u32::MAX; size as usize];
        for (new, &old) in kept.iter().enumerate() {
            new_slot[old as usize] = new as u32;
        }
        let step = self.step;
        for &s in slots {
            let id = self.layers[layer as usize][s as usize];
            self.neurons[id as usize].die(step, Fate::Removed);
        }
        let ids: Vec<NeuronId> = kept
            .iter()
            .map(|&s| self.layers[layer as usize][s as usize])
            .collect();
        for (new, &id) in ids.iter().enumerate() {
            self.neurons[id as usize].slot = Some(new as u32);
        }
        self.layers[layer as usize] = ids;
        let n_kept = kept.len() as u32;
        self.blocks.par_iter_mut().for_each(|((a, b), block)| {
            if *b == layer {
                block.keep_rows(&kept);
            }
            if *a == layer {
                block.remap_cols(&new_slot, n_kept);
            }
        });
        self.stats[layer as usize].keep(&kept);
        Ok(kept)
    }

    /// Replaces the neurons in `slots` by fresh ones in place: each gets a new id whose parent is
    /// the old id, age 0 and empty statistics; its edges stay. Returns the new ids in order.
    pub fn reset_neurons(&mut self, layer: u32, slots: &[u32]) -> Result<Vec<NeuronId>> {
        let size = self.layer_size(layer);
        slot_flags("slots", slots, size, layer)?;
        let step = self.step;
        let mut new_ids = Vec::with_capacity(slots.len());
        for &s in slots {
            let old = self.layers[layer as usize][s as usize];
            let generation = self.neurons[old as usize].generation.saturating_add(1);
            self.neurons[old as usize].die(step, Fate::Reset);
            let id = self.neurons.len() as NeuronId;
            self.neurons.push(NeuronRecord::newborn(
                layer,
                s,
                step,
                [Some(old), None],
                generation,
            ));
            self.layers[layer as usize][s as usize] = id;
            self.stats[layer as usize].clear(s as usize);
            new_ids.push(id);
        }
        Ok(new_ids)
    }

    // ------------------------------------------------------------------ statistics

    pub fn observe(&mut self, layer: u32, obs: &Observation) -> Result<()> {
        let config = self.stats_config;
        self.stats[layer as usize].observe(obs, &config)
    }

    pub fn stats(&self, layer: u32) -> StatsReport {
        self.stats[layer as usize].report(&self.stats_config)
    }

    pub fn nonfinite_counts(&self) -> Vec<u64> {
        self.stats.iter().map(|s| s.nonfinite).collect()
    }

    pub fn stats_config(&self) -> &StatsConfig {
        &self.stats_config
    }

    pub fn set_stats_config(&mut self, config: StatsConfig) -> Result<()> {
        config.validate()?;
        self.stats_config = config;
        Ok(())
    }

    /// The graph's random generator: every random structural decision draws from it, so a seed
    /// fixes the structure, and it is saved in the state.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    // ------------------------------------------------------------------ integrity

    /// Checks every invariant; an `Err` here is a bug in growcore, never a user error.
    pub fn validate(&self) -> Result<()> {
        // Errors name the state field that holds the inconsistency, so a bad checkpoint says where.
        let bad = |field: &str, msg: String| Err(GrowError::state(field, msg));
        if self.layers.len() < 2 {
            return bad(
                "slot_ids",
                format!("needs at least 2 layers, got {}", self.layers.len()),
            );
        }
        if self.stats.len() != self.layers.len() {
            return bad(
                "stats",
                format!(
                    "has {} layers, slot_ids has {}",
                    self.stats.len(),
                    self.layers.len()
                ),
            );
        }
        let mut seen = vec![false; self.neurons.len()];
        for (layer, ids) in self.layers.iter().enumerate() {
            if ids.is_empty() {
                return bad("slot_ids", format!("layer {layer} is empty"));
            }
            for (slot, &id) in ids.iter().enumerate() {
                let Some(record) = self.neurons.get(id as usize) else {
                    return bad(
                        "slot_ids",
                        format!("layer {layer} slot {slot} holds unknown id {id}"),
                    );
                };
                if seen[id as usize] {
                    return bad("slot_ids", format!("id {id} sits in two slots"));
                }
                seen[id as usize] = true;
                if record.layer != layer as u32
                    || record.slot != Some(slot as u32)
                    || !record.is_alive()
                {
                    return bad(
                        "neurons",
                        format!("id {id}'s record does not match layer {layer} slot {slot}"),
                    );
                }
            }
            if self.stats[layer].len() != ids.len() {
                return bad(
                    "stats",
                    format!(
                        "layer {layer} has {} entries for {} neurons",
                        self.stats[layer].len(),
                        ids.len()
                    ),
                );
            }
            self.stats[layer]
                .check()
                .or_else(|m| bad("stats", format!("layer {layer}: {m}")))?;
        }
        for (id, record) in self.neurons.iter().enumerate() {
            if record.is_alive() != seen[id] || record.is_alive() != record.death.is_none() {
                return bad(
                    "neurons",
                    format!("id {id} is alive in one table and dead in another"),
                );
            }
            if record.parents.iter().flatten().any(|&p| p as usize >= id) {
                return bad(
                    "neurons",
                    format!("id {id} has a parent that is not older than itself"),
                );
            }
            if record.layer as usize >= self.layers.len() || record.birth > self.step {
                return bad(
                    "neurons",
                    format!("id {id} has an impossible layer or birth step"),
                );
            }
            if record
                .death
                .is_some_and(|d| d < record.birth || d > self.step)
            {
                return bad(
                    "neurons",
                    format!("id {id} dies before its birth or after the graph's step"),
                );
            }
            if record.parents[0].is_none() && record.parents[1].is_some() {
                return bad(
                    "neurons",
                    format!("id {id} has a second parent but no first"),
                );
            }
            let parent_generation = record
                .parents
                .iter()
                .flatten()
                .map(|&p| self.neurons[p as usize].generation.saturating_add(1))
                .max();
            if record.generation != parent_generation.unwrap_or(record.generation) {
                return bad(
                    "neurons",
                    format!(
                        "id {id} has generation {}, one more than its parents' would be {}",
                        record.generation,
                        parent_generation.unwrap_or(0)
                    ),
                );
            }
        }
        for (i, (&(a, b), block)) in self.blocks.iter().enumerate() {
            let field = format!("blocks[{i}]");
            if a >= b || b as usize >= self.layers.len() || (block.src, block.dst) != (a, b) {
                return bad(
                    &field,
                    format!("({a}, {b}) is not a block from an earlier to a later layer"),
                );
            }
            if block.shape() != self.block_shape_of((a, b)) {
                return bad(
                    &field,
                    format!("({a}, {b}) does not match its layers' sizes"),
                );
            }
            block
                .check()
                .or_else(|m| bad(&field, format!("({a}, {b}): {m}")))?;
            if block.births().iter().any(|&s| s > self.step) {
                return bad(
                    &field,
                    format!("({a}, {b}) has an edge born after the current step"),
                );
            }
        }
        self.stats_config
            .validate()
            .map_err(|e| e.into_state("stats_config"))
    }
}

/// Validates a list of slots of a layer (in range, no repeats) and flags them.
fn slot_flags(arg: &str, slots: &[u32], size: u32, layer: u32) -> Result<Vec<bool>> {
    let mut flags = vec![false; size as usize];
    for (i, &s) in slots.iter().enumerate() {
        if s >= size {
            return Err(GrowError::out_of_range(
                format!("{arg}[{i}]"),
                s as i64,
                size as u64,
                format!("layer {layer} of size {size}"),
            ));
        }
        if flags[s as usize] {
            return Err(GrowError::invalid(
                format!("{arg}[{i}]"),
                format!("slot {s} is named more than once"),
            ));
        }
        flags[s as usize] = true;
    }
    Ok(flags)
}

fn shape_error(
    arg: &str,
    got: (usize, usize),
    expected: (usize, usize),
    (a, b): BlockKey,
) -> GrowError {
    GrowError::invalid(
        arg,
        format!(
            "has shape {got:?}, expected {expected:?} = (size of layer {b}, size of layer {a}): rows are targets, columns sources"
        ),
    )
}

/// The error for a request the machine has no memory for: reserving fallibly turns what would
/// be an allocation failure (a process abort in Rust) into this.
fn no_memory(arg: &str, what: String) -> GrowError {
    GrowError::invalid(arg, format!("cannot allocate memory for {what}"))
}

/// Whether some grown (row, col) is also dropped. Unequal lengths are left to `rewire`'s checks.
fn regrows_a_drop(
    (drop_rows, drop_cols): (&[u32], &[u32]),
    (grow_rows, grow_cols): (&[u32], &[u32]),
) -> bool {
    let dropped: std::collections::HashSet<(u32, u32)> = drop_rows
        .iter()
        .copied()
        .zip(drop_cols.iter().copied())
        .collect();
    grow_rows
        .iter()
        .zip(grow_cols)
        .any(|(&r, &c)| dropped.contains(&(r, c)))
}
