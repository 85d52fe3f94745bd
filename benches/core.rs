//! Criterion benches of the core: building a graph, one batch mutation (drop 10% of the edges,
//! grow as many), folding one observation into the statistics, the per-step reductions that feed
//! it (activation sums, gradient norms over a block's edges), and one exact Katz pass.
//!
//! Run: `cargo bench -p growcore-core --bench core`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::BTreeMap;
use std::time::Duration;

use growcore_core::stats::add_activation_sums;
use growcore_core::{katz, Beta, Direction, Distribution, Graph, InitSpec, Observation};
use rand::{seq::index, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// About one million edges: 1000 -> 1000 -> 1000 at 50% density.
const SIZES: [u32; 3] = [1000, 1000, 1000];
const DENSITY: f64 = 0.5;

fn graph() -> Graph {
    let init = InitSpec {
        density: DENSITY,
        distribution: Distribution::Uniform,
        seed: 7,
        ..Default::default()
    };
    Graph::new(&SIZES, &init).unwrap()
}

/// (rows, cols) of a batch of edges.
type Edges = (Vec<u32>, Vec<u32>);

/// 10% of block (0, 1)'s edges to drop and as many absent positions to grow.
fn churn(g: &Graph) -> (Edges, Edges) {
    let block = g.block((0, 1)).unwrap();
    let (rows, cols) = block.shape();
    let mut present = vec![false; rows as usize * cols as usize];
    let mut edges = Vec::with_capacity(block.nnz());
    for r in 0..rows as usize {
        for p in block.indptr()[r] as usize..block.indptr()[r + 1] as usize {
            let c = block.indices()[p];
            present[r * cols as usize + c as usize] = true;
            edges.push((r as u32, c));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let k = block.nnz() / 10;
    let drop: (Vec<u32>, Vec<u32>) = index::sample(&mut rng, edges.len(), k)
        .into_iter()
        .map(|i| edges[i])
        .unzip();
    let absent: Vec<usize> = (0..present.len()).filter(|&i| !present[i]).collect();
    let grow: (Vec<u32>, Vec<u32>) = index::sample(&mut rng, absent.len(), k)
        .into_iter()
        .map(|i| {
            (
                (absent[i] / cols as usize) as u32,
                (absent[i] % cols as usize) as u32,
            )
        })
        .unzip();
    (drop, grow)
}

fn bench_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("uniform_1M_edges", |b| b.iter(graph));
    group.finish();
}

fn bench_mutate(c: &mut Criterion) {
    let g = graph();
    let ((drop_r, drop_c), (grow_r, grow_c)) = churn(&g);
    let mut group = c.benchmark_group("mutate");
    group.throughput(Throughput::Elements(drop_r.len() as u64 * 2));
    group.bench_function("rewire_10pct_of_500k", |b| {
        b.iter_batched(
            || g.clone(),
            |mut g| {
                g.rewire((0, 1), (&drop_r, &drop_c), (&grow_r, &grow_c))
                    .unwrap();
                g
            },
            BatchSize::LargeInput,
        )
    });
    // A training loop rewires the same graph again and again: drop and grow, then undo it.
    let mut steady = g.clone();
    group.bench_function("rewire_10pct_of_500k_and_back", |b| {
        b.iter(|| {
            steady
                .rewire((0, 1), (&drop_r, &drop_c), (&grow_r, &grow_c))
                .unwrap();
            steady
                .rewire((0, 1), (&grow_r, &grow_c), (&drop_r, &drop_c))
                .unwrap();
        })
    });
    group.finish();
}

fn bench_observe(c: &mut Criterion) {
    let mut g = Graph::new(
        &[784, 4096, 10],
        &InitSpec {
            density: 0.01,
            ..Default::default()
        },
    )
    .unwrap();
    let n = 4096;
    let mean: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
    let sq: Vec<f32> = mean.iter().map(|m| m * m + 0.1).collect();
    let frac: Vec<f32> = (0..n).map(|i| (i % 10) as f32 / 10.0).collect();
    let obs = Observation {
        mean: Some(&mean),
        sq_mean: Some(&sq),
        frac_high: Some(&frac),
        frac_low: Some(&frac),
        grad_norm: Some(&sq),
    };
    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("layer_of_4096", |b| b.iter(|| g.observe(1, &obs).unwrap()));
    group.finish();
}

/// The per-step reductions behind the torch statistics: a batch of 128 outputs of a
/// 1024-neuron layer, and the gradient norms over a 1024 x 1024 block at 10%.
fn bench_step_reductions(c: &mut Criterion) {
    let (rows, neurons) = (128, 1024);
    let x: Vec<f32> = (0..rows * neurons)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let mut sums = vec![0.0f64; 4 * neurons];
    let mut group = c.benchmark_group("step_reductions");
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("activation_sums_128x1024", |b| {
        b.iter(|| add_activation_sums(&x, (neurons, 1), (0.0, 2.0), &mut sums).unwrap())
    });
    let g = Graph::new(
        &[1024, 1024],
        &InitSpec {
            density: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let block = g.block((0, 1)).unwrap();
    let grad: Vec<f32> = (0..1024 * 1024).map(|i| (i as f32 * 0.11).cos()).collect();
    group.throughput(Throughput::Elements(block.nnz() as u64));
    group.bench_function("row_norms_1024x1024_10pct", |b| {
        b.iter(|| block.row_norms(&grad).unwrap())
    });
    group.finish();
}

/// One Katz pass ("in", unweighted, normalised) over the MLP shape,
/// 784 -> 4096 x 3 -> 10 at 20% density (about 7.4M edges).
fn bench_katz(c: &mut Criterion) {
    let g = Graph::new(
        &[784, 4096, 4096, 4096, 10],
        &InitSpec {
            density: 0.2,
            seed: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let none = BTreeMap::new();
    let mut group = c.benchmark_group("katz");
    group.throughput(Throughput::Elements(g.nnz() as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("mlp_7M_edges", |b| {
        b.iter(|| katz(&g, 0.1, Beta::Scalar(1.0), &none, Direction::In, true).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_build,
    bench_mutate,
    bench_observe,
    bench_step_reductions,
    bench_katz
);
criterion_main!(benches);
