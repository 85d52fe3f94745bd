//! Growth: cloning saturated ("high") neurons and routing new connections from them to neurons
//! with spare capacity ("low"), decided here and applied to the graph in one call
//! ([`Graph::grow`]); the caller applies the returned [`GrowthPlan`] to its tensors.
//!
//! **Cloning** a high neuron `X` of hidden layer `l`:
//! - *vertical*: a new neuron `C` in layer `l + 1` (which must be hidden) that reads `X`'s inputs:
//!   for every block `(a, l)` in which `X` has incoming edges, `C` gets the same edges in block
//!   `(a, l + 1)` (a skip block, created when missing). `C` feeds what `X` feeds two layers on:
//!   every neuron of layer `l + 2` fed by one of `X`'s targets in layer `l + 1`, and `X`'s own skip
//!   targets in layers `l + 2` and beyond. The caller copies `X`'s incoming weights and bias times
//!   a gain and starts `C`'s outgoing weights at zero, so the network's output does not move.
//! - *horizontal* (a Net2Net split): a new neuron `C` in layer `l` with exactly `X`'s incoming and
//!   outgoing edges; the caller copies the incoming weights and bias and splits each outgoing
//!   weight between `X` and `C`, so the output does not move.
//!
//! **Routing**: each high neuron of layer `l` gets up to `routes_per_source` new edges to low
//! neurons of the hidden layers `l + 1 ..= l + radius`. Each edge goes to the eligible target with
//! the smallest load (its fan-in, or the edges it received in this event: [`Load`]); eligible
//! means not already fed by that source and with a fan-in below `fan_in_cap`. Ties go to the
//! higher Katz score (when given), then to the smaller neuron id.
//!
//! **Order.** Sources are taken round-robin over the layers, strongest extremum first (the order
//! of the `high` lists). With Katz scores, sources are taken by normalised Katz score (the score
//! over the largest score among the sources) instead, highest first, and a source gets
//! `max(1, round(2 * routes_per_source * normalised score))` routes: the most central extremum
//! twice the default, a peripheral one at least one.
//!
//! Everything is decided against the graph as it was before the call (clones copy pre-existing
//! edges), except loads and fan-in caps, which count the edges added so far in the event.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use crate::error::{GrowError, Result};
use crate::graph::{BlockKey, Graph};
use crate::neurons::NeuronId;

/// Which clones a high neuron gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneType {
    Vertical,
    Horizontal,
    /// A vertical clone (when possible) and a horizontal one, each counting against the budget.
    Both,
}

impl CloneType {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "vertical" => Ok(CloneType::Vertical),
            "horizontal" => Ok(CloneType::Horizontal),
            "both" => Ok(CloneType::Both),
            other => Err(GrowError::invalid(
                "clone_type",
                format!(r#"expected "vertical", "horizontal" or "both", got {other:?}"#),
            )),
        }
    }
}

/// What "load" means when routing picks the least-loaded target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The target's fan-in over every block, including the edges added in this event.
    FanIn,
    /// The edges the target received in this event.
    Event,
}

impl Load {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fan_in" => Ok(Load::FanIn),
            "event" => Ok(Load::Event),
            other => Err(GrowError::invalid(
                "load",
                format!(r#"expected "fan_in" or "event", got {other:?}"#),
            )),
        }
    }
}

/// The limits of one growth event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowSpec {
    pub clone_type: CloneType,
    /// Clones per event: 4.
    pub clone_budget: u32,
    /// No clone makes a layer larger than this.
    pub max_layer_size: Option<u32>,
    /// No clone makes the network's parameters (edges plus one bias per non-input neuron)
    /// more than this.
    pub max_params: Option<u64>,
    /// Routes reach at most this many layers ahead: 3.
    pub radius: u32,
    /// Routes per high neuron (before Katz scaling): 2.
    pub routes_per_source: u32,
    /// Routes per event, over all sources.
    pub max_routes: Option<u32>,
    /// No route makes a target's fan-in more than this.
    pub fan_in_cap: Option<u64>,
    pub load: Load,
}

impl Default for GrowSpec {
    fn default() -> Self {
        GrowSpec {
            clone_type: CloneType::Both,
            clone_budget: 4,
            max_layer_size: None,
            max_params: None,
            radius: 3,
            routes_per_source: 2,
            max_routes: None,
            fan_in_cap: None,
            load: Load::FanIn,
        }
    }
}

/// One clone: `id` was born in `slot` of `layer` as a copy of `source_id` (`source_slot` of
/// `source_layer`).
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronClone {
    pub vertical: bool,
    pub source_layer: u32,
    pub source_slot: u32,
    pub source_id: NeuronId,
    pub layer: u32,
    pub slot: u32,
    pub id: NeuronId,
    /// Seed for the caller's noise of this clone.
    pub noise_seed: u64,
}

/// One routed edge, from `(src_layer, src_slot)` to `(dst_layer, dst_slot)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub src_layer: u32,
    pub src_slot: u32,
    pub dst_layer: u32,
    pub dst_slot: u32,
}

/// What one growth event did to the graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GrowthPlan {
    pub clones: Vec<NeuronClone>,
    pub routes: Vec<Route>,
    /// Blocks the event created (skip blocks of vertical clones and routes), in key order.
    pub new_blocks: Vec<BlockKey>,
}

impl Graph {
    /// Clones and routes from the given extrema (one list of slots per layer, strongest first;
    /// only hidden layers may have any), then applies them to the graph: new neurons (with the
    /// source as parent), new blocks and new edges. Validates everything first: an error
    /// changes nothing.
    pub fn grow(
        &mut self,
        high: &[Vec<u32>],
        low: &[Vec<u32>],
        katz: Option<&[f64]>,
        spec: &GrowSpec,
    ) -> Result<GrowthPlan> {
        self.check_grow(high, low, katz, spec)?;
        let sources = self.source_order(high, katz);
        let mut pending = Pending::default();
        let params = self.nnz() as u64
            + self.layer_sizes()[1..]
                .iter()
                .map(|&s| s as u64)
                .sum::<u64>();
        let mut growth = Growth {
            params,
            sizes: self.layer_sizes(),
            clones: Vec::new(),
        };
        for &(layer, slot, _) in &sources {
            let kinds: &[bool] = match spec.clone_type {
                CloneType::Vertical => &[true],
                CloneType::Horizontal => &[false],
                CloneType::Both => &[true, false],
            };
            for &vertical in kinds {
                if growth.clones.len() >= spec.clone_budget as usize {
                    break;
                }
                self.plan_clone(layer, slot, vertical, spec, &mut growth, &mut pending);
            }
        }
        let routes = self.plan_routes(&sources, low, katz, spec, &mut pending);

        // Apply: neurons first (their slots are the ones planned), then blocks and edges.
        let mut clones = Vec::with_capacity(growth.clones.len());
        for planned in growth.clones {
            let parent = vec![planned.source_id as i64];
            let id = self.add_neurons(planned.layer, 1, &[parent])?[0];
            debug_assert_eq!(self.locate("id", id as i64)?, (planned.layer, planned.slot));
            let noise_seed = self.rng.random();
            clones.push(NeuronClone {
                id,
                noise_seed,
                ..planned
            });
        }
        let mut new_blocks = Vec::new();
        for (&key, (rows, cols)) in &pending.edges {
            if !self.has_block(key.0, key.1) {
                self.add_block(key.0, key.1)?;
                new_blocks.push(key);
            }
            self.add_edges(key, rows, cols)?;
        }
        Ok(GrowthPlan {
            clones,
            routes,
            new_blocks,
        })
    }

    fn check_grow(
        &self,
        high: &[Vec<u32>],
        low: &[Vec<u32>],
        katz: Option<&[f64]>,
        spec: &GrowSpec,
    ) -> Result<()> {
        let layers = self.num_layers();
        if spec.radius < 1 {
            return Err(GrowError::invalid("radius", "must be at least 1, got 0"));
        }
        for (arg, lists) in [("high", high), ("low", low)] {
            if lists.len() != layers {
                return Err(GrowError::invalid(
                    arg,
                    format!(
                        "has {} lists, expected one per layer ({layers})",
                        lists.len()
                    ),
                ));
            }
            for (layer, slots) in lists.iter().enumerate() {
                let size = self.layer_size(layer as u32);
                if !slots.is_empty() && (layer == 0 || layer == layers - 1) {
                    return Err(GrowError::invalid(
                        format!("{arg}[{layer}]"),
                        format!(
                            "layer {layer} is the {} layer; extrema are hidden neurons",
                            if layer == 0 { "input" } else { "output" }
                        ),
                    ));
                }
                let mut seen = vec![false; size as usize];
                for (i, &s) in slots.iter().enumerate() {
                    if s >= size {
                        return Err(GrowError::out_of_range(
                            format!("{arg}[{layer}][{i}]"),
                            s as i64,
                            size as u64,
                            format!("layer {layer}"),
                        ));
                    }
                    if std::mem::replace(&mut seen[s as usize], true) {
                        return Err(GrowError::invalid(
                            format!("{arg}[{layer}][{i}]"),
                            format!("slot {s} is named twice"),
                        ));
                    }
                }
            }
        }
        for (layer, (h, l)) in high.iter().zip(low).enumerate() {
            if let Some(s) = l.iter().find(|s| h.contains(s)) {
                return Err(GrowError::invalid(
                    format!("low[{layer}]"),
                    format!("slot {s} is also a high extremum"),
                ));
            }
        }
        if let Some(k) = katz {
            if k.len() != self.num_neurons() {
                return Err(GrowError::invalid(
                    "katz",
                    format!(
                        "has {} values, expected one per neuron ({})",
                        k.len(),
                        self.num_neurons()
                    ),
                ));
            }
            if let Some(i) = k.iter().position(|x| !x.is_finite() || *x < 0.0) {
                return Err(GrowError::invalid(
                    format!("katz[{i}]"),
                    format!("must be finite and non-negative, got {}", k[i]),
                ));
            }
        }
        Ok(())
    }

    /// High neurons as `(layer, slot, normalised Katz score)`, in the order they are served.
    fn source_order(&self, high: &[Vec<u32>], katz: Option<&[f64]>) -> Vec<(u32, u32, f64)> {
        let offsets = self.layer_offsets();
        let mut ranked: Vec<(usize, u32, u32, f64)> = Vec::new();
        for (layer, slots) in high.iter().enumerate() {
            for (rank, &slot) in slots.iter().enumerate() {
                let score = katz.map_or(0.0, |k| k[offsets[layer] + slot as usize]);
                ranked.push((rank, layer as u32, slot, score));
            }
        }
        let top = ranked.iter().map(|r| r.3).fold(0.0, f64::max);
        for r in &mut ranked {
            r.3 = if top > 0.0 { r.3 / top } else { 0.0 };
        }
        // Round-robin over the layers by rank; with Katz scores, the most central first.
        ranked.sort_by(|a, b| b.3.total_cmp(&a.3).then((a.0, a.1).cmp(&(b.0, b.1))));
        ranked.into_iter().map(|(_, l, s, k)| (l, s, k)).collect()
    }

    /// Plans one clone of `(layer, slot)` if it fits the limits; its edges go to `pending`.
    fn plan_clone(
        &self,
        layer: u32,
        slot: u32,
        vertical: bool,
        spec: &GrowSpec,
        growth: &mut Growth,
        pending: &mut Pending,
    ) {
        let target = if vertical { layer + 1 } else { layer };
        if target as usize >= self.num_layers() - 1 {
            return; // a vertical clone of the last hidden layer would land in the outputs
        }
        let new_slot = growth.sizes[target as usize];
        if spec.max_layer_size.is_some_and(|m| new_slot >= m) {
            return;
        }
        let mut edges: Vec<(BlockKey, u32, u32)> = Vec::new(); // (block, row, col)
        for ((a, b), block) in self.blocks() {
            if *b == layer {
                let row = block.indptr()[slot as usize] as usize
                    ..block.indptr()[slot as usize + 1] as usize;
                for &c in &block.indices()[row] {
                    edges.push(((*a, target), new_slot, c));
                }
            }
        }
        for ((a, b), block) in self.blocks() {
            if *a != layer || (vertical && *b == layer + 1) {
                continue;
            }
            for r in rows_with_col(block, slot) {
                edges.push(((target, *b), r, new_slot));
            }
        }
        if vertical {
            // Around X's targets: every neuron of layer + 2 they feed.
            if let (Ok(first), Ok(second)) = (
                self.block((layer, layer + 1)),
                self.block((layer + 1, layer + 2)),
            ) {
                let mut is_target = vec![false; self.layer_size(layer + 1) as usize];
                for t in rows_with_col(first, slot) {
                    is_target[t as usize] = true;
                }
                let skip: BTreeSet<u32> = edges
                    .iter()
                    .filter(|(k, _, _)| *k == (layer + 1, layer + 2))
                    .map(|&(_, r, _)| r)
                    .collect();
                let (rows, _) = second.shape();
                for r in 0..rows {
                    let range = second.indptr()[r as usize] as usize
                        ..second.indptr()[r as usize + 1] as usize;
                    let fed = second.indices()[range]
                        .iter()
                        .any(|&c| is_target[c as usize]);
                    if fed && !skip.contains(&r) {
                        edges.push(((layer + 1, layer + 2), r, new_slot));
                    }
                }
            }
        }
        let cost = edges.len() as u64 + 1;
        if spec.max_params.is_some_and(|m| growth.params + cost > m) {
            return;
        }
        growth.params += cost;
        growth.sizes[target as usize] += 1;
        for (key, r, c) in edges {
            pending.add(key, r, c);
        }
        growth.clones.push(NeuronClone {
            vertical,
            source_layer: layer,
            source_slot: slot,
            source_id: self.ids(layer)[slot as usize],
            layer: target,
            slot: new_slot,
            id: 0,
            noise_seed: 0,
        });
    }

    fn plan_routes(
        &self,
        sources: &[(u32, u32, f64)],
        low: &[Vec<u32>],
        katz: Option<&[f64]>,
        spec: &GrowSpec,
        pending: &mut Pending,
    ) -> Vec<Route> {
        let offsets = self.layer_offsets();
        let last_hidden = self.num_layers() as u32 - 2;
        // Per target layer: (slot, fan-in now, received in this event, katz, id).
        let mut targets: BTreeMap<u32, Vec<Target>> = BTreeMap::new();
        for (layer, slots) in low.iter().enumerate() {
            if slots.is_empty() {
                continue;
            }
            let layer = layer as u32;
            let fan_in = self.fan_in(layer);
            let into = pending.received_by(layer, fan_in.len());
            let entry = targets.entry(layer).or_default();
            for &s in slots {
                let received = into[s as usize];
                entry.push(Target {
                    slot: s,
                    fan_in: fan_in[s as usize] + received,
                    received,
                    katz: katz.map_or(0.0, |k| k[offsets[layer as usize] + s as usize]),
                    id: self.ids(layer)[s as usize],
                });
            }
        }
        let mut routes = Vec::new();
        let budget = spec.max_routes.map_or(usize::MAX, |m| m as usize);
        for &(layer, slot, score) in sources {
            let wanted = if katz.is_some() {
                ((2.0 * spec.routes_per_source as f64 * score).round() as u32).max(1)
            } else {
                spec.routes_per_source
            };
            let reach = layer + 1..=layer.saturating_add(spec.radius).min(last_hidden);
            for _ in 0..wanted {
                if routes.len() >= budget {
                    return routes;
                }
                let mut best: Option<(u32, usize)> = None;
                for m in reach.clone() {
                    let Some(pool) = targets.get(&m) else {
                        continue;
                    };
                    let block = self.block((layer, m)).ok();
                    for (i, t) in pool.iter().enumerate() {
                        // The edge lookups only for a candidate that would win.
                        let better = match best {
                            None => true,
                            Some((bm, bi)) => t.better_than(&targets[&bm][bi], spec.load),
                        };
                        if better
                            && spec.fan_in_cap.is_none_or(|cap| t.fan_in < cap)
                            && block.is_none_or(|b| b.find(t.slot, slot).is_none())
                            && !pending.contains((layer, m), t.slot, slot)
                        {
                            best = Some((m, i));
                        }
                    }
                }
                let Some((m, i)) = best else { break };
                let t = &mut targets.get_mut(&m).expect("chosen from targets")[i];
                t.fan_in += 1;
                t.received += 1;
                pending.add((layer, m), t.slot, slot);
                routes.push(Route {
                    src_layer: layer,
                    src_slot: slot,
                    dst_layer: m,
                    dst_slot: t.slot,
                });
            }
        }
        routes
    }
}

/// Sizes and parameters as the planned clones leave them.
struct Growth {
    params: u64,
    sizes: Vec<u32>,
    clones: Vec<NeuronClone>,
}

/// Edges planned in this event, per block, and a set to look them up.
#[derive(Default)]
struct Pending {
    edges: BTreeMap<BlockKey, (Vec<u32>, Vec<u32>)>,
    set: BTreeSet<(BlockKey, u32, u32)>,
}

impl Pending {
    fn add(&mut self, key: BlockKey, row: u32, col: u32) {
        let (rows, cols) = self.edges.entry(key).or_default();
        rows.push(row);
        cols.push(col);
        self.set.insert((key, row, col));
    }

    fn contains(&self, key: BlockKey, row: u32, col: u32) -> bool {
        self.set.contains(&(key, row, col))
    }

    /// Edges planned into each neuron of `layer` (of `size` neurons before the event).
    fn received_by(&self, layer: u32, size: usize) -> Vec<u64> {
        let mut into = vec![0u64; size];
        for (_, (rows, _)) in self.edges.iter().filter(|((_, b), _)| *b == layer) {
            for &r in rows.iter().filter(|&&r| (r as usize) < size) {
                into[r as usize] += 1;
            }
        }
        into
    }
}

struct Target {
    slot: u32,
    fan_in: u64,
    received: u64,
    katz: f64,
    id: NeuronId,
}

impl Target {
    /// Less loaded, then higher Katz score, then smaller id.
    fn better_than(&self, other: &Target, load: Load) -> bool {
        let key = |t: &Target| match load {
            Load::FanIn => t.fan_in,
            Load::Event => t.received,
        };
        key(self)
            .cmp(&key(other))
            .then(other.katz.total_cmp(&self.katz))
            .then(self.id.cmp(&other.id))
            .is_lt()
    }
}

/// Rows of `block` that have an edge from column `col`.
fn rows_with_col(block: &crate::csr::CsrBlock, col: u32) -> Vec<u32> {
    let (rows, _) = block.shape();
    (0..rows)
        .filter(|&r| block.find(r, col).is_some())
        .collect()
}
