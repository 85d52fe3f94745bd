//! Helpers shared by the integration tests.

use growcore_core::{Graph, InitSpec};

/// A graph of `sizes` with uniform initial `density`, seeded.
pub fn graph(sizes: &[u32], density: f64, seed: u64) -> Graph {
    let init = InitSpec {
        density,
        seed,
        ..Default::default()
    };
    Graph::new(sizes, &init).unwrap()
}
