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
        // Both selections come back sorted by (row, col), with their rank keys.
        let mut dropped = select(block, count.min(droppable), &drop, Pick::Present)?;
        // Growth may run short of candidates; then only the best-ranked drops happen. With
        // `regrow_dropped` the drops are also grow candidates, so shrink until both agree.
        let mut grown;
        loop {
            let again: Vec<(u32, u32)> = if regrow_dropped {
                dropped.iter().map(|&(_, r, c)| (r, c)).collect()
            } else {
                Vec::new()
            };
            grown = match grow {
                Scores::Random => random_absent(block, dropped.len(), &again, &mut self.rng)
                    .into_iter()
                    .map(|(r, c)| (0, r, c))
                    .collect(),
                _ => select(block, dropped.len(), &grow, Pick::Absent(&again))?,
            };
            if grown.len() == dropped.len() {
                break;
            }
            keep_best(&mut dropped, grown.len());
        }
        let plan = RewirePlan {
            drop_rows: dropped.iter().map(|&(_, r, _)| r).collect(),
            drop_cols: dropped.iter().map(|&(_, _, c)| c).collect(),
            grow_rows: grown.iter().map(|&(_, r, _)| r).collect(),
            grow_cols: grown.iter().map(|&(_, _, c)| c).collect(),
        };
        // The plan was built from the block itself, so applying it cannot fail. An edge dropped
        // and grown again is reborn now.
        let drops = (plan.drop_rows.as_slice(), plan.drop_cols.as_slice());
        let grows = (plan.grow_rows.as_slice(), plan.grow_cols.as_slice());
        if regrow_dropped {
            self.rewire_regrowing(key, drops, grows)?;
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
    // The largest magnitude bit pattern of a block tells whether it holds a NaN or an infinity;
    // a max over u32 vectorises, a per-value early exit does not.
    const BLOCK: usize = 1 << 14;
    let finite = |block: &[f32]| {
        block
            .iter()
            .map(|v| v.to_bits() & 0x7fff_ffff)
            .max()
            .unwrap_or(0)
            < 0x7f80_0000
    };
    let bad_block = if values.len() >= 1 << 18 {
        values.par_chunks(BLOCK).position_first(|b| !finite(b))
    } else {
        values.chunks(BLOCK).position(|b| !finite(b))
    };
    match bad_block {
        Some(b) => {
            let index = b * BLOCK
                + values[b * BLOCK..]
                    .iter()
                    .position(|v| !v.is_finite())
                    .expect("a block with a non-finite value");
            Err(GrowError::NonFinite {
                arg: arg.to_string(),
                index,
                value: values[index],
                why: "",
            })
        }
        None => Ok(()),
    }
}

/// Rank key of a finite score: larger wins. The bits of a non-negative float order like the
/// float itself; for `Present` the bits are inverted so the smallest magnitude wins.
fn rank(value: f32, pick: Pick<'_>) -> u32 {
    let bits = value.to_bits() & 0x7fff_ffff;
    match pick {
        Pick::Present => !bits,
        Pick::Absent(_) => bits,
    }
}

/// Calls `emit(row, col, rank)` for every competing position of rows `r0..r1`, in (row, col)
/// order for dense scores and in list order for listed ones.
fn visit<F: FnMut(u32, u32, u32)>(
    block: &CsrBlock,
    scores: &Scores<'_>,
    pick: Pick<'_>,
    (r0, r1): (u32, u32),
    mut emit: F,
) {
    let n_cols = block.n_cols as usize;
    match (*scores, pick) {
        (Scores::Dense(values), Pick::Present) => {
            for r in r0..r1 {
                let range =
                    block.indptr[r as usize] as usize..block.indptr[r as usize + 1] as usize;
                let row_values = &values[r as usize * n_cols..][..n_cols];
                for (&c, &m) in block.indices[range.clone()].iter().zip(&block.meta[range]) {
                    if !meta_frozen(m) {
                        emit(r, c, rank(row_values[c as usize], pick));
                    }
                }
            }
        }
        (Scores::Dense(values), Pick::Absent(again)) => {
            let mut again = &again[again.partition_point(|&(rr, _)| rr < r0)..];
            for r in r0..r1 {
                let present = &block.indices
                    [block.indptr[r as usize] as usize..block.indptr[r as usize + 1] as usize];
                let row_values = &values[r as usize * n_cols..][..n_cols];
                let here = again.partition_point(|&(rr, _)| rr == r);
                let (mut again_row, rest) = again.split_at(here);
                again = rest;
                // The runs of absent columns between present ones, and the present columns
                // listed in `again` (a subset of the present ones, sorted).
                let mut from = 0usize;
                for &p in present {
                    let p = p as usize;
                    for (c, &v) in row_values[from..p].iter().enumerate() {
                        emit(r, (from + c) as u32, rank(v, pick));
                    }
                    if let Some((&(_, cc), tail)) = again_row.split_first() {
                        if cc as usize == p {
                            emit(r, cc, rank(row_values[p], pick));
                            again_row = tail;
                        }
                    }
                    from = p + 1;
                }
                for (c, &v) in row_values[from..].iter().enumerate() {
                    emit(r, (from + c) as u32, rank(v, pick));
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

/// The `n` best competing positions (by rank descending, ties to the smaller (row, col)) as
/// (rank, row, col), sorted by (row, col); all of them when fewer than `n` compete.
///
/// Two passes over the scores, in parallel over row chunks: the first counts the candidates in
/// each bucket of the top 16 rank bits, which finds the bucket holding the n-th best; the second
/// keeps the candidates at or above that bucket, in (row, col) order. Only that bucket's ties
/// are ranked further, so nothing of size `n` is ever sorted.
fn select(
    block: &CsrBlock,
    n: usize,
    scores: &Scores<'_>,
    pick: Pick<'_>,
) -> Result<Vec<(u32, u32, u32)>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let chunks: Vec<(u32, u32)> = match scores {
        Scores::Dense(_) => row_chunks(block.n_rows),
        _ => vec![(0, block.n_rows)],
    };
    // Pass 1: how many candidates fall in each bucket of the top 16 rank bits, per chunk.
    let histogram = |&chunk: &(u32, u32)| {
        let mut h = vec![0u64; 1 << 16];
        visit(block, scores, pick, chunk, |_, _, key| {
            h[(key >> 16) as usize] += 1
        });
        h
    };
    let histograms: Vec<Vec<u64>> = chunks.par_iter().map(histogram).collect();
    let mut counts = vec![0u64; 1 << 16];
    for h in &histograms {
        counts.iter_mut().zip(h).for_each(|(total, c)| *total += c);
    }
    // The bucket holding the n-th best: everything above it wins, part of it ties.
    let mut above = 0u64;
    let mut bucket = None;
    for b in (0..counts.len()).rev() {
        if above + counts[b] >= n as u64 {
            bucket = Some(b as u32);
            break;
        }
        above += counts[b];
    }
    // Pass 2: the candidates at or above the bucket (all of them when fewer than n compete),
    // each chunk into a vector of the size its histogram predicts.
    let threshold = bucket.unwrap_or(0);
    let collect = |(&chunk, h): (&(u32, u32), &Vec<u64>)| {
        let size: u64 = h[threshold as usize..].iter().sum();
        let mut picked = Vec::with_capacity(size as usize);
        visit(block, scores, pick, chunk, |r, c, key| {
            if key >> 16 >= threshold {
                picked.push((key, r, c));
            }
        });
        picked
    };
    let parts: Vec<Vec<(u32, u32, u32)>> =
        chunks.par_iter().zip(&histograms).map(collect).collect();
    let mut picked = parts.concat();
    if !matches!(scores, Scores::Dense(_)) {
        picked.sort_unstable_by_key(|&(_, r, c)| (r, c));
    }
    if bucket.is_none() || picked.len() <= n {
        return Ok(picked);
    }
    // Within the bucket: the `need` best keys win; of the keys equal to the last winning one,
    // the first in (row, col) order.
    let need = n - above as usize;
    let mut ties: Vec<u32> = picked
        .iter()
        .filter(|&&(key, _, _)| key >> 16 == threshold)
        .map(|&(key, _, _)| key)
        .collect();
    let (_, &mut cut, _) = ties.select_nth_unstable_by(need - 1, |a, b| b.cmp(a));
    let mut equal_quota = need - ties.iter().filter(|&&k| k > cut).count();
    picked.retain(|&(key, _, _)| {
        if key > cut {
            true
        } else if key == cut && equal_quota > 0 {
            equal_quota -= 1;
            true
        } else {
            false
        }
    });
    debug_assert_eq!(picked.len(), n);
    Ok(picked)
}

/// Keeps the `n` best of `chosen` ((rank, row, col), sorted by (row, col)): by rank descending,
/// ties to the smaller (row, col); the result stays sorted by (row, col).
fn keep_best(chosen: &mut Vec<(u32, u32, u32)>, n: usize) {
    if n >= chosen.len() {
        return;
    }
    let mut order: Vec<(u32, u32, u32)> = chosen.clone();
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    order.truncate(n);
    order.sort_unstable_by_key(|&(_, r, c)| (r, c));
    *chosen = order;
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
