//! Graph analysis functions: convert arguments, compute in the core without the GIL.

use std::collections::BTreeMap;

use growcore_core::{katz as core_katz, Beta, BlockKey, Direction};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt};

use crate::convert::f64_vec;
use crate::errors::OrRaise;
use crate::graph::{block_key_arg, PyGraph};

/// `beta` as read from Python, owned so the computation can run without the GIL.
enum BetaArg {
    Scalar(f64),
    PerNeuron(Vec<f64>),
}

/// Exact Katz centrality of every neuron of a growcore Graph, in global slot order (layer 0's
/// slots first). See `growcore.katz`.
#[pyfunction]
#[pyo3(signature = (graph, alpha=0.1, beta=None, weights=None, direction="in", normalized=true))]
pub fn katz<'py>(
    py: Python<'py>,
    graph: &Bound<'py, PyGraph>,
    alpha: f64,
    beta: Option<&Bound<'py, PyAny>>,
    weights: Option<&Bound<'py, PyDict>>,
    direction: &str,
    normalized: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let direction = Direction::parse(direction).or_raise()?;
    let beta = match beta {
        None => BetaArg::Scalar(1.0),
        Some(b) if b.is_instance_of::<PyFloat>() || b.is_instance_of::<PyInt>() => {
            BetaArg::Scalar(b.extract()?)
        }
        Some(b) => BetaArg::PerNeuron(f64_vec(b, "beta")?),
    };
    let mut per_block: BTreeMap<BlockKey, Vec<f64>> = BTreeMap::new();
    if let Some(weights) = weights {
        for (key, value) in weights.iter() {
            let key = block_key_arg(&key, "weights")?;
            per_block.insert(key, f64_vec(&value, &format!("weights[{key:?}]"))?);
        }
    }
    let graph = graph.get();
    let x = py
        .detach(|| {
            let beta = match &beta {
                BetaArg::Scalar(b) => Beta::Scalar(*b),
                BetaArg::PerNeuron(values) => Beta::PerNeuron(values),
            };
            core_katz(
                &graph.graph(),
                alpha,
                beta,
                &per_block,
                direction,
                normalized,
            )
        })
        .or_raise()?;
    Ok(x.into_pyarray(py))
}
