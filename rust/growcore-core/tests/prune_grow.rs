#![allow(clippy::type_complexity, clippy::needless_range_loop)]

//! Prune-and-regrow decisions against a brute-force reference: sort every candidate by
//! (score, row, col) and take the best.

use std::collections::BTreeSet;

use growcore_core::{Distribution, Graph, GrowError, InitSpec, RewirePlan, Scores};
use proptest::prelude::*;

type Pos = (u32, u32);

fn graph(rows: u32, cols: u32, density: f64, seed: u64) -> Graph {
    let init = InitSpec {
        density,
        distribution: Distribution::Uniform,
        seed,
        ..Default::default()
    };
    Graph::new(&[cols, rows], &init).unwrap()
}

/// (present edges, frozen edges) of block (0, 1).
fn edges(g: &Graph) -> (BTreeSet<Pos>, BTreeSet<Pos>) {
    let b = g.block((0, 1)).unwrap();
    let frozen = b.frozen();
    let (mut present, mut fz) = (BTreeSet::new(), BTreeSet::new());
    for r in 0..b.shape().0 {
        for p in b.indptr()[r as usize] as usize..b.indptr()[r as usize + 1] as usize {
            present.insert((r, b.indices()[p]));
            if frozen[p] {
                fz.insert((r, b.indices()[p]));
            }
        }
    }
    (present, fz)
}

/// What the plan must be, by definition.
fn reference(g: &Graph, w: &[f32], s: &[f32], count: usize, regrow: bool) -> (Vec<Pos>, Vec<Pos>) {
    let (rows, cols) = g.block((0, 1)).unwrap().shape();
    let (present, frozen) = edges(g);
    let at = |v: &[f32], (r, c): Pos| v[(r * cols + c) as usize].abs();
    let mut drops: Vec<Pos> = present.difference(&frozen).copied().collect();
    drops.sort_by(|&a, &b| at(w, a).total_cmp(&at(w, b)).then(a.cmp(&b)));
    drops.truncate(count);
    let mut grows: Vec<Pos> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .filter(|p| !present.contains(p) || (regrow && drops.contains(p)))
        .collect();
    grows.sort_by(|&a, &b| at(s, b).total_cmp(&at(s, a)).then(a.cmp(&b)));
    grows.truncate(drops.len());
    drops.truncate(grows.len());
    drops.sort();
    grows.sort();
    (drops, grows)
}

fn pairs(rows: &[u32], cols: &[u32]) -> Vec<Pos> {
    rows.iter().copied().zip(cols.iter().copied()).collect()
}

/// Scores with many ties: small integers, some negative.
fn scores(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-4i32..5).prop_map(|x| x as f32 * 0.5), n)
}

fn case() -> impl Strategy<
    Value = (
        u32,
        u32,
        f64,
        u64,
        Vec<f32>,
        Vec<f32>,
        usize,
        bool,
        Vec<usize>,
    ),
> {
    (1u32..9, 1u32..9, 0.0f64..1.0, any::<u64>()).prop_flat_map(|(rows, cols, density, seed)| {
        let n = (rows * cols) as usize;
        (
            Just(rows),
            Just(cols),
            Just(density),
            Just(seed),
            scores(n),
            scores(n),
            0usize..n + 2,
            any::<bool>(),
            prop::collection::vec(0usize..n, 0..4),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn dense_and_listed_scores_pick_exactly_the_reference(
        (rows, cols, density, seed, w, s, count, regrow, freeze) in case()
    ) {
        let mut g = graph(rows, cols, density, seed);
        g.advance(5).unwrap();
        // Freeze a few present edges: they must never be dropped.
        let (present, _) = edges(&g);
        let present: Vec<Pos> = present.into_iter().collect();
        if !present.is_empty() {
            let fz: Vec<Pos> = freeze.iter().map(|&i| present[i % present.len()]).collect();
            let (fr, fc): (Vec<u32>, Vec<u32>) = fz.into_iter().unzip();
            g.set_frozen((0, 1), &fr, &fc, true).unwrap();
        }
        let (want_drop, want_grow) = reference(&g, &w, &s, count, regrow);

        // Listed: every position, in a scrambled order.
        let mut listed = g.clone();
        let all: Vec<Pos> = (0..rows).rev().flat_map(|r| (0..cols).map(move |c| (r, c))).collect();
        let (lr, lc): (Vec<u32>, Vec<u32>) = all.iter().copied().unzip();
        let pick = |v: &[f32]| -> Vec<f32> { all.iter().map(|&(r, c)| v[(r * cols + c) as usize]).collect() };
        let (lw, ls) = (pick(&w), pick(&s));
        let listed_plan = listed.prune_and_grow(
            (0, 1),
            Scores::Listed { rows: &lr, cols: &lc, values: &lw },
            Scores::Listed { rows: &lr, cols: &lc, values: &ls },
            count,
            regrow,
        ).unwrap();

        let before = edges(&g).0;
        let mut replica = g.clone();
        let plan = g.prune_and_grow((0, 1), Scores::Dense(&w), Scores::Dense(&s), count, regrow).unwrap();
        prop_assert_eq!(pairs(&plan.drop_rows, &plan.drop_cols), want_drop.clone());
        prop_assert_eq!(pairs(&plan.grow_rows, &plan.grow_cols), want_grow.clone());
        prop_assert_eq!(&listed_plan, &plan);
        prop_assert!(listed == g);
        // Another copy replays the plan to the same graph (how other ranks follow rank 0).
        replica.rewire_regrowing(
            (0, 1),
            (&plan.drop_rows, &plan.drop_cols),
            (&plan.grow_rows, &plan.grow_cols),
        ).unwrap();
        prop_assert!(replica == g);

        // The graph now holds exactly before - dropped + grown, grown edges born now.
        let mut expect = before.clone();
        for p in &want_drop { expect.remove(p); }
        for p in &want_grow { expect.insert(*p); }
        prop_assert_eq!(edges(&g).0, expect);
        g.validate().unwrap();
        let block = g.block((0, 1)).unwrap();
        for &(r, c) in &want_grow {
            let p = block.find(r, c).unwrap();
            prop_assert_eq!(block.births()[p], 5);
        }
    }

    #[test]
    fn random_growth_is_uniform_over_absent_positions_and_seeded(
        rows in 1u32..12, cols in 1u32..12, density in 0.0f64..1.0, seed in any::<u64>(),
        count in 0usize..40, regrow in any::<bool>(),
    ) {
        let g0 = graph(rows, cols, density, seed);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32).collect();
        let (present, _) = edges(&g0);
        let run = |mut g: Graph| -> (RewirePlan, Graph) {
            let plan = g.prune_and_grow((0, 1), Scores::Dense(&w), Scores::Random, count, regrow).unwrap();
            (plan, g)
        };
        let (plan, g) = run(g0.clone());
        let (again, g2) = run(g0.clone());
        prop_assert_eq!(&plan, &again);
        prop_assert!(g == g2);
        let dropped = pairs(&plan.drop_rows, &plan.drop_cols);
        let grown = pairs(&plan.grow_rows, &plan.grow_cols);
        let absent = (rows * cols) as usize - present.len();
        let eligible_drops = present.len();
        let n = count.min(eligible_drops).min(absent + if regrow { count.min(eligible_drops) } else { 0 });
        prop_assert_eq!(dropped.len(), n);
        prop_assert_eq!(grown.len(), n);
        let unique: BTreeSet<Pos> = grown.iter().copied().collect();
        prop_assert_eq!(unique.len(), n);
        for p in &grown {
            prop_assert!(!present.contains(p) || (regrow && dropped.contains(p)));
        }
        prop_assert_eq!(g.nnz(), g0.nnz());
        g.validate().unwrap();
    }
}

#[test]
fn random_growth_differs_between_seeds_and_steps() {
    let g = graph(64, 64, 0.1, 1);
    let w = vec![1.0f32; 64 * 64];
    let mut a = g.clone();
    let p1 = a
        .prune_and_grow((0, 1), Scores::Dense(&w), Scores::Random, 50, false)
        .unwrap();
    let p2 = a
        .prune_and_grow((0, 1), Scores::Dense(&w), Scores::Random, 50, false)
        .unwrap();
    assert_ne!(p1.grow_rows, p2.grow_rows, "the RNG must advance");
    // A mostly full block takes the enumerating path.
    let mut full = graph(16, 16, 0.95, 2);
    let w = vec![1.0f32; 16 * 16];
    let absent = 256 - full.nnz();
    let plan = full
        .prune_and_grow((0, 1), Scores::Dense(&w), Scores::Random, 100, false)
        .unwrap();
    assert_eq!(plan.len(), absent);
}

#[test]
fn bad_scores_are_refused_and_change_nothing() {
    let mut g = graph(4, 5, 0.5, 3);
    let before = g.clone();
    let ok = vec![1.0f32; 20];
    let mut nan = ok.clone();
    nan[7] = f32::NAN;
    let err = g
        .prune_and_grow((0, 1), Scores::Dense(&ok), Scores::Dense(&nan), 3, false)
        .unwrap_err();
    assert!(
        matches!(&err, GrowError::NonFinite { arg, index: 7, .. } if arg == "grow_scores"),
        "{err}"
    );
    let err = g
        .prune_and_grow((0, 1), Scores::Dense(&ok[..19]), Scores::Random, 3, false)
        .unwrap_err();
    assert!(err.to_string().contains("drop_scores"), "{err}");
    assert!(err.to_string().contains("19"), "{err}");
    let err = g
        .prune_and_grow((0, 1), Scores::Random, Scores::Random, 3, false)
        .unwrap_err();
    assert!(err.to_string().contains("drop_scores"), "{err}");
    let twice = Scores::Listed {
        rows: &[1, 1],
        cols: &[2, 2],
        values: &[1.0, 2.0],
    };
    let err = g
        .prune_and_grow((0, 1), Scores::Dense(&ok), twice, 3, false)
        .unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    let outside = Scores::Listed {
        rows: &[9],
        cols: &[0],
        values: &[1.0],
    };
    let err = g
        .prune_and_grow((0, 1), outside, Scores::Random, 3, false)
        .unwrap_err();
    assert!(err.to_string().contains("drop_scores.rows[0]"), "{err}");
    let err = g
        .prune_and_grow((0, 2), Scores::Dense(&ok), Scores::Random, 3, false)
        .unwrap_err();
    assert!(
        matches!(err, GrowError::OutOfRange { .. } | GrowError::Block { .. }),
        "{err}"
    );
    assert!(g == before);
}

/// A block large enough for many row chunks and a bucket of near-ties that is only partly taken:
/// scores drawn from a few thousand distinct values, so exact ties cross chunk boundaries.
#[test]
fn large_blocks_pick_exactly_the_reference() {
    use rand::{Rng, SeedableRng};
    let (rows, cols) = (300u32, 200u32);
    for (density, count, regrow, seed) in [
        (0.1, 1800, false, 1),
        (0.5, 9000, true, 2),
        (0.9, 20000, false, 3),
    ] {
        let mut g = graph(rows, cols, density, seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = (rows * cols) as usize;
        let w: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-3000i32..3000) as f32 * 1e-3)
            .collect();
        let s: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-3000i32..3000) as f32 * 1e-3)
            .collect();
        let (want_drop, want_grow) = reference(&g, &w, &s, count, regrow);
        let plan = g
            .prune_and_grow((0, 1), Scores::Dense(&w), Scores::Dense(&s), count, regrow)
            .unwrap();
        assert_eq!(
            pairs(&plan.drop_rows, &plan.drop_cols),
            want_drop,
            "drops at density {density}"
        );
        assert_eq!(
            pairs(&plan.grow_rows, &plan.grow_cols),
            want_grow,
            "grows at density {density}"
        );
        g.validate().unwrap();
    }
}

#[test]
fn the_first_nonfinite_score_of_a_large_array_is_named() {
    let (rows, cols) = (600u32, 500u32); // 300,000 scores: checked in parallel blocks
    let mut g = graph(rows, cols, 0.1, 4);
    let before = g.clone();
    let ok = vec![1.0f32; (rows * cols) as usize];
    let mut bad = ok.clone();
    bad[123_457] = f32::NEG_INFINITY;
    bad[250_000] = f32::NAN;
    let err = g
        .prune_and_grow((0, 1), Scores::Dense(&bad), Scores::Dense(&ok), 10, false)
        .unwrap_err();
    assert!(
        matches!(&err, GrowError::NonFinite { arg, index: 123_457, .. } if arg == "drop_scores"),
        "{err}"
    );
    assert!(g == before);
}

#[test]
fn a_replayed_plan_that_fails_changes_nothing() {
    let mut g = graph(4, 4, 0.5, 3);
    g.advance(2).unwrap();
    let present: Vec<Pos> = edges(&g).0.into_iter().collect();
    let absent: Vec<Pos> = (0..4)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .filter(|p| !present.contains(p))
        .collect();
    let before = g.clone();
    // Drops present[0] and grows it again (fine), but also grows present[1], which exists and
    // is not dropped: the second pass fails after the first has run.
    let (dr, dc) = (vec![present[0].0], vec![present[0].1]);
    let (gr, gc) = (
        vec![present[0].0, present[1].0],
        vec![present[0].1, present[1].1],
    );
    let err = g
        .rewire_regrowing((0, 1), (&dr, &dc), (&gr, &gc))
        .unwrap_err();
    assert!(matches!(err, GrowError::Edge { .. }), "{err}");
    assert!(g == before);
    // Without a regrown edge it is one rewire, refused the same way.
    let (gr, gc) = (
        vec![absent[0].0, present[1].0],
        vec![absent[0].1, present[1].1],
    );
    assert!(g.rewire_regrowing((0, 1), (&dr, &dc), (&gr, &gc)).is_err());
    assert!(g == before);
    // Plain rewire refuses an edge both dropped and grown; rewire_regrowing rebirths it.
    assert!(g.rewire((0, 1), (&dr, &dc), (&dr, &dc)).is_err());
    g.rewire_regrowing((0, 1), (&dr, &dc), (&dr, &dc)).unwrap();
    let block = g.block((0, 1)).unwrap();
    let p = block.find(present[0].0, present[0].1).unwrap();
    assert_eq!(block.births()[p], 2);
    assert_eq!(edges(&g).0, edges(&before).0);
}
