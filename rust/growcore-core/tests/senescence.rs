//! Senescence: flat fitness turns into senescence, senescence into escalated apoptosis; the
//! multi-objective fitness and its stability term.

use growcore_core::{
    ApoptosisSpec, Fate, ObjectiveWeights, Observation, Profiles, Regrowth, Senescence,
    SenescenceSpec,
};
use proptest::prelude::*;

mod common;
use common::graph;

fn spec(window: usize, flat_steps: u32, escalate_after: u32, max_fraction: f64) -> SenescenceSpec {
    SenescenceSpec {
        window,
        epsilon: 0.05,
        flat_steps,
        min_age: 0,
        escalate_after,
        max_fraction,
    }
}

fn kill_spec() -> ApoptosisSpec {
    ApoptosisSpec {
        fraction: 0.0,
        threshold: None,
        maturity_age: 0,
        regrowth: Regrowth::Random,
    }
}

#[test]
fn a_flat_neuron_turns_senescent_then_is_escalated_and_dies_of_senescence() {
    // Neuron 0's fitness is constant; the others climb steadily.
    let mut g = graph(&[2, 4, 1], 0.5, 1);
    let mut tracker = Senescence::new();
    let s = spec(3, 20, 30, 0.5);
    let mut became = None;
    let mut escalated_at = None;
    for k in 1..=12u32 {
        g.advance(10).unwrap();
        let fitness = [1.0, k as f64, 2.0 * k as f64, 3.0 * k as f64];
        let up = tracker.update(&g, 1, Some(&fitness), &s).unwrap();
        assert!(
            up.newly_senescent.iter().all(|&x| x == 0),
            "only neuron 0 is flat"
        );
        if up.newly_senescent == [0] {
            became = Some(g.step());
        }
        if up.escalated == [0] {
            escalated_at = Some(g.step());
            break;
        }
    }
    // The first full window (3 samples) ends at step 30 and starts at step 10, so neuron 0 is
    // flat since step 10 and senescent once that is 20 steps ago; escalated 30 steps later.
    assert_eq!(became, Some(30));
    assert_eq!(escalated_at, Some(60));
    let dead = g.ids(1)[0];
    let plan = g.apoptosis(1, &kill_spec(), None, &[0]).unwrap();
    assert_eq!(plan.len(), 1);
    assert!(plan[0].escalated);
    assert_eq!(g.lineage()[dead as usize].fate, Fate::Senescence);
    // The newborn starts with no history and is not senescent.
    g.advance(10).unwrap();
    let up = tracker
        .update(&g, 1, Some(&[1.0, 13.0, 26.0, 39.0]), &s)
        .unwrap();
    assert!(up.slope[0].is_nan());
    assert!(!up.senescent.contains(&0));
}

#[test]
fn bad_specs_and_escalations_are_refused_without_change() {
    let mut g = graph(&[2, 4, 1], 0.5, 1);
    let mut tracker = Senescence::new();
    for bad in [
        spec(1, 0, 0, 0.5),
        spec(3, 0, 0, 1.5),
        SenescenceSpec {
            epsilon: f64::NAN,
            ..spec(3, 0, 0, 0.5)
        },
    ] {
        assert!(tracker.update(&g, 1, None, &bad).is_err());
    }
    assert!(tracker.update(&g, 9, None, &spec(3, 0, 0, 0.5)).is_err());
    assert!(tracker
        .update(
            &g,
            1,
            Some(&[1.0, f64::INFINITY, 0.0, 0.0]),
            &spec(3, 0, 0, 0.5)
        )
        .is_err());
    assert_eq!(tracker, Senescence::new());

    g.advance(5).unwrap();
    let before = g.clone();
    let young = ApoptosisSpec {
        maturity_age: 10,
        ..kill_spec()
    };
    assert!(g.apoptosis(1, &young, None, &[1]).is_err());
    assert!(g.apoptosis(1, &kill_spec(), None, &[4]).is_err());
    assert!(g.apoptosis(1, &kill_spec(), None, &[2, 2]).is_err());
    assert_eq!(g, before);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Over random fitness histories and random deaths: caps hold, senescence needs
    /// `flat_steps` of flatness and escalation `escalate_after` of senescence, the tracker
    /// forgets the dead, and its bytes round-trip.
    #[test]
    fn senescence_invariants(
        n in 1u32..12, seed in any::<u64>(), window in 2usize..5,
        flat_steps in 0u32..40, escalate_after in 0u32..40, max_fraction in 0.0f64..1.0,
        min_age in 0u32..60,
        history in prop::collection::vec(prop::collection::vec(-3i32..3, 12), 1..14),
        deaths in prop::collection::vec(any::<bool>(), 14),
    ) {
        let mut g = graph(&[2, n, 1], 0.5, seed);
        let mut tracker = Senescence::new();
        let s = SenescenceSpec { window, epsilon: 0.3, flat_steps, min_age, escalate_after, max_fraction };
        let cap = (max_fraction * n as f64).floor() as usize;
        let mut since = std::collections::BTreeMap::new();
        for (k, row) in history.iter().enumerate() {
            g.advance(10).unwrap();
            let fitness: Vec<f64> = row[..n as usize].iter().map(|&x| x as f64).collect();
            let up = tracker.update(&g, 1, Some(&fitness), &s).unwrap();
            prop_assert!(up.newly_senescent.len() <= cap);
            prop_assert!(up.escalated.len() <= cap);
            for &slot in &up.newly_senescent {
                prop_assert!(up.senescent.contains(&slot));
                let age = g.ages(1)[slot as usize];
                // Flat since its first full window began, at or after its birth.
                prop_assert!(age >= flat_steps && age >= min_age);
                prop_assert!(age as usize >= (window - 1) * 10);
                since.insert(g.ids(1)[slot as usize], g.step());
            }
            for &slot in &up.escalated {
                prop_assert!(up.senescent.contains(&slot));
                let became = since[&g.ids(1)[slot as usize]];
                prop_assert!(g.step() - became >= escalate_after);
            }
            let bytes = tracker.to_bytes();
            prop_assert_eq!(&Senescence::from_bytes(&bytes).unwrap(), &tracker);
            let mut flipped = bytes.clone();
            flipped[k % bytes.len()] ^= 0x10;
            prop_assert!(Senescence::from_bytes(&flipped).is_err(), "a flipped byte was accepted");
            if deaths[k] && !up.escalated.is_empty() {
                g.apoptosis(1, &kill_spec(), None, &up.escalated).unwrap();
                prop_assert!(tracker.senescent(&g, 1).iter().all(|x| !up.escalated.contains(x)));
            }
        }
    }

    /// Diversity is 1 - the best cosine similarity with another row, by brute force.
    #[test]
    fn diversity_matches_brute_force(
        n in 1usize..9, k in 1usize..5,
        values in prop::collection::vec(-3i32..4, 40),
    ) {
        let v: Vec<f64> = values[..n * k].iter().map(|&x| x as f64).collect();
        let p = Profiles::new(&v, n, k).unwrap();
        let cos = |i: usize, j: usize| {
            let (a, b) = (&v[i * k..(i + 1) * k], &v[j * k..(j + 1) * k]);
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let (na, nb) = (a.iter().map(|x| x * x).sum::<f64>().sqrt(), b.iter().map(|x| x * x).sum::<f64>().sqrt());
            if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
        };
        let d = p.diversity();
        for (i, &got) in d.iter().enumerate() {
            let best = (0..n).filter(|&j| j != i).map(|j| cos(i, j)).fold(f64::NEG_INFINITY, f64::max);
            let want = if best.is_finite() { 1.0 - best } else { 1.0 };
            prop_assert!((got - want).abs() < 1e-9);
        }
        // An irrational threshold: no integer profiles sit exactly on it.
        let pairs = p.redundant_pairs(0.618_034).unwrap();
        let mut want: Vec<(u32, u32)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .filter(|&(i, j)| cos(i, j) >= 0.618_034).map(|(i, j)| (i as u32, j as u32)).collect();
        let mut got: Vec<(u32, u32)> = pairs.iter().map(|&(i, j, _)| (i, j)).collect();
        want.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn multi_objective_fitness_of_a_hand_computed_case() {
    let mut g = graph(&[2, 3, 1], 0.5, 1);
    // Neuron 0 moves (mean 0 then 4), neurons 1 and 2 are constant at 1 and 2.
    for mean in [[0.0f32, 1.0, 2.0], [4.0, 1.0, 2.0]] {
        let sq: Vec<f32> = mean.iter().map(|m| m * m).collect();
        let zeros = [0.0f32; 3];
        g.observe(
            1,
            &Observation {
                mean: Some(&mean),
                sq_mean: Some(&sq),
                frac_high: Some(&zeros),
                frac_low: Some(&zeros),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let stability = g.stability(1).unwrap();
    assert!(stability[0] < 1.0);
    // Constant neurons: the EMAs agree up to rounding of their bias correction.
    assert!(stability[1..].iter().all(|&s| s > 0.999), "{stability:?}");

    let importance = [1.0, 2.0, 3.0];
    let diversity = [0.0, 1.0, 0.0];
    let energy = [3.0, 0.0, 0.0];
    let w = ObjectiveWeights {
        importance: 1.0,
        diversity: 2.0,
        stability: 0.0,
        energy: 0.5,
    };
    let scores = g
        .multi_objective_fitness(1, w, Some(&importance), Some(&diversity), Some(&energy))
        .unwrap();
    // z(importance) = [-1.2247, 0, 1.2247]; z(diversity) = [-0.7071, 1.4142, -0.7071];
    // z(energy) = [1.4142, -0.7071, -0.7071].
    let (a, b) = (1.5f64.sqrt(), 2f64.sqrt());
    let want = [
        -a + 2.0 * (-b / 2.0) - 0.5 * b,
        2.0 * b + 0.5 * (b / 2.0),
        a + 2.0 * (-b / 2.0) + 0.5 * (b / 2.0),
    ];
    for (got, want) in scores.fitness.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    // A weighted term must be given; an unweighted one may be left out.
    assert!(g
        .multi_objective_fitness(1, w, Some(&importance), None, Some(&energy))
        .is_err());
    let only_importance = ObjectiveWeights {
        importance: 1.0,
        diversity: 0.0,
        stability: 0.0,
        energy: 0.0,
    };
    let s = g
        .multi_objective_fitness(1, only_importance, Some(&importance), None, None)
        .unwrap();
    assert!(s.diversity.is_empty() && s.energy.is_empty());
    let bad = ObjectiveWeights {
        energy: -1.0,
        ..only_importance
    };
    assert!(g.multi_objective_fitness(1, bad, None, None, None).is_err());
}
