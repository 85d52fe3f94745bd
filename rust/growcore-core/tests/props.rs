//! Property tests: random sequences of every mutation, valid and invalid, checked against a
//! reference model that keys edges by neuron ids (so slot compaction and resets are checked
//! independently of the CSR code). After every operation the graph must validate, agree with the
//! model, and be unchanged by any operation that failed.

use std::collections::{BTreeMap, BTreeSet};

use growcore_core::{Distribution, Graph, GrowError, InitSpec, Observation};
use proptest::prelude::*;

type EdgeKey = (u64, u64); // (target id, source id)

#[derive(Clone, Debug, Default)]
struct Model {
    layers: Vec<Vec<u64>>,
    edges: BTreeMap<(u32, u32), BTreeMap<EdgeKey, (u32, bool)>>,
    next_id: u64,
    step: u32,
    ever: BTreeSet<u64>,
}

impl Model {
    fn of(g: &Graph) -> Model {
        let layers: Vec<Vec<u64>> = (0..g.num_layers() as u32)
            .map(|l| g.ids(l).to_vec())
            .collect();
        let mut edges = BTreeMap::new();
        for (&(a, b), block) in g.blocks() {
            let mut map = BTreeMap::new();
            let (births, frozen) = (block.births(), block.frozen());
            for r in 0..block.shape().0 as usize {
                for p in block.indptr()[r] as usize..block.indptr()[r + 1] as usize {
                    let key = (
                        layers[b as usize][r],
                        layers[a as usize][block.indices()[p] as usize],
                    );
                    map.insert(key, (births[p], frozen[p]));
                }
            }
            edges.insert((a, b), map);
        }
        let ever = (0..g.num_ids() as u64).collect();
        Model {
            layers,
            edges,
            next_id: g.num_ids() as u64,
            step: g.step(),
            ever,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    AddEdges {
        block: usize,
        pairs: Vec<(u32, u32)>,
    },
    RemoveEdges {
        block: usize,
        picks: Vec<usize>,
        extra: Option<(u32, u32)>,
    },
    Freeze {
        block: usize,
        picks: Vec<usize>,
        frozen: bool,
    },
    AddBlock {
        a: u32,
        b: u32,
    },
    RemoveBlock {
        block: usize,
    },
    AddNeurons {
        layer: u32,
        count: u32,
        with_parent: bool,
    },
    RemoveNeurons {
        layer: u32,
        slots: Vec<u32>,
    },
    ResetNeurons {
        layer: u32,
        slots: Vec<u32>,
    },
    Advance {
        steps: u64,
    },
    Observe {
        layer: u32,
        values: Vec<f32>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let pairs = prop::collection::vec((0u32..8, 0u32..8), 0..6);
    let picks = prop::collection::vec(0usize..64, 0..5);
    let slots = prop::collection::vec(0u32..8, 0..4);
    prop_oneof![
        4 => (0usize..8, pairs).prop_map(|(block, pairs)| Op::AddEdges { block, pairs }),
        3 => (0usize..8, picks.clone(), prop::option::weighted(0.2, (0u32..8, 0u32..8)))
            .prop_map(|(block, picks, extra)| Op::RemoveEdges { block, picks, extra }),
        2 => (0usize..8, picks, any::<bool>()).prop_map(|(block, picks, frozen)| Op::Freeze { block, picks, frozen }),
        1 => (0u32..5, 0u32..5).prop_map(|(a, b)| Op::AddBlock { a, b }),
        1 => (0usize..8).prop_map(|block| Op::RemoveBlock { block }),
        2 => (0u32..4, 0u32..4, any::<bool>()).prop_map(|(layer, count, with_parent)| Op::AddNeurons { layer, count, with_parent }),
        2 => (0u32..4, slots.clone()).prop_map(|(layer, slots)| Op::RemoveNeurons { layer, slots }),
        2 => (0u32..4, slots).prop_map(|(layer, slots)| Op::ResetNeurons { layer, slots }),
        1 => (0u64..5).prop_map(|steps| Op::Advance { steps }),
        1 => (0u32..4, prop::collection::vec(prop_oneof![Just(f32::NAN), -2.0f32..2.0], 8))
            .prop_map(|(layer, values)| Op::Observe { layer, values }),
    ]
}

/// Slot pairs (row, col) of the model's edges of a block, in a stable order.
fn slot_pairs(m: &Model, key: (u32, u32)) -> Vec<((u32, u32), bool)> {
    let slot = |layer: u32, id: u64| {
        m.layers[layer as usize]
            .iter()
            .position(|&x| x == id)
            .unwrap() as u32
    };
    m.edges[&key]
        .iter()
        .map(|(&(t, s), &(_, f))| ((slot(key.1, t), slot(key.0, s)), f))
        .collect()
}

fn nth_block(g: &Graph, i: usize) -> Option<(u32, u32)> {
    let keys = g.block_keys();
    (!keys.is_empty()).then(|| keys[i % keys.len()])
}

/// Applies `op` to the graph and the model; returns whether the model expected success.
fn apply(g: &mut Graph, m: &mut Model, op: &Op) -> (bool, Result<(), GrowError>) {
    match op {
        Op::AddEdges { block, pairs } => {
            let Some(key) = nth_block(g, *block) else {
                return (true, Ok(()));
            };
            let (rows, cols): (Vec<u32>, Vec<u32>) = pairs.iter().copied().unzip();
            let (n_rows, n_cols) = (
                m.layers[key.1 as usize].len() as u32,
                m.layers[key.0 as usize].len() as u32,
            );
            let in_range = pairs.iter().all(|&(r, c)| r < n_rows && c < n_cols);
            let unique = pairs.iter().collect::<BTreeSet<_>>().len() == pairs.len();
            let ok = in_range && unique && {
                let ids: Vec<EdgeKey> = pairs
                    .iter()
                    .map(|&(r, c)| {
                        (
                            m.layers[key.1 as usize][r as usize],
                            m.layers[key.0 as usize][c as usize],
                        )
                    })
                    .collect();
                ids.iter().all(|k| !m.edges[&key].contains_key(k))
            };
            if ok {
                for &(r, c) in pairs {
                    let k = (
                        m.layers[key.1 as usize][r as usize],
                        m.layers[key.0 as usize][c as usize],
                    );
                    m.edges.get_mut(&key).unwrap().insert(k, (m.step, false));
                }
            }
            (ok, g.add_edges(key, &rows, &cols))
        }
        Op::RemoveEdges {
            block,
            picks,
            extra,
        } => {
            let Some(key) = nth_block(g, *block) else {
                return (true, Ok(()));
            };
            let existing = slot_pairs(m, key);
            let mut chosen: Vec<((u32, u32), bool)> = Vec::new();
            if !existing.is_empty() {
                for &p in picks {
                    let e = existing[p % existing.len()];
                    if !chosen.contains(&e) {
                        chosen.push(e);
                    }
                }
            }
            let mut pairs: Vec<(u32, u32)> = chosen.iter().map(|&(p, _)| p).collect();
            let mut ok = chosen.iter().all(|&(_, frozen)| !frozen);
            if let Some(x) = extra {
                pairs.push(*x); // maybe absent, out of range or a repeat: then the call must fail
                let present = existing.iter().find(|&&(p, _)| p == *x);
                let repeat = chosen.iter().any(|&(p, _)| p == *x);
                ok =
                    chosen.iter().all(|&(_, f)| !f) && present.is_some_and(|&(_, f)| !f) && !repeat;
            }
            if ok {
                let slot_to_id = |layer: u32, s: u32| m.layers[layer as usize][s as usize];
                for &(r, c) in &pairs {
                    let k = (slot_to_id(key.1, r), slot_to_id(key.0, c));
                    m.edges.get_mut(&key).unwrap().remove(&k);
                }
            }
            let (rows, cols): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
            (ok, g.remove_edges(key, &rows, &cols))
        }
        Op::Freeze {
            block,
            picks,
            frozen,
        } => {
            let Some(key) = nth_block(g, *block) else {
                return (true, Ok(()));
            };
            let existing = slot_pairs(m, key);
            if existing.is_empty() {
                return (true, Ok(()));
            }
            let pairs: Vec<(u32, u32)> = picks
                .iter()
                .map(|&p| existing[p % existing.len()].0)
                .collect();
            for &(r, c) in &pairs {
                let k = (
                    m.layers[key.1 as usize][r as usize],
                    m.layers[key.0 as usize][c as usize],
                );
                m.edges.get_mut(&key).unwrap().get_mut(&k).unwrap().1 = *frozen;
            }
            let (rows, cols): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
            (true, g.set_frozen(key, &rows, &cols, *frozen))
        }
        Op::AddBlock { a, b } => {
            let n = m.layers.len() as u32;
            let ok = a < b && *b < n && !m.edges.contains_key(&(*a, *b));
            if ok {
                m.edges.insert((*a, *b), BTreeMap::new());
            }
            (ok, g.add_block(*a, *b))
        }
        Op::RemoveBlock { block } => {
            let Some(key) = nth_block(g, *block) else {
                return (true, Ok(()));
            };
            let ok = m.edges[&key].values().all(|&(_, f)| !f);
            if ok {
                m.edges.remove(&key);
            }
            (ok, g.remove_block(key.0, key.1))
        }
        Op::AddNeurons {
            layer,
            count,
            with_parent,
        } => {
            let layer = layer % m.layers.len() as u32;
            let parents: Vec<Vec<i64>> = if *with_parent {
                (0..*count)
                    .map(|i| vec![(i as u64 % m.next_id) as i64])
                    .collect()
            } else {
                vec![]
            };
            for _ in 0..*count {
                m.layers[layer as usize].push(m.next_id);
                m.ever.insert(m.next_id);
                m.next_id += 1;
            }
            (true, g.add_neurons(layer, *count, &parents).map(|_| ()))
        }
        Op::RemoveNeurons { layer, slots } => {
            let layer = layer % m.layers.len() as u32;
            let size = m.layers[layer as usize].len() as u32;
            let unique = slots.iter().collect::<BTreeSet<_>>().len() == slots.len();
            let in_range = slots.iter().all(|&s| s < size);
            let mut ok = unique && in_range && (slots.len() as u32) < size;
            let gone: BTreeSet<u64> = if in_range {
                slots
                    .iter()
                    .map(|&s| m.layers[layer as usize][s as usize])
                    .collect()
            } else {
                BTreeSet::new()
            };
            let touches_frozen = m.edges.iter().any(|(&(a, b), edges)| {
                edges.iter().any(|(&(t, s), &(_, f))| {
                    f && ((b == layer && gone.contains(&t)) || (a == layer && gone.contains(&s)))
                })
            });
            ok &= !touches_frozen;
            if ok {
                m.layers[layer as usize].retain(|id| !gone.contains(id));
                for (&(a, b), edges) in m.edges.iter_mut() {
                    edges.retain(|&(t, s), _| {
                        !((b == layer && gone.contains(&t)) || (a == layer && gone.contains(&s)))
                    });
                }
            }
            (ok, g.remove_neurons(layer, slots).map(|_| ()))
        }
        Op::ResetNeurons { layer, slots } => {
            let layer = layer % m.layers.len() as u32;
            let size = m.layers[layer as usize].len() as u32;
            let ok = slots.iter().collect::<BTreeSet<_>>().len() == slots.len()
                && slots.iter().all(|&s| s < size);
            if ok {
                for &s in slots {
                    let old = m.layers[layer as usize][s as usize];
                    let new = m.next_id;
                    m.next_id += 1;
                    m.ever.insert(new);
                    m.layers[layer as usize][s as usize] = new;
                    for (&(a, b), edges) in m.edges.iter_mut() {
                        if a != layer && b != layer {
                            continue;
                        }
                        let moved: Vec<(EdgeKey, (u32, bool))> = edges
                            .iter()
                            .filter(|(&(t, s), _)| t == old || s == old)
                            .map(|(&k, &v)| (k, v))
                            .collect();
                        for ((t, s), v) in moved {
                            edges.remove(&(t, s));
                            let t = if t == old { new } else { t };
                            let s = if s == old { new } else { s };
                            edges.insert((t, s), v);
                        }
                    }
                }
            }
            (ok, g.reset_neurons(layer, slots).map(|_| ()))
        }
        Op::Advance { steps } => {
            m.step += *steps as u32;
            (true, g.advance(*steps).map(|_| ()))
        }
        Op::Observe { layer, values } => {
            let layer = layer % m.layers.len() as u32;
            let n = m.layers[layer as usize].len();
            let v: Vec<f32> = values.iter().cycle().take(n).copied().collect();
            let grad: Vec<f32> = v.iter().map(|x| x.abs()).collect();
            let obs = Observation {
                grad_norm: Some(&grad),
                ..Default::default()
            };
            (true, g.observe(layer, &obs))
        }
    }
}

fn build(sizes: &[u32], density: f64, erk: bool, seed: u64) -> Graph {
    let init = InitSpec {
        density,
        distribution: if erk {
            Distribution::Erk
        } else {
            Distribution::Uniform
        },
        seed,
        ..Default::default()
    };
    Graph::new(sizes, &init).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn mutations_keep_invariants_and_match_the_model(
        sizes in prop::collection::vec(1u32..7, 2..5),
        density in 0.0f64..=1.0,
        erk in any::<bool>(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..25),
    ) {
        let mut g = build(&sizes, density, erk, seed);
        let mut m = Model::of(&g);
        for op in &ops {
            let before = g.clone();
            let model_before = m.clone();
            let (expected_ok, result) = apply(&mut g, &mut m, op);
            prop_assert_eq!(result.is_ok(), expected_ok, "op {:?} gave {:?}", op, result);
            if result.is_err() {
                prop_assert_eq!(&g, &before, "a failed {:?} changed the graph", op);
                m = model_before;
            }
            g.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let seen = Model::of(&g);
            prop_assert_eq!(&seen.layers, &m.layers);
            prop_assert_eq!(&seen.edges, &m.edges);
            prop_assert_eq!(g.num_ids() as u64, m.next_id, "ids are issued once each");
            prop_assert_eq!(g.nnz(), m.edges.values().map(BTreeMap::len).sum::<usize>());
        }
        let back = Graph::from_bytes(&g.to_bytes()).unwrap();
        prop_assert_eq!(&back, &g);
        let back = Graph::from_state(g.to_state()).unwrap();
        prop_assert_eq!(back, g);
    }

    /// Any change to a graph's bytes (a flipped byte, a cut, an extra byte) is refused: no
    /// corruption decodes into another graph that would load silently.
    #[test]
    fn changed_bytes_are_refused(
        sizes in prop::collection::vec(1u32..12, 2..5),
        density in 0.0f64..=1.0,
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in 1usize..16,
    ) {
        let g = build(&sizes, density, true, seed);
        let bytes = g.to_bytes();
        let mut flipped = bytes.clone();
        flipped[at.index(bytes.len())] ^= xor;
        prop_assert!(Graph::from_bytes(&flipped).is_err());
        prop_assert!(Graph::from_bytes(&bytes[..bytes.len().saturating_sub(cut)]).is_err());
        let mut longer = bytes.clone();
        longer.push(xor);
        prop_assert!(Graph::from_bytes(&longer).is_err());
        prop_assert_eq!(Graph::from_bytes(&bytes).unwrap(), g);
    }

    #[test]
    fn initial_counts_are_exact(
        sizes in prop::collection::vec(1u32..40, 2..6),
        density in 0.0f64..=1.0,
        erk in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let g = build(&sizes, density, erk, seed);
        let capacity: u64 = sizes.windows(2).map(|w| w[0] as u64 * w[1] as u64).sum();
        if erk {
            prop_assert_eq!(g.nnz() as u64, (density * capacity as f64).round() as u64);
        }
        for (&(a, b), block) in g.blocks() {
            prop_assert!(block.nnz() as u64 <= sizes[a as usize] as u64 * sizes[b as usize] as u64);
            if !erk {
                let cap = block.capacity();
                prop_assert_eq!(block.nnz() as u64, (density * cap as f64).round() as u64);
            }
        }
        prop_assert_eq!(&build(&sizes, density, erk, seed), &g, "a seed fixes the structure");
    }
}
