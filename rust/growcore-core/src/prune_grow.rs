//! Prune-and-regrow decisions: which edges of a block to drop and which absent positions to grow,
//! from scores the caller computes (|W| for dropping; |gradient| for RigL's growth, or random
//! for SET's). The decision is exact and deterministic: ties are broken by (row, col), and random
//! growth draws from the graph's seeded RNG.
//!
//! Scores are read where they are: a dense `rows × cols` array (for example a CPU weight or
//! gradient tensor viewed in place) or a list of candidates (for example reduced on a GPU first).
//! Selection is a two-pass radix select over the scores' bit patterns, in parallel over row
//! chunks: one pass to histogram the top 16 bits, one to collect the winners, so only the chosen
//! positions and one bucket of near-ties are ever stored.

use std::collections::HashSet;

use rand::seq::index;
use rand::Rng;
use rayon::prelude::*;

use crate::csr::{meta_frozen, CsrBlock};
use crate::error::{GrowError, Result};
use crate::graph::{BlockKey, Graph};

/// Where the scores of a block's positions come from.
#[derive(Clone, Copy, Debug)]
pub enum Scores<'a> {
    /// One score per position, row-major (`rows × cols`); only magnitudes count.
    Dense(&'a [f32]),
    /// Scores of listed positions only; positions not listed are not candidates.
    Listed {
        rows: &'a [u32],
        cols: &'a [u32],
        values: &'a [f32],
    },
    /// Every eligible position equally likely (growth only), drawn from the graph's RNG.
    Random,
}

/// What one prune-and-regrow step of one block did, in slots: `drop_rows[i], drop_cols[i]` is a
/// removed edge, `grow_rows[i], grow_cols[i]` an added one (rows = targets, cols = sources).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewirePlan {
    pub drop_rows: Vec<u32>,
    pub drop_cols: Vec<u32>,
    pub grow_rows: Vec<u32>,
    pub grow_cols: Vec<u32>,
}

impl RewirePlan {
    pub fn len(&self) -> usize {
        self.drop_rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drop_rows.is_empty()
    }
}

impl Graph {
    /// Drops up to `count` edges of a block and grows as many absent ones, so its edge count is
    /// unchanged, and returns what it did.
    ///
    /// - Dropped: the non-frozen edges with the smallest `|drop|` scores (`Random` is refused).
    /// - Grown: the positions with the largest `|grow|` scores, or random ones, among those absent
    ///   before this step; with `regrow_dropped` an edge dropped now may also be grown again.
    /// - Fewer than `count` happen when fewer edges can be dropped or fewer positions grown; the
    ///   two counts always match. Ties go to the smaller (row, col).
    ///
    /// Grown edges are born at the current step. Nothing changes on error.
    pub fn prune_and_grow(
        &mut self,
        key: BlockKey,
        drop: Scores<'_>,
        grow: Scores<'_>,
        count: usize,
        regrow_dropped: bool,
    ) -> Result<RewirePlan> {
        self.block(key)?; // names an unknown block
        let block = &self.blocks[&key]; // borrowed apart from the RNG
        check_scores("drop_scores", block, &drop)?;
        check_scores("grow_scores", block, &grow)?;
        if matches!(drop, Scores::Random) {
            return Err(GrowError::invalid(
                "drop_scores",
                "random dropping is not supported: pass the scores to rank edges by (e.g. |W|)",
            ));
        }
        let droppable = block.nnz() - block.meta.iter().filter(|&&m| meta_frozen(m)).count();
        let mut dropped = select(block, count.min(droppable), &drop, Pick::Present)?;
        // Growth may run short of candidates; then only the best-ranked drops happen. With
        // `regrow_dropped` the drops are also grow candidates, so shrink until both agree.
        let mut grown;
        loop {
            let again = if regrow_dropped {
                sorted(&dropped)
            } else {
                Vec::new()
            };
            grown = match grow {
                Scores::Random => random_absent(block, dropped.len(), &again, &mut self.rng),
                _ => select(block, dropped.len(), &grow, Pick::Absent(&again))?,
            };
            if grown.len() == dropped.len() {
                break;
            }
            dropped.truncate(grown.len());
        }
        let dropped = sorted(&dropped);
        let grown = sorted(&grown);
        let plan = RewirePlan {
            drop_rows: dropped.iter().map(|&(r, _)| r).collect(),
            drop_cols: dropped.iter().map(|&(_, c)| c).collect(),
            grow_rows: grown.iter().map(|&(r, _)| r).collect(),
            grow_cols: grown.iter().map(|&(_, c)| c).collect(),
        };
        let none: (&[u32], &[u32]) = (&[], &[]);
        let drops = (plan.drop_rows.as_slice(), plan.drop_cols.as_slice());
        let grows = (plan.grow_rows.as_slice(), plan.grow_cols.as_slice());
        if grown.iter().any(|p| dropped.binary_search(p).is_ok()) {
            // An edge dropped and grown again is reborn now: two passes, neither of which can
            // fail, since the plan was built from the block itself.
            self.rewire(key, drops, none)?;
            self.rewire(key, none, grows)?;
        } else {
            self.rewire(key, drops, grows)?;
        }
        Ok(plan)
    }
}

/// Which positions compete.
#[derive(Clone, Copy)]
enum Pick<'a> {
    /// Present, non-frozen edges; the smallest magnitude wins.
    Present,
    /// Absent positions, plus the listed (row, col) pairs (sorted) although present; the
    /// largest magnitude wins.
    Absent(&'a [(u32, u32)]),
}

fn check_scores(arg: &str, block: &CsrBlock, scores: &Scores<'_>) -> Result<()> {
    let (rows, cols) = block.shape();
    match *scores {
        Scores::Dense(values) => {
            let expected = rows as usize * cols as usize;
            if values.len() != expected {
                return Err(GrowError::invalid(
                    arg,
                    format!(
                        "has {} values, expected rows x cols = {rows} x {cols} = {expected}",
                        values.len()
                    ),
                ));
            }
            first_nonfinite(arg, values)
        }
        Scores::Listed {
            rows: r,
            cols: c,
            values,
        } => {
            if r.len() != c.len() || r.len() != values.len() {
                return Err(GrowError::invalid(
                    arg,
                    format!(
                        "rows, cols and values have lengths {}, {} and {}; they must match",
                        r.len(),
                        c.len(),
                        values.len()
                    ),
                ));
            }
            if let Some(i) = r.iter().position(|&x| x >= rows) {
                return Err(GrowError::out_of_range(
                    format!("{arg}.rows[{i}]"),
                    r[i] as i64,
                    rows as u64,
                    "block rows",
                ));
            }
            if let Some(i) = c.iter().position(|&x| x >= cols) {
                return Err(GrowError::out_of_range(
                    format!("{arg}.cols[{i}]"),
                    c[i] as i64,
                    cols as u64,
                    "block columns",
                ));
            }
            let mut keys: Vec<u64> = r
                .iter()
                .zip(c)
                .map(|(&r, &c)| (r as u64) << 32 | c as u64)
                .collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(GrowError::invalid(
                    arg,
                    format!(
                        "position (row {}, col {}) is listed more than once",
                        w[0] >> 32,
                        w[0] & 0xffff_ffff
                    ),
                ));
            }
            first_nonfinite(arg, values)
        }
        Scores::Random => Ok(()),
    }
}

fn first_nonfinite(arg: &str, values: &[f32]) -> Result<()> {
    let bad = if values.len() >= 1 << 16 {
        values.par_iter().position_first(|v| !v.is_finite())
    } else {
        values.iter().position(|v| !v.is_finite())
    };
    match bad {
        Some(index) => Err(GrowError::NonFinite {
            arg: arg.to_string(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Rank key of a finite score: larger wins. The bits of a non-negative float order like the
/// float itself; for `Present` the bits are inverted so the smallest magnitude wins.
fn rank(value: f32, pick: Pick<'_>) -> u32 {
    let bits = value.abs().to_bits();
    match pick {
        Pick::Present => !bits,
        Pick::Absent(_) => bits,
    }
}

/// Calls `emit(row, col, rank)` for every competing position of rows `r0..r1`.
fn visit(
    block: &CsrBlock,
    scores: &Scores<'_>,
    pick: Pick<'_>,
    (r0, r1): (u32, u32),
    emit: &mut dyn FnMut(u32, u32, u32),
) {
    let n_cols = block.n_cols as usize;
    match (*scores, pick) {
        (Scores::Dense(values), Pick::Present) => {
            for r in r0..r1 {
                let range =
                    block.indptr[r as usize] as usize..block.indptr[r as usize + 1] as usize;
                let row_values = &values[r as usize * n_cols..][..n_cols];
                for p in range {
                    if !meta_frozen(block.meta[p]) {
                        let c = block.indices[p];
                        emit(r, c, rank(row_values[c as usize], pick));
                    }
                }
            }
        }
        (Scores::Dense(values), Pick::Absent(again)) => {
            for r in r0..r1 {
                let present = &block.indices
                    [block.indptr[r as usize] as usize..block.indptr[r as usize + 1] as usize];
                let row_values = &values[r as usize * n_cols..][..n_cols];
                let start = again.partition_point(|&(rr, _)| rr < r);
                let mut again = again[start..]
                    .iter()
                    .take_while(|&&(rr, _)| rr == r)
                    .peekable();
                let mut next_present = present.iter().peekable();
                for (c, &v) in row_values.iter().enumerate() {
                    let c = c as u32;
                    if next_present.next_if_eq(&&c).is_some()
                        && again.next_if(|&&(_, cc)| cc == c).is_none()
                    {
                        continue;
                    }
                    emit(r, c, rank(v, pick));
                }
            }
        }
        (Scores::Listed { rows, cols, values }, _) => {
            // Listed scores are visited in one chunk (see `select`).
            for i in 0..rows.len() {
                let (r, c) = (rows[i], cols[i]);
                if r < r0 || r >= r1 {
                    continue;
                }
                let competes = match block.find(r, c) {
                    Some(p) => match pick {
                        Pick::Present => !meta_frozen(block.meta[p]),
                        Pick::Absent(again) => again.binary_search(&(r, c)).is_ok(),
                    },
                    None => matches!(pick, Pick::Absent(_)),
                };
                if competes {
                    emit(r, c, rank(values[i], pick));
                }
            }
        }
        (Scores::Random, _) => unreachable!("random scores are not ranked"),
    }
}

/// The `n` best competing positions, best first: by rank descending, then (row, col).
fn select(
    block: &CsrBlock,
    n: usize,
    scores: &Scores<'_>,
    pick: Pick<'_>,
) -> Result<Vec<(u32, u32)>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let chunks: Vec<(u32, u32)> = match scores {
        Scores::Dense(_) => row_chunks(block.n_rows),
        _ => vec![(0, block.n_rows)],
    };
    // Pass 1: how many candidates fall in each bucket of the top 16 rank bits.
    let histogram = |&chunk: &(u32, u32)| {
        let mut h = vec![0u64; 1 << 16];
        visit(block, scores, pick, chunk, &mut |_, _, key| {
            h[(key >> 16) as usize] += 1
        });
        h
    };
    let parts: Vec<Vec<u64>> = chunks.par_iter().map(histogram).collect();
    let mut counts = vec![0u64; 1 << 16];
    for part in &parts {
        for (total, c) in counts.iter_mut().zip(part) {
            *total += c;
        }
    }
    // The bucket holding the n-th best: everything above it wins, part of it ties.
    let mut above = 0u64;
    let mut bucket = None;
    for b in (0..1usize << 16).rev() {
        if above + counts[b] >= n as u64 {
            bucket = Some(b as u32);
            break;
        }
        above += counts[b];
    }
    // Pass 2: collect the winners and the bucket's candidates.
    let threshold = bucket.unwrap_or(0);
    let collect = |&chunk: &(u32, u32)| {
        let mut picked = Vec::new();
        visit(block, scores, pick, chunk, &mut |r, c, key| {
            if key >> 16 >= threshold {
                picked.push((key, r, c));
            }
        });
        picked
    };
    let mut picked: Vec<(u32, u32, u32)> = chunks.par_iter().flat_map_iter(collect).collect();
    picked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    picked.truncate(n);
    Ok(picked.into_iter().map(|(_, r, c)| (r, c)).collect())
}

/// `n` distinct positions drawn uniformly among the absent ones (plus `again`, sorted), sorted
/// by (row, col). Fewer when fewer are eligible.
fn random_absent(
    block: &CsrBlock,
    n: usize,
    again: &[(u32, u32)],
    rng: &mut impl Rng,
) -> Vec<(u32, u32)> {
    let (rows, cols) = (block.n_rows as u64, block.n_cols as u64);
    let capacity = rows * cols;
    let eligible = capacity - block.nnz() as u64 + again.len() as u64;
    let n = (n as u64).min(eligible) as usize;
    let is_eligible =
        |r: u32, c: u32| block.find(r, c).is_none() || again.binary_search(&(r, c)).is_ok();
    let mut out: Vec<(u32, u32)> = if eligible >= capacity / 4 {
        // Mostly absent: draw positions and redraw the taken or present ones (at most 4 tries
        // per success on average).
        let mut taken = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = rng.random_range(0..capacity);
            let (r, c) = ((k / cols) as u32, (k % cols) as u32);
            if is_eligible(r, c) && taken.insert(k) {
                out.push((r, c));
            }
        }
        out
    } else {
        // Mostly present: list the eligible positions and sample among them.
        let mut all = Vec::with_capacity(eligible as usize);
        for r in 0..block.n_rows {
            for c in 0..block.n_cols {
                if is_eligible(r, c) {
                    all.push((r, c));
                }
            }
        }
        index::sample(rng, all.len(), n)
            .into_iter()
            .map(|i| all[i])
            .collect()
    };
    out.sort_unstable();
    out
}

fn sorted(positions: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = positions.to_vec();
    out.sort_unstable();
    out
}

/// Contiguous row ranges for parallel passes over dense scores.
fn row_chunks(n_rows: u32) -> Vec<(u32, u32)> {
    let n = (rayon::current_num_threads() as u32 * 4).clamp(1, n_rows.max(1));
    (0..n)
        .map(|i| {
            (
                (n_rows as u64 * i as u64 / n as u64) as u32,
                (n_rows as u64 * (i as u64 + 1) / n as u64) as u32,
            )
        })
        .collect()
}
