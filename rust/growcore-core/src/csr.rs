//! One block of edges between two layers, in CSR form.
//!
//! Rows are target neurons (slots of the later layer), columns are source neurons (slots of the
//! earlier layer). Within a row the column indices are sorted and unique. Each edge carries its
//! birth step and a frozen flag packed in one `u32` aligned with `indices` (the flag is the top
//! bit, which is why steps stay below 2^31), so an edge costs 4 + 4 = 8 bytes, plus 8 bytes per
//! row for `indptr`.
//!
//! Batch edge mutations build the new arrays in one pass (in parallel over row chunks for large
//! blocks) and swap them in only when the whole batch checked out, so an error never leaves a
//! block half-changed. The price is a transient second copy of the block's edges.

use rayon::prelude::*;

use crate::error::{GrowError, Result};
use crate::Step;

/// Top bit of an edge's `meta` word: the edge is frozen. The other 31 bits are its birth step.
const FROZEN_BIT: u32 = 1 << 31;

fn meta(birth: Step, frozen: bool) -> u32 {
    birth | if frozen { FROZEN_BIT } else { 0 }
}

pub(crate) fn meta_birth(m: u32) -> Step {
    m & !FROZEN_BIT
}

pub(crate) fn meta_frozen(m: u32) -> bool {
    m & FROZEN_BIT != 0
}

/// Work below this many edges is done on one thread: spawning costs more than it saves.
const PARALLEL_MIN_EDGES: usize = 1 << 16;

/// Edges from which the per-step reductions of a training loop run on all cores. It is higher
/// than `PARALLEL_MIN_EDGES` because they run between torch operations, whose OpenMP threads
/// keep spinning on the cores for a while after each one: a pool thread started then waits for
/// one of those cores, and below about a millisecond of work that wait costs more than it saves.
pub const PARALLEL_STEP_WORK: usize = 1 << 20;

/// A batch is grouped through a bitmap of the block when the bitmap has at most this many bits
/// per pair (then it costs no more memory than the radix sort's buffer).
const BITMAP_MAX_BITS_PER_PAIR: usize = 64;
/// Otherwise it is grouped by radix sort when it has at least one pair per this many columns
/// (the column histogram then costs no more than the pairs).
const RADIX_MAX_COLS_PER_PAIR: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrBlock {
    pub(crate) src: u32,
    pub(crate) dst: u32,
    pub(crate) n_rows: u32,
    pub(crate) n_cols: u32,
    pub(crate) indptr: Vec<u64>,
    pub(crate) indices: Vec<u32>,
    /// Per edge: birth step and frozen flag (see `FROZEN_BIT`).
    pub(crate) meta: Vec<u32>,
}

/// How a batch treats an edge named twice.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeats {
    Reject,
    Merge,
}

impl CsrBlock {
    pub fn empty(src: u32, dst: u32, n_rows: u32, n_cols: u32) -> Self {
        CsrBlock {
            src,
            dst,
            n_rows,
            n_cols,
            indptr: vec![0; n_rows as usize + 1],
            indices: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// Builds a block from sorted, unique keys `row * n_cols + col`.
    pub(crate) fn from_sorted_keys(
        src: u32,
        dst: u32,
        n_rows: u32,
        n_cols: u32,
        keys: &[u64],
        step: Step,
    ) -> Self {
        let mut block = CsrBlock::empty(src, dst, n_rows, n_cols);
        let counts = row_counts(keys, n_rows, n_cols);
        block.indptr = prefix_sum(&counts);
        block.indices = keys.iter().map(|&k| (k % n_cols as u64) as u32).collect();
        block.meta = vec![meta(step, false); keys.len()];
        block
    }

    /// Builds a block from CSR arrays as a user gives them: columns within a row may come in any
    /// order (they are sorted), but must be unique and in range.
    #[allow(clippy::too_many_arguments)]
    pub fn from_csr(
        src: u32,
        dst: u32,
        n_rows: u32,
        n_cols: u32,
        indptr: &[i64],
        indices: &[i64],
        step: Step,
        arg: &str,
    ) -> Result<Self> {
        if indptr.len() != n_rows as usize + 1 {
            return Err(GrowError::invalid(
                format!("{arg}.indptr"),
                format!(
                    "length {} does not match {} target rows + 1",
                    indptr.len(),
                    n_rows
                ),
            ));
        }
        if indptr[0] != 0 || *indptr.last().unwrap() != indices.len() as i64 {
            return Err(GrowError::invalid(
                format!("{arg}.indptr"),
                format!(
                    "must start at 0 and end at len(indices) = {} (got {} .. {})",
                    indices.len(),
                    indptr[0],
                    indptr.last().unwrap()
                ),
            ));
        }
        if let Some(r) = (0..n_rows as usize).find(|&r| indptr[r] > indptr[r + 1]) {
            return Err(GrowError::invalid(
                format!("{arg}.indptr"),
                format!(
                    "must not decrease (indptr[{r}] = {} > indptr[{}] = {})",
                    indptr[r],
                    r + 1,
                    indptr[r + 1]
                ),
            ));
        }
        let mut keys = Vec::with_capacity(indices.len());
        for r in 0..n_rows as usize {
            for (pos, &c) in indices
                .iter()
                .enumerate()
                .take(indptr[r + 1] as usize)
                .skip(indptr[r] as usize)
            {
                if c < 0 || c >= n_cols as i64 {
                    return Err(GrowError::out_of_range(
                        format!("{arg}.indices[{pos}]"),
                        c,
                        n_cols as u64,
                        format!("source layer {src}"),
                    ));
                }
                keys.push(r as u64 * n_cols as u64 + c as u64);
            }
        }
        // Keys of consecutive rows are already ordered, so sorting only reorders within rows.
        sort_keys(&mut keys);
        if let Some(k) = first_repeat(&keys) {
            return Err(GrowError::invalid(
                format!("{arg}.indices"),
                format!(
                    "row {} lists column {} more than once",
                    k / n_cols as u64,
                    k % n_cols as u64
                ),
            ));
        }
        Ok(CsrBlock::from_sorted_keys(
            src, dst, n_rows, n_cols, &keys, step,
        ))
    }

    /// Builds a block from a row-major dense mask of shape (n_rows, n_cols).
    pub fn from_dense(
        src: u32,
        dst: u32,
        n_rows: u32,
        n_cols: u32,
        mask: &[bool],
        step: Step,
    ) -> Result<Self> {
        let expected = n_rows as usize * n_cols as usize;
        if mask.len() != expected {
            return Err(GrowError::invalid(
                "mask",
                format!(
                    "has {} entries, expected {n_rows} x {n_cols} = {expected}",
                    mask.len()
                ),
            ));
        }
        let keys: Vec<u64> = mask
            .iter()
            .enumerate()
            .filter(|(_, &on)| on)
            .map(|(i, _)| i as u64)
            .collect();
        Ok(CsrBlock::from_sorted_keys(
            src, dst, n_rows, n_cols, &keys, step,
        ))
    }

    /// Assembles a block from stored columns (used when loading a state; check it afterwards).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        src: u32,
        dst: u32,
        n_rows: u32,
        n_cols: u32,
        indptr: Vec<u64>,
        indices: Vec<u32>,
        birth: &[Step],
        frozen: &[bool],
    ) -> Self {
        let meta = birth
            .iter()
            .zip(frozen)
            .map(|(&b, &f)| meta(b, f))
            .collect();
        CsrBlock {
            src,
            dst,
            n_rows,
            n_cols,
            indptr,
            indices,
            meta,
        }
    }

    // ---------------------------------------------------------------- queries

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn capacity(&self) -> u64 {
        self.n_rows as u64 * self.n_cols as u64
    }

    pub fn shape(&self) -> (u32, u32) {
        (self.n_rows, self.n_cols)
    }

    pub fn indptr(&self) -> &[u64] {
        &self.indptr
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    pub fn births(&self) -> Vec<Step> {
        self.meta.iter().map(|&m| meta_birth(m)).collect()
    }

    pub fn frozen(&self) -> Vec<bool> {
        self.meta.iter().map(|&m| meta_frozen(m)).collect()
    }

    pub fn is_frozen(&self, position: usize) -> bool {
        meta_frozen(self.meta[position])
    }

    fn row(&self, r: u32) -> std::ops::Range<usize> {
        self.indptr[r as usize] as usize..self.indptr[r as usize + 1] as usize
    }

    /// Position of edge (r, c) in the edge arrays.
    pub fn find(&self, r: u32, c: u32) -> Option<usize> {
        let range = self.row(r);
        let start = range.start;
        self.indices[range]
            .binary_search(&c)
            .ok()
            .map(|i| start + i)
    }

    pub fn nbytes(&self) -> usize {
        self.indptr.capacity() * std::mem::size_of::<u64>()
            + self.indices.capacity() * std::mem::size_of::<u32>()
            + self.meta.capacity() * std::mem::size_of::<u32>()
    }

    pub fn fan_in(&self) -> Vec<u64> {
        self.indptr.windows(2).map(|w| w[1] - w[0]).collect()
    }

    pub fn add_fan_out(&self, out: &mut [u64]) {
        for &c in &self.indices {
            out[c as usize] += 1;
        }
    }

    /// The L2 norm of each row's present entries of a dense row-major `(rows, cols)` matrix,
    /// e.g. a weight gradient restricted to the kept weights: one read per edge rather than a
    /// pass over the whole matrix and a mask. Rows run in parallel for large blocks; each row's
    /// sum is sequential, so the result does not depend on the number of threads.
    pub fn row_norms(&self, values: &[f32]) -> Result<Vec<f32>> {
        let cols = self.n_cols as usize;
        let expected = self.n_rows as usize * cols;
        if values.len() != expected {
            return Err(GrowError::invalid(
                "values",
                format!(
                    "has {} entries, expected the block's {} x {cols} = {expected}",
                    values.len(),
                    self.n_rows
                ),
            ));
        }
        let norm = |r: u32| {
            let row = &values[r as usize * cols..][..cols];
            // Four running sums: the gathers are independent, the additions need not wait.
            let mut acc = [0.0f64; 4];
            let edges = &self.indices[self.row(r)];
            let mut fours = edges.chunks_exact(4);
            for four in &mut fours {
                for (a, &c) in acc.iter_mut().zip(four) {
                    *a += f64::from(row[c as usize]).powi(2);
                }
            }
            for (a, &c) in acc.iter_mut().zip(fours.remainder()) {
                *a += f64::from(row[c as usize]).powi(2);
            }
            ((acc[0] + acc[1]) + (acc[2] + acc[3])).sqrt() as f32
        };
        Ok(if self.nnz() >= PARALLEL_STEP_WORK {
            (0..self.n_rows).into_par_iter().map(norm).collect()
        } else {
            (0..self.n_rows).map(norm).collect()
        })
    }

    pub fn to_dense(&self) -> Vec<bool> {
        let mut mask = vec![false; self.n_rows as usize * self.n_cols as usize];
        for r in 0..self.n_rows {
            for &c in &self.indices[self.row(r)] {
                mask[r as usize * self.n_cols as usize + c as usize] = true;
            }
        }
        mask
    }

    // ---------------------------------------------------------------- batch edge mutations

    /// Validates a batch of (row, col) pairs and groups it by row.
    /// `arg` names the rows argument ("rows", "drop_rows", ...); its columns are named alike.
    pub(crate) fn batch(
        &self,
        arg: &str,
        rows: &[u32],
        cols: &[u32],
        repeats: Repeats,
    ) -> Result<RowBatch> {
        let cols_arg = arg.replace("rows", "cols");
        if rows.len() != cols.len() {
            return Err(GrowError::invalid(
                &cols_arg,
                format!(
                    "length {} differs from the length of {arg} ({})",
                    cols.len(),
                    rows.len()
                ),
            ));
        }
        self.check_range(arg, rows, self.n_rows, self.dst)?;
        self.check_range(&cols_arg, cols, self.n_cols, self.src)?;
        let mut batch = RowBatch::group(rows, cols, self.n_rows, self.n_cols);
        match repeats {
            Repeats::Merge => batch.dedup(),
            Repeats::Reject => {
                if let Some((r, c)) = batch.first_repeat() {
                    return Err(self.edge_error(arg, r, c, "appears more than once in the batch"));
                }
            }
        }
        Ok(batch)
    }

    fn check_range(&self, arg: &str, values: &[u32], bound: u32, layer: u32) -> Result<()> {
        // A vectorisable scan first; the position is searched for only when there is one.
        if !values.iter().fold(false, |out, &v| out | (v >= bound)) {
            return Ok(());
        }
        match values.iter().position(|&v| v >= bound) {
            Some(i) => Err(GrowError::out_of_range(
                format!("{arg}[{i}]"),
                values[i] as i64,
                bound as u64,
                format!("layer {layer} of size {bound}"),
            )),
            None => Ok(()),
        }
    }

    fn edge_error(&self, arg: &str, row: u32, col: u32, msg: &str) -> GrowError {
        GrowError::Edge {
            arg: arg.to_string(),
            src: self.src,
            dst: self.dst,
            row,
            col,
            msg: msg.to_string(),
        }
    }

    /// Positions of the batch's edges in the edge arrays, ascending, or the first absent edge.
    fn positions(&self, batch: &RowBatch) -> Result<Vec<usize>> {
        let mut positions = Vec::with_capacity(batch.len());
        for r in 0..self.n_rows {
            let range = self.row(r);
            let cols = &self.indices[range.clone()];
            let mut from = 0;
            for &c in batch.row(r) {
                // Columns come sorted, so each search starts where the last one ended.
                match cols[from..].binary_search(&c) {
                    Ok(i) => {
                        positions.push(range.start + from + i);
                        from += i + 1;
                    }
                    Err(_) => return Err(self.edge_error("rows", r, c, "does not exist")),
                }
            }
        }
        Ok(positions)
    }

    /// Adds the edges (rows[i], cols[i]) with the given birth step. Every edge must be new and
    /// named once.
    pub fn insert(&mut self, rows: &[u32], cols: &[u32], step: Step) -> Result<()> {
        self.rewire(("rows", &[], &[]), ("rows", rows, cols), step)
    }

    /// Removes the edges (rows[i], cols[i]). Every edge must exist, be named once, and not be frozen.
    pub fn remove(&mut self, rows: &[u32], cols: &[u32]) -> Result<()> {
        self.rewire(("rows", rows, cols), ("rows", &[], &[]), 0)
    }

    /// Drops some edges and grows others: the prune-and-regrow step. Dropped edges must exist
    /// and not be frozen; grown edges must be absent and not also dropped; no edge may be named
    /// twice. `drop` and `grow` are (argument name, rows, cols).
    ///
    /// The new arrays are built in one pass that merges each old row with its drops and grows,
    /// in parallel over row chunks for large blocks, and swapped in only when every row checked
    /// out, so an error leaves the block as it was. The pass reads and writes each edge once;
    /// moving edges in place instead costs one `memmove` per run between changes, which is
    /// several times slower when changes are dense.
    pub fn rewire(
        &mut self,
        drop: (&str, &[u32], &[u32]),
        grow: (&str, &[u32], &[u32]),
        step: Step,
    ) -> Result<()> {
        let (drops, grows) = if drop.1.len() + grow.1.len() >= PARALLEL_MIN_EDGES {
            rayon::join(
                || self.batch(drop.0, drop.1, drop.2, Repeats::Reject),
                || self.batch(grow.0, grow.1, grow.2, Repeats::Reject),
            )
        } else {
            (
                self.batch(drop.0, drop.1, drop.2, Repeats::Reject),
                self.batch(grow.0, grow.1, grow.2, Repeats::Reject),
            )
        };
        let (drops, grows) = (drops?, grows?);
        if drops.is_empty() && grows.is_empty() {
            return Ok(());
        }
        // A row that drops more edges than it has is refused by the merge; saturating keeps the
        // row ranges ordered until then.
        let mut indptr = Vec::with_capacity(self.indptr.len());
        indptr.push(0u64);
        for r in 0..self.n_rows {
            let kept = self.row(r).len().saturating_sub(drops.row(r).len());
            indptr.push(indptr[r as usize] + (kept + grows.row(r).len()) as u64);
        }
        let merged = self.merge_rows(&indptr, &drops, &grows, meta(step, false));
        let (indices, metas) = merged.map_err(|(row, problem)| match problem {
            Problem::Missing(col) => self.edge_error(drop.0, row, col, "does not exist"),
            Problem::Exists(col) => self.edge_error(grow.0, row, col, "already exists"),
            Problem::DroppedAndGrown(col) => {
                self.edge_error(grow.0, row, col, "is both dropped and grown")
            }
            Problem::Frozen(col) => GrowError::FrozenEdge {
                arg: drop.0.to_string(),
                src: self.src,
                dst: self.dst,
                row,
                col,
            },
        })?;
        self.indptr = indptr;
        self.indices = indices;
        self.meta = metas;
        Ok(())
    }

    /// Builds the arrays of a rewire (`indptr` is the new one), or finds its first problem in
    /// row order.
    #[allow(clippy::type_complexity)]
    fn merge_rows(
        &self,
        indptr: &[u64],
        drops: &RowBatch,
        grows: &RowBatch,
        born: u32,
    ) -> std::result::Result<(Vec<u32>, Vec<u32>), (u32, Problem)> {
        let total = *indptr.last().unwrap() as usize;
        let mut indices: Vec<u32> = Vec::with_capacity(total);
        let mut metas: Vec<u32> = Vec::with_capacity(total);
        // Cut the output into one disjoint piece per chunk of rows.
        let chunks = row_chunks(&self.indptr, self.nnz() + drops.len() + grows.len());
        let mut pieces = Vec::with_capacity(chunks.len());
        let (mut rest_i, mut rest_m) = (
            &mut indices.spare_capacity_mut()[..total],
            &mut metas.spare_capacity_mut()[..total],
        );
        for &(r0, r1) in &chunks {
            let len = (indptr[r1 as usize] - indptr[r0 as usize]) as usize;
            let (piece_i, tail_i) = std::mem::take(&mut rest_i).split_at_mut(len);
            let (piece_m, tail_m) = std::mem::take(&mut rest_m).split_at_mut(len);
            (rest_i, rest_m) = (tail_i, tail_m);
            pieces.push(((r0, r1), piece_i, piece_m));
        }
        let fill = |((r0, r1), out_i, out_m): ((u32, u32), &mut [Slot], &mut [Slot])| {
            let base = indptr[r0 as usize] as usize;
            for r in r0..r1 {
                let (lo, hi) = (
                    indptr[r as usize] as usize - base,
                    indptr[r as usize + 1] as usize - base,
                );
                let old = self.row(r);
                let (dropped, grown) = (drops.row(r), grows.row(r));
                let rows = RowMerge {
                    old: &self.indices[old.start..],
                    old_meta: &self.meta[old.start..],
                    old_len: old.len(),
                    dropped,
                    grown,
                    born,
                };
                let merged = if rows.fits(out_i.len() - lo) {
                    rows.merge(&mut out_i[lo..], &mut out_m[lo..], hi - lo)
                } else {
                    rows.merge_padded(&mut out_i[lo..hi], &mut out_m[lo..hi])
                };
                if merged.is_none() {
                    let (old_i, old_m) = (&self.indices[old.clone()], &self.meta[old]);
                    return Err((r, diagnose_row(old_i, old_m, dropped, grown)));
                }
            }
            Ok(())
        };
        let done: Vec<_> = if pieces.len() > 1 {
            pieces.into_par_iter().map(fill).collect()
        } else {
            pieces.into_iter().map(fill).collect()
        };
        done.into_iter().collect::<std::result::Result<(), _>>()?;
        // SAFETY: every row succeeded, and a row succeeds only after writing each slot of its
        // range; the ranges of all rows tile 0..total.
        unsafe {
            indices.set_len(total);
            metas.set_len(total);
        }
        Ok((indices, metas))
    }

    /// Whether each edge (rows[i], cols[i]) exists.
    pub fn contains(&self, rows: &[u32], cols: &[u32]) -> Result<Vec<bool>> {
        if rows.len() != cols.len() {
            let msg = format!(
                "length {} differs from the length of rows ({})",
                cols.len(),
                rows.len()
            );
            return Err(GrowError::invalid("cols", msg));
        }
        self.check_range("rows", rows, self.n_rows, self.dst)?;
        self.check_range("cols", cols, self.n_cols, self.src)?;
        // Each lookup is a binary search in a row, bound by memory latency: large batches
        // spread over the cores.
        let found = |(&r, &c): (&u32, &u32)| self.find(r, c).is_some();
        Ok(if rows.len() >= PARALLEL_MIN_EDGES {
            rows.par_iter().zip(cols).map(found).collect()
        } else {
            rows.iter().zip(cols).map(found).collect()
        })
    }

    /// Sets the frozen flag of existing edges; naming an edge twice is allowed.
    pub fn set_frozen(&mut self, rows: &[u32], cols: &[u32], frozen: bool) -> Result<()> {
        let batch = self.batch("rows", rows, cols, Repeats::Merge)?;
        for p in self.positions(&batch)? {
            self.meta[p] = meta(meta_birth(self.meta[p]), frozen);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- neuron-level changes

    /// Reserves room for `count` more rows (see `push_rows`).
    pub(crate) fn try_reserve_rows(
        &mut self,
        count: u32,
    ) -> std::result::Result<(), std::collections::TryReserveError> {
        self.indptr.try_reserve_exact(count as usize)
    }

    pub(crate) fn push_rows(&mut self, count: u32) {
        let last = *self.indptr.last().unwrap();
        self.indptr
            .extend(std::iter::repeat_n(last, count as usize));
        self.n_rows += count;
    }

    pub(crate) fn push_cols(&mut self, count: u32) {
        self.n_cols += count;
    }

    /// First frozen edge in one of the rows flagged in `gone`, as (row, col).
    pub(crate) fn frozen_in_rows(&self, gone: &[bool]) -> Option<(u32, u32)> {
        (0..self.n_rows)
            .filter(|&r| gone[r as usize])
            .find_map(|r| {
                self.row(r)
                    .find(|&i| self.is_frozen(i))
                    .map(|i| (r, self.indices[i]))
            })
    }

    /// First frozen edge from one of the columns flagged in `gone`, as (row, col).
    pub(crate) fn frozen_in_cols(&self, gone: &[bool]) -> Option<(u32, u32)> {
        (0..self.n_rows).find_map(|r| {
            self.row(r)
                .find(|&i| self.is_frozen(i) && gone[self.indices[i] as usize])
                .map(|i| (r, self.indices[i]))
        })
    }

    /// Keeps only the rows listed in `kept` (ascending), renumbering them 0..kept.len().
    pub(crate) fn keep_rows(&mut self, kept: &[u32]) {
        let mut indptr = Vec::with_capacity(kept.len() + 1);
        indptr.push(0u64);
        let total: usize = kept.iter().map(|&r| self.row(r).len()).sum();
        let mut indices = Vec::with_capacity(total);
        let mut metas = Vec::with_capacity(total);
        for &r in kept {
            let range = self.row(r);
            indices.extend_from_slice(&self.indices[range.clone()]);
            metas.extend_from_slice(&self.meta[range]);
            indptr.push(indices.len() as u64);
        }
        self.n_rows = kept.len() as u32;
        self.indptr = indptr;
        self.indices = indices;
        self.meta = metas;
    }

    /// Renumbers columns through `new_col` (u32::MAX drops the column); the map must be increasing
    /// on the kept columns so rows stay sorted.
    pub(crate) fn remap_cols(&mut self, new_col: &[u32], n_cols: u32) {
        let total = self
            .indices
            .iter()
            .filter(|&&c| new_col[c as usize] != u32::MAX)
            .count();
        let mut indptr = Vec::with_capacity(self.indptr.len());
        indptr.push(0u64);
        let mut indices = Vec::with_capacity(total);
        let mut metas = Vec::with_capacity(total);
        for r in 0..self.n_rows {
            for i in self.row(r) {
                let c = new_col[self.indices[i] as usize];
                if c != u32::MAX {
                    indices.push(c);
                    metas.push(self.meta[i]);
                }
            }
            indptr.push(indices.len() as u64);
        }
        self.n_cols = n_cols;
        self.indptr = indptr;
        self.indices = indices;
        self.meta = metas;
    }

    /// Checks every structural invariant of the block.
    pub fn check(&self) -> std::result::Result<(), String> {
        let nnz = self.indices.len();
        if self.indptr.len() != self.n_rows as usize + 1 {
            return Err(format!(
                "indptr has length {}, expected {}",
                self.indptr.len(),
                self.n_rows + 1
            ));
        }
        if self.indptr[0] != 0 || *self.indptr.last().unwrap() != nnz as u64 {
            return Err("indptr must start at 0 and end at nnz".into());
        }
        if self.meta.len() != nnz {
            return Err("edge attribute arrays are not aligned with indices".into());
        }
        // Monotone first: with indptr[0] = 0 and indptr[-1] = nnz, every row range is then in bounds.
        if let Some(r) = self.indptr.windows(2).position(|w| w[0] > w[1]) {
            return Err(format!("indptr decreases at row {r}"));
        }
        for r in 0..self.n_rows as usize {
            let cols = &self.indices[self.indptr[r] as usize..self.indptr[r + 1] as usize];
            if cols.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("row {r} is not sorted and unique"));
            }
            if cols.last().is_some_and(|&c| c >= self.n_cols) {
                return Err(format!("row {r} has a column out of range"));
            }
        }
        Ok(())
    }
}

// -------------------------------------------------------------------- helpers

pub(crate) fn sort_keys(keys: &mut [u64]) {
    if keys.len() >= PARALLEL_MIN_EDGES {
        keys.par_sort_unstable();
    } else {
        keys.sort_unstable();
    }
}

fn first_repeat(sorted: &[u64]) -> Option<u64> {
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Number of keys in each row.
fn row_counts(sorted_keys: &[u64], n_rows: u32, n_cols: u32) -> Vec<u64> {
    let mut counts = vec![0u64; n_rows as usize];
    for &k in sorted_keys {
        counts[(k / n_cols as u64) as usize] += 1;
    }
    counts
}

fn prefix_sum(counts: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(counts.len() + 1);
    out.push(0);
    let mut total = 0;
    for &c in counts {
        total += c;
        out.push(total);
    }
    out
}

type Slot = std::mem::MaybeUninit<u32>;

/// Old columns a rewire's merge reads, and output slots it writes, per step: it copies a whole
/// window and then advances by the part that belongs, which avoids a hard-to-predict branch per
/// edge. The price is reading and writing up to a window past where the row ends.
const WINDOW: usize = 8;

/// One row of a rewire: the `old` columns (with their `old_meta`) minus `dropped`, plus `grown`
/// with meta `born`, sorted. `old` and `old_meta` start at the row and may run on past its
/// `old_len` columns.
struct RowMerge<'a> {
    old: &'a [u32],
    old_meta: &'a [u32],
    old_len: usize,
    dropped: &'a [u32],
    grown: &'a [u32],
    born: u32,
}

impl RowMerge<'_> {
    /// Whether `merge` may run in place: a window of slack past the old row, and past the most
    /// output slots a row can write before a problem stops it (`room` slots from the row's start).
    fn fits(&self, room: usize) -> bool {
        self.old.len() >= self.old_len + WINDOW && room >= self.old_len + self.grown.len() + WINDOW
    }

    /// Writes the merged row to the first `out_len` slots of `out_i` and `out_m` (each at least
    /// `old_len + grown.len() + WINDOW` long; the slots past `out_len` may be overwritten with
    /// anything) and returns `Some`, or returns `None` as soon as anything is wrong (then
    /// `diagnose_row` says what).
    fn merge(&self, out_i: &mut [Slot], out_m: &mut [Slot], out_len: usize) -> Option<()> {
        let (old_len, room) = (self.old_len, out_i.len().min(out_m.len()));
        // The bounds that make the unchecked accesses below sound (see `fits`).
        assert!(self.fits(room) && self.old_meta.len() >= self.old.len());
        let (old, old_meta) = (self.old.as_ptr(), self.old_meta.as_ptr());
        let (out_i, out_m) = (
            out_i.as_mut_ptr().cast::<u32>(),
            out_m.as_mut_ptr().cast::<u32>(),
        );
        // `p` old columns read, `w` slots written: always `p <= old_len` (a window advances
        // `p` by at most `old_len - p`, a drop only past a present column) and
        // `w <= p + g <= old_len + grown.len()`, so every window read ends within `old` and
        // every window written within the output, by `fits`.
        let (mut p, mut w, mut d, mut g) = (0usize, 0usize, 0usize, 0usize);
        // One step per dropped or grown column, in column order.
        for _ in 0..self.dropped.len() + self.grown.len() {
            let next_drop = self.dropped.get(d).copied().unwrap_or(u32::MAX);
            let next_grow = self.grown.get(g).copied().unwrap_or(u32::MAX);
            let is_drop = next_drop < next_grow;
            let col = next_drop.min(next_grow);
            // Copy the old columns below `col`, a window at a time.
            let present = loop {
                // SAFETY: `p + WINDOW <= old.len()` and `w + WINDOW <= room` (see above).
                let (below, equal) = unsafe {
                    std::ptr::copy_nonoverlapping(old.add(p), out_i.add(w), WINDOW);
                    std::ptr::copy_nonoverlapping(old_meta.add(p), out_m.add(w), WINDOW);
                    scan_window(old.add(p), col)
                };
                let n = below.min(old_len - p);
                p += n;
                w += n;
                if n < WINDOW {
                    // `old[p]` is the first old column at or past `col`, if `p < old_len`.
                    break (p < old_len) & ((equal >> n) & 1 != 0);
                }
            };
            // SAFETY: `p <= old_len < old_meta.len()`.
            let frozen = meta_frozen(unsafe { *old_meta.add(p) });
            let wrong =
                (is_drop & (!present | frozen)) | (!is_drop & present) | (next_drop == next_grow);
            if wrong {
                return None;
            }
            // Written either way; a drop's slot is overwritten by what comes next.
            // SAFETY: `w < room` (see above).
            unsafe {
                *out_i.add(w) = col;
                *out_m.add(w) = self.born;
            }
            w += usize::from(!is_drop);
            g += usize::from(!is_drop);
            p += usize::from(is_drop);
            d += usize::from(is_drop);
        }
        let rest = old_len - p;
        if w + rest != out_len {
            return None; // more drops than the row has edges
        }
        // SAFETY: `w + rest = out_len <= room` and `p + rest = old_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(old.add(p), out_i.add(w), rest);
            std::ptr::copy_nonoverlapping(old_meta.add(p), out_m.add(w), rest);
        }
        Some(())
    }

    /// `merge` for a row without the slack: through padded copies of its input and output.
    fn merge_padded(&self, out_i: &mut [Slot], out_m: &mut [Slot]) -> Option<()> {
        let pad = |v: &[u32]| {
            let mut padded = v[..self.old_len].to_vec();
            padded.resize(self.old_len + WINDOW, u32::MAX);
            padded
        };
        let (old, old_meta) = (pad(self.old), pad(self.old_meta));
        let room = self.old_len + self.grown.len() + WINDOW;
        let (mut tmp_i, mut tmp_m) = (vec![Slot::uninit(); room], vec![Slot::uninit(); room]);
        RowMerge {
            old: &old,
            old_meta: &old_meta,
            ..*self
        }
        .merge(&mut tmp_i, &mut tmp_m, out_i.len())?;
        out_i.copy_from_slice(&tmp_i[..out_i.len()]);
        out_m.copy_from_slice(&tmp_m[..out_m.len()]);
        Some(())
    }
}

/// Where `col` falls in a window of `WINDOW` old columns: how many of them, from the first, are
/// below it, and a bit mask of those equal to it.
///
/// # Safety
/// `old` must be valid for reading `WINDOW` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scan_window(old: *const u32, col: u32) -> (usize, u32) {
    use std::arch::x86_64::*;
    // SSE2 (part of x86_64) compares signed lanes: flipping the top bit orders unsigned ones.
    let flip = _mm_set1_epi32(i32::MIN);
    let col = _mm_xor_si128(_mm_set1_epi32(col as i32), flip);
    let lo = _mm_xor_si128(_mm_loadu_si128(old.cast()), flip);
    let hi = _mm_xor_si128(_mm_loadu_si128(old.add(4).cast()), flip);
    let below = _mm_packs_epi32(_mm_cmplt_epi32(lo, col), _mm_cmplt_epi32(hi, col));
    let equal = _mm_packs_epi32(_mm_cmpeq_epi32(lo, col), _mm_cmpeq_epi32(hi, col));
    // One byte per lane: the low 8 bits of the mask say below, the high 8 equal.
    let mask = _mm_movemask_epi8(_mm_packs_epi16(below, equal)) as u32;
    ((mask & 0xff).trailing_ones() as usize, mask >> 8)
}

/// Where `col` falls in a window of `WINDOW` old columns (see the x86_64 version).
///
/// # Safety
/// `old` must be valid for reading `WINDOW` values.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn scan_window(old: *const u32, col: u32) -> (usize, u32) {
    let old = &*old.cast::<[u32; WINDOW]>();
    let (mut below, mut equal) = (0u32, 0u32);
    for (k, &c) in old.iter().enumerate() {
        below |= u32::from(c < col) << k;
        equal |= u32::from(c == col) << k;
    }
    (below.trailing_ones() as usize, equal)
}

/// The first problem of a row that `RowMerge::merge` refused: drops are checked before grows.
fn diagnose_row(old: &[u32], old_meta: &[u32], dropped: &[u32], grown: &[u32]) -> Problem {
    for &c in dropped {
        match old.binary_search(&c) {
            Err(_) => return Problem::Missing(c),
            Ok(i) if meta_frozen(old_meta[i]) => return Problem::Frozen(c),
            Ok(_) => {}
        }
    }
    for &c in grown {
        if old.binary_search(&c).is_ok() {
            return match dropped.binary_search(&c) {
                Ok(_) => Problem::DroppedAndGrown(c),
                Err(_) => Problem::Exists(c),
            };
        }
    }
    unreachable!("the merge refuses only rows with a problem")
}

/// What is wrong with one row of a `rewire`.
enum Problem {
    Missing(u32),
    Exists(u32),
    DroppedAndGrown(u32),
    Frozen(u32),
}

/// Splits rows into contiguous chunks of roughly equal edge counts for parallel work.
fn row_chunks(indptr: &[u64], work: usize) -> Vec<(u32, u32)> {
    let n_rows = indptr.len() - 1;
    let n_chunks = if work < PARALLEL_MIN_EDGES {
        1
    } else {
        (rayon::current_num_threads() * 4).min(n_rows.max(1))
    };
    let nnz = *indptr.last().unwrap();
    let mut chunks = Vec::with_capacity(n_chunks);
    let mut start = 0usize;
    for i in 1..=n_chunks {
        let end = if i == n_chunks {
            n_rows
        } else {
            let target = nnz * i as u64 / n_chunks as u64;
            indptr.partition_point(|&p| p < target).clamp(start, n_rows)
        };
        if end > start || (i == n_chunks && chunks.is_empty()) {
            chunks.push((start as u32, end as u32));
        }
        start = end;
    }
    chunks
}

/// Where each value (below `n`) goes in a counting sort: `offsets[v]` counts the values below
/// `v`; `n + 1` entries.
fn counts_to_offsets(values: &[u32], n: u32) -> Vec<usize> {
    let mut offsets = vec![0usize; n as usize + 1];
    for &v in values {
        offsets[v as usize + 1] += 1;
    }
    for i in 0..n as usize {
        offsets[i + 1] += offsets[i];
    }
    offsets
}

/// A batch of (row, col) pairs grouped by row, columns ascending within each row.
pub(crate) struct RowBatch {
    /// Row `r`'s columns are `cols[ptr[r]..ptr[r + 1]]`; `ptr[r]` counts the pairs before row `r`.
    ptr: Vec<usize>,
    cols: Vec<u32>,
    /// No pair repeats (known when grouped through a bitmap), so there is nothing to look for.
    unique: bool,
}

impl RowBatch {
    /// Groups pairs (already range-checked) by row, each row's columns ascending, by whichever
    /// of three ways suits the batch's density in the block.
    fn group(rows: &[u32], cols: &[u32], n_rows: u32, n_cols: u32) -> Self {
        let pairs = cols.len();
        let bits = u64::from(n_rows) * u64::from(n_cols);
        if pairs > 0 && bits <= (BITMAP_MAX_BITS_PER_PAIR * pairs) as u64 {
            if let Some(batch) = Self::by_bitmap(rows, cols, n_rows, n_cols) {
                return batch;
            }
        }
        if pairs * RADIX_MAX_COLS_PER_PAIR >= n_cols as usize {
            return Self::by_radix(rows, cols, n_rows, n_cols);
        }
        Self::by_row_sort(rows, cols, n_rows)
    }

    /// Sets one bit per pair in a bitmap of the block, then reads each row's bits in order.
    /// `None` when a pair repeats, which a bitmap cannot keep.
    fn by_bitmap(rows: &[u32], cols: &[u32], n_rows: u32, n_cols: u32) -> Option<Self> {
        let words = (n_cols as usize).div_ceil(64);
        let mut bits = vec![0u64; n_rows as usize * words];
        let mut repeated = false;
        for (&r, &c) in rows.iter().zip(cols) {
            let word = &mut bits[r as usize * words + c as usize / 64];
            let bit = 1u64 << (c % 64);
            repeated |= *word & bit != 0;
            *word |= bit;
        }
        if repeated {
            return None;
        }
        // Each word's set bits are written a fixed 8 at a time (a word rarely has more), and the
        // cursor advances by the true count: no branch per bit. The slack takes the overrun.
        const UNROLL: usize = 8;
        let mut ptr = Vec::with_capacity(n_rows as usize + 1);
        let mut grouped = vec![0u32; cols.len() + UNROLL];
        let mut at = 0;
        ptr.push(0);
        for row in bits.chunks_exact(words) {
            for (k, &word) in row.iter().enumerate() {
                let base = k as u32 * 64;
                let (mut rest, count) = (word, word.count_ones() as usize);
                let out: &mut [u32; UNROLL] = (&mut grouped[at..at + UNROLL]).try_into().unwrap();
                for slot in out {
                    *slot = base + rest.trailing_zeros();
                    rest &= rest.wrapping_sub(1);
                }
                for i in UNROLL..count {
                    grouped[at + i] = base + rest.trailing_zeros();
                    rest &= rest - 1;
                }
                at += count;
            }
            ptr.push(at);
        }
        grouped.truncate(at);
        Some(RowBatch {
            ptr,
            cols: grouped,
            unique: true,
        })
    }

    /// A stable counting sort by column, then one by row (a two-pass radix sort).
    fn by_radix(rows: &[u32], cols: &[u32], n_rows: u32, n_cols: u32) -> Self {
        let ptr = counts_to_offsets(rows, n_rows);
        let mut next = ptr.clone();
        let mut at = counts_to_offsets(cols, n_cols);
        let mut by_col = vec![(0u32, 0u32); cols.len()]; // (row, col) in column order
        for (&r, &c) in rows.iter().zip(cols) {
            by_col[at[c as usize]] = (r, c);
            at[c as usize] += 1;
        }
        let mut grouped = vec![0u32; cols.len()];
        for &(r, c) in &by_col {
            grouped[next[r as usize]] = c;
            next[r as usize] += 1;
        }
        RowBatch {
            ptr,
            cols: grouped,
            unique: false,
        }
    }

    /// A counting sort by row, then a sort of each (short) row: for batches sparse in columns.
    fn by_row_sort(rows: &[u32], cols: &[u32], n_rows: u32) -> Self {
        let ptr = counts_to_offsets(rows, n_rows);
        let mut next = ptr.clone();
        let mut grouped = vec![0u32; cols.len()];
        for (&r, &c) in rows.iter().zip(cols) {
            grouped[next[r as usize]] = c;
            next[r as usize] += 1;
        }
        for r in 0..n_rows as usize {
            grouped[ptr[r]..ptr[r + 1]].sort_unstable();
        }
        RowBatch {
            ptr,
            cols: grouped,
            unique: false,
        }
    }

    fn row(&self, r: u32) -> &[u32] {
        &self.cols[self.ptr[r as usize]..self.ptr[r as usize + 1]]
    }

    fn len(&self) -> usize {
        self.cols.len()
    }

    fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    fn first_repeat(&self) -> Option<(u32, u32)> {
        if self.unique {
            return None;
        }
        (0..self.ptr.len() as u32 - 1).find_map(|r| {
            self.row(r)
                .windows(2)
                .find(|w| w[0] == w[1])
                .map(|w| (r, w[0]))
        })
    }

    fn dedup(&mut self) {
        if self.unique {
            return;
        }
        let mut cols = Vec::with_capacity(self.cols.len());
        let mut ptr = vec![0usize];
        for r in 0..self.ptr.len() as u32 - 1 {
            let row = self.row(r);
            for (i, &c) in row.iter().enumerate() {
                if i == 0 || row[i - 1] != c {
                    cols.push(c);
                }
            }
            ptr.push(cols.len());
        }
        self.ptr = ptr;
        self.cols = cols;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> CsrBlock {
        // 3 targets x 4 sources: row 0 -> {1, 3}, row 1 -> {}, row 2 -> {0}
        CsrBlock::from_csr(0, 1, 3, 4, &[0, 2, 2, 3], &[3, 1, 0], 0, "b").unwrap()
    }

    #[test]
    fn from_csr_sorts_rows() {
        let b = block();
        assert_eq!(b.indices(), &[1, 3, 0]);
        assert_eq!(b.indptr(), &[0, 2, 2, 3]);
        b.check().unwrap();
    }

    #[test]
    fn from_csr_rejects_duplicates_and_range() {
        assert!(CsrBlock::from_csr(0, 1, 1, 4, &[0, 2], &[1, 1], 0, "b").is_err());
        assert!(CsrBlock::from_csr(0, 1, 1, 4, &[0, 1], &[4], 0, "b").is_err());
        assert!(CsrBlock::from_csr(0, 1, 2, 4, &[0, 2, 1], &[0, 1], 0, "b").is_err());
    }

    #[test]
    fn insert_merges_in_order_with_births() {
        let mut b = block();
        b.insert(&[1, 0, 2], &[2, 2, 3], 7).unwrap();
        assert_eq!(b.indptr(), &[0, 3, 4, 6]);
        assert_eq!(b.indices(), &[1, 2, 3, 2, 0, 3]);
        assert_eq!(b.births(), &[0, 7, 0, 7, 0, 7]);
        b.check().unwrap();
    }

    #[test]
    fn insert_rejects_existing_and_repeats_without_change() {
        let mut b = block();
        let before = b.clone();
        assert!(matches!(
            b.insert(&[0], &[3], 1),
            Err(GrowError::Edge { .. })
        ));
        assert!(matches!(
            b.insert(&[1, 1], &[2, 2], 1),
            Err(GrowError::Edge { .. })
        ));
        assert!(matches!(
            b.insert(&[3], &[0], 1),
            Err(GrowError::OutOfRange { .. })
        ));
        assert_eq!(b, before);
    }

    #[test]
    fn remove_and_frozen() {
        let mut b = block();
        b.set_frozen(&[0], &[3], true).unwrap();
        let before = b.clone();
        assert!(matches!(
            b.remove(&[0, 2], &[3, 0]),
            Err(GrowError::FrozenEdge { .. })
        ));
        assert!(matches!(b.remove(&[1], &[0]), Err(GrowError::Edge { .. })));
        assert_eq!(b, before);
        b.remove(&[2, 0], &[0, 1]).unwrap();
        assert_eq!(b.indices(), &[3]);
        assert_eq!(b.frozen(), &[true]);
        b.check().unwrap();
    }

    #[test]
    fn neuron_level_changes() {
        let mut b = block();
        b.keep_rows(&[0, 2]);
        assert_eq!(b.indptr(), &[0, 2, 3]);
        b.remap_cols(&[0, u32::MAX, 1, 2], 3);
        assert_eq!(b.indices(), &[2, 0]);
        assert_eq!(b.indptr(), &[0, 1, 2]);
        b.check().unwrap();
    }

    /// An n x n block (large enough for the parallel paths) holding every `k`-th position in
    /// row-major order, born at step 1, with its edges' rows and columns.
    fn every_kth(n: u32, k: u32) -> (CsrBlock, Vec<u32>, Vec<u32>) {
        let mut b = CsrBlock::empty(0, 1, n, n);
        let (rows, cols): (Vec<u32>, Vec<u32>) = (0..n * n)
            .filter(|p| p % k == 0)
            .map(|p| (p / n, p % n))
            .unzip();
        b.insert(&rows, &cols, 1).unwrap();
        (b, rows, cols)
    }

    #[test]
    fn large_row_norms_take_the_parallel_path_and_check_the_shape() {
        let n = 1800u32;
        let (b, rows, cols) = every_kth(n, 3);
        assert!(b.nnz() >= PARALLEL_STEP_WORK);
        let values: Vec<f32> = (0..n * n).map(|i| (i % 11) as f32 - 5.0).collect();
        let mut want = vec![0.0f64; n as usize];
        for (&r, &c) in rows.iter().zip(&cols) {
            want[r as usize] += f64::from(values[(r * n + c) as usize]).powi(2);
        }
        let got = b.row_norms(&values).unwrap();
        for (r, (&g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w.sqrt()).abs() <= 1e-5 * w.sqrt(),
                "row {r}: {g}"
            );
        }
        let err = b.row_norms(&values[1..]).unwrap_err();
        assert!(err.to_string().contains("values"), "{err}");
    }

    #[test]
    fn large_rewire_reports_the_first_problem_in_row_order_and_changes_nothing() {
        let n = 600u32;
        let (mut b, rows, cols) = every_kth(n, 2);
        b.set_frozen(&[550], &[0], true).unwrap();
        let before = b.clone();
        // Drop every edge of rows >= 100 (a frozen one in row 550) and grow every absent
        // position of rows < 500 plus one present edge in row 400: the parallel path, with
        // problems in two chunks; row 400's comes first.
        let (dr, dc): (Vec<u32>, Vec<u32>) = rows
            .iter()
            .zip(&cols)
            .filter(|(&r, _)| r >= 100)
            .map(|(&r, &c)| (r, c))
            .unzip();
        let (mut gr, mut gc): (Vec<u32>, Vec<u32>) = (0..n * n)
            .filter(|k| k % 2 == 1 && k / n < 500)
            .map(|k| (k / n, k % n))
            .unzip();
        gr.push(400);
        gc.push(2);
        let err = b
            .rewire(("drop_rows", &dr, &dc), ("grow_rows", &gr, &gc), 3)
            .unwrap_err();
        assert!(err.to_string().contains("grow_rows"), "{err}");
        assert!(err.to_string().contains("400"), "{err}");
        assert_eq!(b, before);
        // Without the bad grow, the frozen edge in row 550 is the problem.
        gr.pop();
        gc.pop();
        let err = b
            .rewire(("drop_rows", &dr, &dc), ("grow_rows", &gr, &gc), 3)
            .unwrap_err();
        assert!(
            matches!(
                err,
                GrowError::FrozenEdge {
                    row: 550,
                    col: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(b, before);
        // Unfrozen, the whole rewire goes through.
        b.set_frozen(&[550], &[0], false).unwrap();
        b.rewire(("drop_rows", &dr, &dc), ("grow_rows", &gr, &gc), 3)
            .unwrap();
        b.check().unwrap();
        assert_eq!(b.nnz(), rows.len() - dr.len() + gr.len());
        assert!(b.find(400, 1).is_some_and(|p| meta_birth(b.meta[p]) == 3));
        assert!(b.find(50, 0).is_some_and(|p| meta_birth(b.meta[p]) == 1));
        assert!(b.find(400, 0).is_none() && b.find(550, 0).is_none());
    }

    #[test]
    fn large_lookups_take_the_parallel_path() {
        let n = 600u32;
        let (b, _, _) = every_kth(n, 3);
        // Every position, in a scrambled order: a third of them are edges.
        let (qr, qc): (Vec<u32>, Vec<u32>) = (0..n * n)
            .map(|k| (k * 7919) % (n * n))
            .map(|k| (k / n, k % n))
            .unzip();
        assert!(qr.len() >= PARALLEL_MIN_EDGES);
        let found = b.contains(&qr, &qc).unwrap();
        let want: Vec<bool> = qr
            .iter()
            .zip(&qc)
            .map(|(&r, &c)| (r * n + c) % 3 == 0)
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn large_batches_take_the_parallel_path() {
        let n = 600u32;
        let (mut b, rows, cols) = every_kth(n, 3);
        assert_eq!(b.nnz(), rows.len());
        b.check().unwrap();
        let (rr, cc): (Vec<u32>, Vec<u32>) = rows
            .iter()
            .zip(&cols)
            .step_by(2)
            .map(|(&r, &c)| (r, c))
            .unzip();
        b.remove(&rr, &cc).unwrap();
        assert_eq!(b.nnz(), rows.len() - rr.len());
        b.check().unwrap();
        assert!(b.find(rr[5], cc[5]).is_none());
        assert!(b.find(rows[1], cols[1]).is_some());
    }

    /// Sorted (row, col) pairs of a batch.
    fn pairs_of(batch: &RowBatch, n_rows: u32) -> Vec<(u32, u32)> {
        (0..n_rows)
            .flat_map(|r| batch.row(r).iter().map(move |&c| (r, c)))
            .collect()
    }

    /// A small block with rows of `n_cols` columns: each position present with probability
    /// about `density`, some edges frozen. Rows run longer than a merge window.
    fn block_from(present: &[Vec<(bool, bool)>], n_cols: u32) -> CsrBlock {
        let mut b = CsrBlock::empty(0, 1, present.len() as u32, n_cols);
        let (mut rows, mut cols, mut frozen) = (vec![], vec![], (vec![], vec![]));
        for (r, row) in present.iter().enumerate() {
            for (c, &(here, fz)) in row.iter().enumerate() {
                if here {
                    rows.push(r as u32);
                    cols.push(c as u32);
                    if fz {
                        frozen.0.push(r as u32);
                        frozen.1.push(c as u32);
                    }
                }
            }
        }
        b.insert(&rows, &cols, 1).unwrap();
        b.set_frozen(&frozen.0, &frozen.1, true).unwrap();
        b
    }

    proptest::proptest! {
        /// Every grouping (bitmap, radix, per-row sorts) gives each row's columns in ascending
        /// order, pairs kept with repeats; the bitmap declines exactly the batches with repeats.
        #[test]
        fn grouping_sorts_each_row_by_every_path(
            pairs in proptest::collection::vec((0u32..7, 0u32..200), 0..60),
            n_cols in 200u32..2000,
        ) {
            let (rows, cols): (Vec<u32>, Vec<u32>) = pairs.iter().copied().unzip();
            let mut want = pairs.clone();
            want.sort_unstable();
            let repeats = want.windows(2).any(|w| w[0] == w[1]);
            let radix = RowBatch::by_radix(&rows, &cols, 7, n_cols);
            let sorted = RowBatch::by_row_sort(&rows, &cols, 7);
            proptest::prop_assert_eq!(pairs_of(&radix, 7), want.clone());
            proptest::prop_assert_eq!(pairs_of(&sorted, 7), want.clone());
            match RowBatch::by_bitmap(&rows, &cols, 7, n_cols) {
                Some(bitmap) => {
                    proptest::prop_assert!(!repeats);
                    proptest::prop_assert_eq!(pairs_of(&bitmap, 7), want.clone());
                }
                None => proptest::prop_assert!(repeats),
            }
            proptest::prop_assert_eq!(pairs_of(&RowBatch::group(&rows, &cols, 7, n_cols), 7), want);
        }

        /// A rewire either gives exactly the model's edges (kept ones with their birth and flag,
        /// grown ones born now) or fails on the model's first bad row and changes nothing. Rows
        /// run over several merge windows, and the last ones lack the slack to merge in place.
        #[test]
        fn rewire_matches_a_model(
            rows in proptest::collection::vec(
                (
                    proptest::collection::vec((proptest::bool::weighted(0.6), proptest::bool::weighted(0.02)), 40),
                    0usize..40,
                    0usize..40,
                ),
                1..6,
            ),
            picks in proptest::collection::vec((0u32..6, 0u32..40, 0u8..100), 0..80),
        ) {
            // Each row's edges lie in one span of columns, so a row can end where the next
            // one's first column is high.
            let present: Vec<Vec<(bool, bool)>> = rows
                .iter()
                .map(|(bits, a, b)| {
                    let span = *a.min(b)..=*a.max(b);
                    bits.iter().enumerate().map(|(c, &(here, fz))| (here && span.contains(&c), fz)).collect()
                })
                .collect();
            let n_rows = present.len() as u32;
            let mut b = block_from(&present, 40);
            let before = b.clone();
            // Mostly valid picks: drop a present edge or grow an absent position; a few name
            // the wrong kind (a drop of an absent edge, a grow of a present one).
            let (mut drop, mut grow) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
            for &(r, c, kind) in &picks {
                let r = r % n_rows;
                let here = present[r as usize][c as usize].0;
                let to_drop = if kind < 1 { !here } else { here };
                if to_drop { drop.insert((r, c)); } else { grow.insert((r, c)); }
            }
            let (dr, dc): (Vec<u32>, Vec<u32>) = drop.iter().copied().unzip();
            let (gr, gc): (Vec<u32>, Vec<u32>) = grow.iter().copied().unzip();
            // The model: the first row (in order) with a problem, else the new edges.
            let bad_row = (0..n_rows).find(|&r| {
                let row = &present[r as usize];
                drop.iter().filter(|e| e.0 == r).any(|&(_, c)| !row[c as usize].0 || row[c as usize].1)
                    || grow.iter().filter(|e| e.0 == r).any(|&(_, c)| row[c as usize].0)
            });
            let result = b.rewire(("drop_rows", &dr, &dc), ("grow_rows", &gr, &gc), 9);
            match bad_row {
                Some(row) => {
                    let err = result.unwrap_err();
                    let got = match err {
                        GrowError::Edge { row, .. } | GrowError::FrozenEdge { row, .. } => row,
                        other => panic!("unexpected error {other}"),
                    };
                    proptest::prop_assert_eq!(got, row);
                    proptest::prop_assert_eq!(&b, &before);
                }
                None => {
                    result.unwrap();
                    b.check().unwrap();
                    for r in 0..n_rows {
                        let mut want = vec![];
                        for c in 0..40u32 {
                            let (here, fz) = present[r as usize][c as usize];
                            if grow.contains(&(r, c)) {
                                want.push((c, 9, false));
                            } else if here && !drop.contains(&(r, c)) {
                                want.push((c, 1, fz));
                            }
                        }
                        let got: Vec<(u32, Step, bool)> = b.row(r)
                            .map(|p| (b.indices[p], meta_birth(b.meta[p]), meta_frozen(b.meta[p])))
                            .collect();
                        proptest::prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }
}
