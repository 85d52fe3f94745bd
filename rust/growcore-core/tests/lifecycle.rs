//! Apoptosis decisions: who dies, who replaces them, and what the lineage records.

use std::collections::BTreeSet;

use growcore_core::{AlphaRule, ApoptosisSpec, Fate, Regrowth};
use proptest::prelude::*;

mod common;
use common::graph;

fn regrowth() -> impl Strategy<Value = Regrowth> {
    prop_oneof![
        Just(Regrowth::Random),
        Just(Regrowth::Mutation),
        Just(Regrowth::Crossover(AlphaRule::Uniform {
            low: 0.3,
            high: 0.7
        })),
        Just(Regrowth::Crossover(AlphaRule::FitnessWeighted)),
        Just(Regrowth::FunctionPreserving),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn apoptosis_kills_the_least_fit_mature_neurons_and_records_lineage(
        n in 1u32..24, seed in any::<u64>(), fraction in 0.0f64..1.0,
        raw in prop::collection::vec(-5i32..5, 24), young in prop::collection::vec(any::<bool>(), 24),
        maturity in 1u32..20, regrowth in regrowth(), threshold in prop::option::of(-1.5f64..1.5),
    ) {
        let mut g = graph(&[3, n, 2], 0.5, seed);
        g.advance(50).unwrap();
        // Some neurons are reset now, so they are younger than the maturity age.
        let young_slots: Vec<u32> = (0..n).filter(|&s| young[s as usize]).collect();
        g.reset_neurons(1, &young_slots).unwrap();
        g.advance(maturity as u64 - 1).unwrap();
        let fitness: Vec<f64> = raw[..n as usize].iter().map(|&x| x as f64).collect();
        let normalized = g.normalized_fitness(1, Some(&fitness)).unwrap();
        let before = g.clone();
        let ids_before = g.num_ids() as u64;
        let spec = ApoptosisSpec { fraction, threshold, maturity_age: maturity, regrowth };
        let plan = g.apoptosis(1, &spec, Some(&fitness), &[]).unwrap();

        let eligible: Vec<u32> = (0..n).filter(|s| !young_slots.contains(s)).collect();
        let mut candidates: Vec<u32> = eligible.iter().copied()
            .filter(|&s| threshold.is_none_or(|t| normalized[s as usize] < t)).collect();
        candidates.sort_by(|&a, &b| normalized[a as usize].total_cmp(&normalized[b as usize]).then(a.cmp(&b)));
        candidates.truncate((fraction * eligible.len() as f64).floor() as usize);
        candidates.sort();
        let killed: Vec<u32> = plan.iter().map(|r| r.slot).collect();
        prop_assert_eq!(&killed, &candidates);

        for (k, r) in plan.iter().enumerate() {
            prop_assert!(!young_slots.contains(&r.slot));
            prop_assert_eq!(r.dead, before.ids(1)[r.slot as usize]);
            prop_assert_eq!(r.born, ids_before + k as u64);
            prop_assert_eq!(g.ids(1)[r.slot as usize], r.born);
            let dead = &g.lineage()[r.dead as usize];
            prop_assert_eq!(dead.fate, Fate::Apoptosis);
            prop_assert_eq!(dead.death, Some(g.step()));
            let born = &g.lineage()[r.born as usize];
            prop_assert_eq!(born.birth, g.step());
            let parent_ids: Vec<u64> = born.parents.iter().flatten().copied().collect();
            for &p in &r.parent_slots {
                // Parents are mature survivors of this event.
                prop_assert!(eligible.contains(&p) && !killed.contains(&p));
            }
            let distinct: BTreeSet<u32> = r.parent_slots.iter().copied().collect();
            prop_assert_eq!(distinct.len(), r.parent_slots.len());
            if r.parent_slots.is_empty() {
                prop_assert_eq!(parent_ids.clone(), vec![r.dead]);
            } else {
                let want: Vec<u64> = r.parent_slots.iter().map(|&s| before.ids(1)[s as usize]).collect();
                prop_assert_eq!(parent_ids.clone(), want);
            }
            let generation = parent_ids.iter().map(|&p| g.lineage()[p as usize].generation + 1).max().unwrap();
            prop_assert_eq!(born.generation, generation);
            match (regrowth, r.parent_slots.len()) {
                (Regrowth::Crossover(AlphaRule::Uniform { low, high }), 2) => {
                    let a = r.alpha.unwrap();
                    prop_assert!(low <= a && a <= high);
                }
                (Regrowth::Crossover(AlphaRule::FitnessWeighted), 2) => {
                    let a = r.alpha.unwrap();
                    prop_assert!(0.0 < a && a < 1.0);
                }
                (Regrowth::Crossover(_), k) => {
                    // Fallbacks: a mutation of the only survivor, or random regrowth.
                    prop_assert!(r.alpha.is_none() && k == (eligible.len() - killed.len()).min(1));
                }
                (Regrowth::Mutation, k) => prop_assert_eq!(k, (eligible.len() - killed.len()).min(1)),
                (_, k) => prop_assert_eq!(k, 0),
            }
            // The newborn starts with fresh statistics.
            prop_assert_eq!(g.stats(1).observations[r.slot as usize], 0);
        }
        g.validate().unwrap();
        // Everything but the replaced neurons is as it was, edges included.
        prop_assert_eq!(g.nnz(), before.nnz());
        for s in 0..n {
            if !killed.contains(&s) {
                prop_assert_eq!(g.ids(1)[s as usize], before.ids(1)[s as usize]);
            }
        }
        // Determinism: the same graph and spec give the same plan.
        let mut again = before.clone();
        prop_assert_eq!(again.apoptosis(1, &spec, Some(&fitness), &[]).unwrap(), plan);
    }
}

#[test]
fn bad_specs_change_nothing() {
    let mut g = graph(&[3, 6, 2], 0.5, 1);
    g.advance(10).unwrap();
    let before = g.clone();
    let spec = |fraction, regrowth| ApoptosisSpec {
        fraction,
        threshold: None,
        maturity_age: 0,
        regrowth,
    };
    for (s, fit, word) in [
        (spec(1.5, Regrowth::Random), None, "fraction"),
        (spec(-0.1, Regrowth::Random), None, "fraction"),
        (
            spec(
                0.5,
                Regrowth::Crossover(AlphaRule::Uniform {
                    low: 0.8,
                    high: 0.2,
                }),
            ),
            None,
            "alpha",
        ),
        (spec(0.5, Regrowth::Random), Some(vec![1.0; 5]), "fitness"),
        (
            spec(0.5, Regrowth::Random),
            Some(vec![f64::NAN; 6]),
            "fitness[0]",
        ),
    ] {
        let err = g.apoptosis(1, &s, fit.as_deref(), &[]).unwrap_err();
        assert!(err.to_string().contains(word), "{err}");
        assert_eq!(g, before);
    }
    assert!(Regrowth::parse("magic")
        .unwrap_err()
        .to_string()
        .contains("magic"));
    assert!(g
        .apoptosis(7, &spec(0.5, Regrowth::Random), None, &[])
        .is_err());
    assert_eq!(g, before);
}

#[test]
fn normalized_fitness_is_a_zscore_and_flat_layers_are_zero() {
    let g = graph(&[3, 4, 2], 0.5, 1);
    let z = g
        .normalized_fitness(1, Some(&[1.0, 2.0, 3.0, 4.0]))
        .unwrap();
    let std = (1.25f64).sqrt();
    for (got, x) in z.iter().zip([1.0, 2.0, 3.0, 4.0]) {
        assert!((got - (x - 2.5) / std).abs() < 1e-12);
    }
    assert_eq!(
        g.normalized_fitness(1, Some(&[7.0; 4])).unwrap(),
        vec![0.0; 4]
    );
}
