//! Python bindings of growcore: one thin file per exposed type, one place for error mapping.

mod analysis;
mod convert;
mod errors;
mod graph;
mod growth;
mod lifecycle;
mod state;
mod stats;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::analysis::{katz, katz_adjacency};
    #[pymodule_export]
    use super::graph::PyGraph;
    #[pymodule_export]
    use super::growth::saturation_thresholds;
    #[pymodule_export]
    use super::lifecycle::{diversity, redundant_pairs, PySenescence};
    #[pymodule_export]
    use super::stats::add_activation_sums;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
