//! Extrema detection, cloning and routing.
#![allow(clippy::type_complexity)]

use growcore_core::{
    Activation, CloneType, ExtremaSpec, Graph, GrowError, GrowSpec, Load, Observation,
};
use proptest::prelude::*;

mod common;
use common::graph;

fn lists(g: &Graph, entries: &[(usize, &[u32])]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); g.num_layers()];
    for (layer, slots) in entries {
        out[*layer] = slots.to_vec();
    }
    out
}

fn no_clones() -> GrowSpec {
    GrowSpec {
        clone_budget: 0,
        ..Default::default()
    }
}

type Edges = Vec<((u32, u32), Vec<u64>, Vec<u32>)>;

fn edges_of(g: &Graph) -> Edges {
    g.blocks()
        .map(|(k, b)| (*k, b.indptr().to_vec(), b.indices().to_vec()))
        .collect()
}

// ---------------------------------------------------------------------------- extrema

#[test]
fn presets_put_the_thresholds_inside_the_range() {
    assert_eq!(Activation::Tanh.thresholds(0.1).unwrap(), (-0.9, 0.9));
    assert_eq!(Activation::Sigmoid.thresholds(0.1).unwrap(), (0.1, 0.9));
    assert_eq!(Activation::Relu.thresholds(0.1).unwrap().0, 0.1);
    assert!(Activation::Tanh.thresholds(1.0).is_err());
    assert!(Activation::Sigmoid.thresholds(0.0).is_err());
    let err = Activation::Tanh.check_thresholds(-0.5, 1.5).unwrap_err();
    assert!(
        err.to_string().contains("high") && err.to_string().contains("1.5"),
        "{err}"
    );
    let err = Activation::Sigmoid.check_thresholds(-0.1, 0.5).unwrap_err();
    assert!(err.to_string().contains("low"), "{err}");
    Activation::Relu
        .check_thresholds(0.0, f64::INFINITY)
        .unwrap();
}

fn observe(g: &mut Graph, layer: u32, mean: &[f32], sq: &[f32], high: &[f32], low: &[f32]) {
    let obs = Observation {
        mean: Some(mean),
        sq_mean: Some(sq),
        frac_high: Some(high),
        frac_low: Some(low),
        grad_norm: None,
    };
    g.observe(layer, &obs).unwrap();
}

#[test]
fn tanh_extrema_are_the_saturated_fractions_above_q() {
    let mut g = graph(&[2, 4, 1], 1.0, 0);
    observe(
        &mut g,
        1,
        &[0.0; 4],
        &[0.5; 4],
        &[0.8, 0.1, 0.6, 0.0],
        &[0.0, 0.7, 0.1, 0.2],
    );
    let e = g.extrema(1, &ExtremaSpec::new(Activation::Tanh)).unwrap();
    assert_eq!(e.high, vec![0, 2]); // strongest first
    assert_eq!(e.low, vec![1]);
    assert!((e.high_score[0] - 0.8).abs() < 1e-6);
    // Newborns (no observation) are neither.
    g.add_neurons(1, 1, &[]).unwrap();
    let e = g.extrema(1, &ExtremaSpec::new(Activation::Tanh)).unwrap();
    assert!(!e.high.contains(&4) && !e.low.contains(&4));
}

#[test]
fn relu_low_is_dead_or_quiet_and_high_is_the_persistently_largest_mean() {
    let mut g = graph(&[2, 10, 1], 1.0, 0);
    let mean: Vec<f32> = vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0];
    // Variance = sq - mean^2: neuron 3 is the quietest live one.
    let sq: Vec<f32> = mean
        .iter()
        .enumerate()
        .map(|(i, m)| m * m + if i == 3 { 0.01 } else { 1.0 })
        .collect();
    let mut low = vec![0.0f32; 10];
    low[0] = 0.95;
    observe(&mut g, 1, &mean, &sq, &[0.0; 10], &low);
    let e = g.extrema(1, &ExtremaSpec::new(Activation::Relu)).unwrap();
    assert_eq!(e.low, vec![0, 3], "dead first, then the quietest");
    assert_eq!(e.high, vec![9]);
}

// ---------------------------------------------------------------------------- cloning

#[test]
fn a_horizontal_clone_copies_every_edge_of_its_source() {
    let mut g = graph(&[5, 6, 6, 3], 0.5, 3);
    g.add_block(1, 3).unwrap();
    g.add_edges((1, 3), &[0, 2], &[4, 4]).unwrap();
    let before = g.clone();
    let spec = GrowSpec {
        clone_type: CloneType::Horizontal,
        ..no_clones()
    };
    let spec = GrowSpec {
        clone_budget: 1,
        ..spec
    };
    let plan = g
        .grow(&lists(&g, &[(1, &[4])]), &lists(&g, &[]), None, &spec)
        .unwrap();
    assert_eq!(plan.clones.len(), 1);
    let c = &plan.clones[0];
    assert!(!c.vertical);
    assert_eq!((c.layer, c.slot, c.source_slot), (1, 6, 4));
    assert_eq!(g.lineage()[c.id as usize].parents[0], Some(c.source_id));
    let incoming = |g: &Graph, s: u32| -> Vec<u32> {
        (0..5)
            .filter(|&col| g.block((0, 1)).unwrap().find(s, col).is_some())
            .collect()
    };
    assert_eq!(incoming(&g, 6), incoming(&before, 4));
    for key in [(1, 2), (1, 3)] {
        let rows = g.block(key).unwrap().shape().0;
        for r in 0..rows {
            let b = g.block(key).unwrap();
            assert_eq!(
                b.find(r, 6).is_some(),
                b.find(r, 4).is_some(),
                "block {key:?} row {r}"
            );
        }
    }
    assert_eq!(plan.routes, vec![]);
}

#[test]
fn a_vertical_clone_reads_its_sources_inputs_one_layer_up() {
    let mut g = graph(&[4, 5, 5, 5, 2], 0.6, 7);
    let before = g.clone();
    let spec = GrowSpec {
        clone_type: CloneType::Vertical,
        clone_budget: 1,
        ..no_clones()
    };
    let plan = g
        .grow(&lists(&g, &[(1, &[2])]), &lists(&g, &[]), None, &spec)
        .unwrap();
    let c = &plan.clones[0];
    assert!(c.vertical);
    assert_eq!((c.layer, c.slot), (2, 5));
    assert_eq!(plan.new_blocks, vec![(0, 2)]);
    let x_inputs: Vec<u32> = (0..4)
        .filter(|&i| before.block((0, 1)).unwrap().find(2, i).is_some())
        .collect();
    let c_inputs: Vec<u32> = (0..4)
        .filter(|&i| g.block((0, 2)).unwrap().find(5, i).is_some())
        .collect();
    assert_eq!(c_inputs, x_inputs);
    // Outputs: layer-3 neurons fed by X's layer-2 targets.
    let targets: Vec<u32> = (0..5)
        .filter(|&t| before.block((1, 2)).unwrap().find(t, 2).is_some())
        .collect();
    let around: Vec<u32> = (0..5)
        .filter(|&u| {
            targets
                .iter()
                .any(|&t| before.block((2, 3)).unwrap().find(u, t).is_some())
        })
        .collect();
    let c_outputs: Vec<u32> = (0..5)
        .filter(|&u| g.block((2, 3)).unwrap().find(u, 5).is_some())
        .collect();
    assert_eq!(c_outputs, around);
    // Nothing else changed.
    assert_eq!(
        g.block((1, 2)).unwrap().nnz(),
        before.block((1, 2)).unwrap().nnz()
    );
}

#[test]
fn the_last_hidden_layer_has_no_vertical_clone_and_limits_hold() {
    let mut g = graph(&[3, 4, 4, 2], 1.0, 1);
    let spec = GrowSpec {
        clone_type: CloneType::Both,
        clone_budget: 10,
        max_layer_size: Some(5),
        ..no_clones()
    };
    let plan = g
        .grow(
            &lists(&g, &[(1, &[0, 1]), (2, &[0, 1])]),
            &lists(&g, &[]),
            None,
            &spec,
        )
        .unwrap();
    assert!(plan
        .clones
        .iter()
        .all(|c| !(c.vertical && c.source_layer == 2)));
    assert_eq!(
        g.layer_sizes(),
        vec![3, 5, 5, 2],
        "max_layer_size caps each layer"
    );
    // Dense [3, 4, 4, 2]: 36 edges and 10 biases; a horizontal clone of layer 1 costs 3 + 4 + 1.
    let horizontal_clones = |budget: u32, max_params: Option<u64>| {
        let mut g = graph(&[3, 4, 4, 2], 1.0, 1);
        let spec = GrowSpec {
            clone_type: CloneType::Horizontal,
            clone_budget: budget,
            max_params,
            ..no_clones()
        };
        let high = lists(&g, &[(1, &[0, 1, 2, 3])]);
        g.grow(&high, &lists(&g, &[]), None, &spec)
            .unwrap()
            .clones
            .len()
    };
    assert_eq!(
        horizontal_clones(10, Some(36 + 10 + 2 * 8)),
        2,
        "max_params caps the clones"
    );
    assert_eq!(horizontal_clones(3, None), 3, "the budget caps the clones");
}

// ---------------------------------------------------------------------------- errors

#[test]
fn bad_growth_input_is_rejected_and_changes_nothing() {
    let g0 = graph(&[3, 4, 4, 2], 0.5, 1);
    let cases: Vec<(
        Vec<Vec<u32>>,
        Vec<Vec<u32>>,
        Option<Vec<f64>>,
        GrowSpec,
        &str,
    )> = vec![
        (
            lists(&g0, &[(0, &[1])]),
            lists(&g0, &[]),
            None,
            GrowSpec::default(),
            "high[0]",
        ),
        (
            lists(&g0, &[]),
            lists(&g0, &[(3, &[1])]),
            None,
            GrowSpec::default(),
            "low[3]",
        ),
        (
            lists(&g0, &[(1, &[9])]),
            lists(&g0, &[]),
            None,
            GrowSpec::default(),
            "high[1][0]",
        ),
        (
            lists(&g0, &[(1, &[1, 1])]),
            lists(&g0, &[]),
            None,
            GrowSpec::default(),
            "high[1][1]",
        ),
        (
            lists(&g0, &[(1, &[1])]),
            lists(&g0, &[(1, &[1])]),
            None,
            GrowSpec::default(),
            "low[1]",
        ),
        (
            vec![vec![]],
            lists(&g0, &[]),
            None,
            GrowSpec::default(),
            "high",
        ),
        (
            lists(&g0, &[(1, &[1])]),
            lists(&g0, &[]),
            Some(vec![1.0; 3]),
            GrowSpec::default(),
            "katz",
        ),
        (
            lists(&g0, &[(1, &[1])]),
            lists(&g0, &[]),
            Some(vec![f64::NAN; 13]),
            GrowSpec::default(),
            "katz[0]",
        ),
        (
            lists(&g0, &[(1, &[1])]),
            lists(&g0, &[]),
            None,
            GrowSpec {
                radius: 0,
                ..Default::default()
            },
            "radius",
        ),
    ];
    for (high, low, katz, spec, arg) in cases {
        let mut g = g0.clone();
        let err = g.grow(&high, &low, katz.as_deref(), &spec).unwrap_err();
        let named = match &err {
            GrowError::InvalidArgument { arg, .. } | GrowError::OutOfRange { arg, .. } => {
                arg.clone()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(named, arg, "{err}");
        assert_eq!(g, g0, "{arg}: the graph changed");
    }
}

// ---------------------------------------------------------------------------- routing

#[test]
fn katz_guidance_gives_the_most_central_source_twice_the_routes() {
    let mut g = graph(&[2, 4, 8, 8, 2], 0.0, 0);
    let mut katz = vec![1.0; g.num_neurons()];
    katz[2 + 1] = 4.0; // layer 1, slot 1: the most central source
    let spec = GrowSpec {
        routes_per_source: 2,
        ..no_clones()
    };
    let low: Vec<u32> = (0..8).collect();
    let plan = g
        .grow(
            &lists(&g, &[(1, &[0, 1])]),
            &lists(&g, &[(2, &low), (3, &low)]),
            Some(&katz),
            &spec,
        )
        .unwrap();
    let from = |s: u32| plan.routes.iter().filter(|r| r.src_slot == s).count();
    assert_eq!(from(1), 4);
    assert_eq!(from(0), 1, "0.25 normalised: max(1, round(2 * 2 * 0.25))");
    assert_eq!(
        plan.routes[0].src_slot, 1,
        "the most central source is served first"
    );
}

#[test]
fn ties_go_to_the_higher_katz_target_then_the_smaller_id() {
    let mut g = graph(&[2, 2, 4, 2], 0.0, 0);
    let mut katz = vec![0.0; g.num_neurons()];
    katz[4 + 2] = 1.0;
    let spec = GrowSpec {
        routes_per_source: 2,
        ..no_clones()
    };
    let plan = g
        .grow(
            &lists(&g, &[(1, &[0])]),
            &lists(&g, &[(2, &[0, 1, 2, 3])]),
            None,
            &spec,
        )
        .unwrap();
    let dst: Vec<u32> = plan.routes.iter().map(|r| r.dst_slot).collect();
    assert_eq!(dst, vec![0, 1], "without Katz, by id");
    let mut g = graph(&[2, 2, 4, 2], 0.0, 0);
    let plan = g
        .grow(
            &lists(&g, &[(1, &[0])]),
            &lists(&g, &[(2, &[0, 1, 2, 3])]),
            Some(&katz),
            &spec,
        )
        .unwrap();
    // Katz scores are all zero but one, so the source's normalised score is 0: one route.
    let dst: Vec<u32> = plan.routes.iter().map(|r| r.dst_slot).collect();
    assert_eq!(dst, vec![2]);
}

fn sizes_strategy() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(1u32..7, 3..6).prop_map(|mut h| {
        h.insert(0, 3);
        h.push(2);
        h
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Routed edges go forward, from high to low, within the radius, to hidden targets, never
    /// duplicate an edge, never push a fan-in above the cap; the graph holds exactly the old
    /// edges plus the routes.
    #[test]
    fn routes_respect_every_rule(
        sizes in sizes_strategy(),
        density in 0.0f64..1.0,
        seed in 0u64..1000,
        radius in 1u32..4,
        per_source in 1u32..4,
        cap in prop::option::of(0u64..8),
        event_load in any::<bool>(),
        picks in prop::collection::vec(0u8..3, 40),
    ) {
        let mut g = graph(&sizes, density, seed);
        let layers = g.num_layers();
        let mut high = vec![Vec::new(); layers];
        let mut low = vec![Vec::new(); layers];
        let mut k = 0;
        for l in 1..layers - 1 {
            for s in 0..sizes[l] {
                match picks[k % picks.len()] {
                    1 => high[l].push(s),
                    2 => low[l].push(s),
                    _ => {}
                }
                k += 1;
            }
        }
        let before = g.clone();
        let spec = GrowSpec {
            radius,
            routes_per_source: per_source,
            fan_in_cap: cap,
            load: if event_load { Load::Event } else { Load::FanIn },
            ..no_clones()
        };
        let plan = g.grow(&high, &low, None, &spec).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in &plan.routes {
            prop_assert!(r.dst_layer > r.src_layer && r.dst_layer - r.src_layer <= radius);
            prop_assert!((r.dst_layer as usize) < layers - 1);
            prop_assert!(high[r.src_layer as usize].contains(&r.src_slot));
            prop_assert!(low[r.dst_layer as usize].contains(&r.dst_slot));
            prop_assert!(seen.insert(*r), "a route twice");
            let existed = before.block((r.src_layer, r.dst_layer)).ok()
                .is_some_and(|b| b.find(r.dst_slot, r.src_slot).is_some());
            prop_assert!(!existed, "a route duplicates an edge");
            prop_assert!(g.block((r.src_layer, r.dst_layer)).unwrap().find(r.dst_slot, r.src_slot).is_some());
        }
        for s in &seen {
            let per = plan.routes.iter().filter(|r| (r.src_layer, r.src_slot) == (s.src_layer, s.src_slot)).count();
            prop_assert!(per as u32 <= per_source);
        }
        prop_assert_eq!(g.nnz(), before.nnz() + plan.routes.len());
        if let Some(cap) = cap {
            for l in 1..layers - 1 {
                let (old, new) = (before.fan_in(l as u32), g.fan_in(l as u32));
                for (o, n) in old.iter().zip(&new) {
                    prop_assert!(n == o || *n <= cap, "fan-in {o} -> {n} above cap {cap}");
                }
            }
        }
        g.validate().unwrap();
    }

    /// When every source may reach every target and nothing is connected yet, the targets'
    /// loads differ by at most one.
    #[test]
    fn loads_among_equally_eligible_targets_differ_by_at_most_one(
        sources in 1u32..6,
        targets in 1u32..9,
        per_source in 1u32..5,
        event_load in any::<bool>(),
    ) {
        let mut g = graph(&[2, sources, targets, 2], 0.0, 0);
        let high = lists(&g, &[(1, &(0..sources).collect::<Vec<_>>())]);
        let low = lists(&g, &[(2, &(0..targets).collect::<Vec<_>>())]);
        let spec = GrowSpec {
            routes_per_source: per_source,
            load: if event_load { Load::Event } else { Load::FanIn },
            ..no_clones()
        };
        let plan = g.grow(&high, &low, None, &spec).unwrap();
        prop_assert_eq!(plan.routes.len() as u32, sources * per_source.min(targets));
        let fan_in = g.fan_in(2);
        let (lo, hi) = (fan_in.iter().min().unwrap(), fan_in.iter().max().unwrap());
        prop_assert!(hi - lo <= 1, "loads {:?}", fan_in);
    }

    /// The same graph and extrema give the same plan; clones keep every invariant of the graph.
    #[test]
    fn growth_is_deterministic_and_keeps_the_graph_valid(
        sizes in sizes_strategy(),
        density in 0.1f64..1.0,
        seed in 0u64..1000,
        budget in 0u32..6,
        kind in 0u8..3,
    ) {
        let g0 = graph(&sizes, density, seed);
        let layers = g0.num_layers();
        let mut high = vec![Vec::new(); layers];
        let mut low = vec![Vec::new(); layers];
        for l in 1..layers - 1 {
            high[l].push(0);
            if sizes[l] > 1 { low[l].push(sizes[l] - 1); }
        }
        let spec = GrowSpec {
            clone_type: [CloneType::Vertical, CloneType::Horizontal, CloneType::Both][kind as usize],
            clone_budget: budget,
            ..Default::default()
        };
        let (mut a, mut b) = (g0.clone(), g0.clone());
        let pa = a.grow(&high, &low, None, &spec).unwrap();
        let pb = b.grow(&high, &low, None, &spec).unwrap();
        prop_assert_eq!(&pa, &pb);
        prop_assert_eq!(edges_of(&a), edges_of(&b));
        prop_assert!(pa.clones.len() as u32 <= budget);
        a.validate().unwrap();
        let added: u32 = a.layer_sizes().iter().sum::<u32>() - g0.layer_sizes().iter().sum::<u32>();
        prop_assert_eq!(added as usize, pa.clones.len());
    }
}
