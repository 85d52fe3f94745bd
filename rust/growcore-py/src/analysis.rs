//! Graph analysis functions: convert arguments, compute in the core without the GIL.

use std::collections::BTreeMap;

use growcore_core::{
    katz as core_katz, katz_general, Adjacency, Beta, BlockKey, Direction, Iteration,
};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

use crate::convert::{describe, dict_arg, f64_vec, int_not_bool, int_vec};
use crate::errors::{invalid, OrRaise};
use crate::graph::{block_key_arg, PyGraph};

/// `beta` as read from Python, owned so the computation can run without the GIL.
enum BetaArg {
    Scalar(f64),
    PerNeuron(Vec<f64>),
}

impl BetaArg {
    fn as_beta(&self) -> Beta<'_> {
        match self {
            BetaArg::Scalar(b) => Beta::Scalar(*b),
            BetaArg::PerNeuron(values) => Beta::PerNeuron(values),
        }
    }
}

fn beta_arg(beta: Option<&Bound<'_, PyAny>>) -> PyResult<BetaArg> {
    Ok(match beta {
        None => BetaArg::Scalar(1.0),
        // A number, a numpy scalar or a 0-d array is one beta for every neuron.
        Some(b)
            if b.is_instance_of::<PyFloat>()
                || b.is_instance_of::<PyInt>()
                || b.getattr("ndim")
                    .and_then(|n| n.extract::<usize>())
                    .is_ok_and(|n| n == 0) =>
        {
            BetaArg::Scalar(b.extract().map_err(|_| {
                PyTypeError::new_err(format!("beta: expected a real number, got {}", describe(b)))
            })?)
        }
        Some(b) => BetaArg::PerNeuron(f64_vec(b, "beta")?),
    })
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
    weights: Option<&Bound<'py, PyAny>>,
    direction: &str,
    normalized: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let direction = Direction::parse(direction).or_raise()?;
    let beta = beta_arg(beta)?;
    let mut per_block: BTreeMap<BlockKey, Vec<f64>> = BTreeMap::new();
    if let Some(weights) = weights {
        let weights = dict_arg(
            weights,
            "weights",
            "a mapping of (a, b) blocks to per-edge weights",
        )?;
        for (key, value) in weights.iter() {
            let key = block_key_arg(&key, "weights")?;
            per_block.insert(key, f64_vec(&value, &format!("weights[{key:?}]"))?);
        }
    }
    let graph = graph.get();
    let x = py
        .detach(|| {
            core_katz(
                &graph.graph(),
                alpha,
                beta.as_beta(),
                &per_block,
                direction,
                normalized,
            )
        })
        .or_raise()?;
    Ok(x.into_pyarray(py))
}

/// Katz centrality of a general directed graph given as CSR over sources (row u lists the
/// targets of u's edges): exact when acyclic, power iteration when cyclic. See `growcore.katz`.
#[pyfunction]
#[pyo3(signature = (n, indptr, indices, weights=None, alpha=0.1, beta=None, direction="in", normalized=true, tol=1e-6, max_iter=1000))]
#[allow(clippy::too_many_arguments)]
pub fn katz_adjacency<'py>(
    py: Python<'py>,
    n: usize,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    weights: Option<&Bound<'py, PyAny>>,
    alpha: f64,
    beta: Option<&Bound<'py, PyAny>>,
    direction: &str,
    normalized: bool,
    tol: f64,
    #[pyo3(from_py_with = int_not_bool)] max_iter: i128,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let max_iter = u32::try_from(max_iter).map_err(|_| {
        invalid(
            "max_iter",
            format!("must be an integer in [0, 2**32), got {max_iter}"),
        )
    })?;
    let direction = Direction::parse(direction).or_raise()?;
    let beta = beta_arg(beta)?;
    let indptr = int_vec(indptr, "indptr")?;
    let indices = int_vec(indices, "indices")?;
    let weights = weights.map(|w| f64_vec(w, "weights")).transpose()?;
    if !(tol > 0.0 && tol.is_finite()) {
        return Err(crate::errors::invalid(
            "tol",
            format!("must be positive and finite, got {tol}"),
        ));
    }
    let x = py
        .detach(|| {
            let adj = Adjacency {
                n,
                indptr: &indptr,
                indices: &indices,
                weights: weights.as_deref(),
            };
            katz_general(
                &adj,
                alpha,
                beta.as_beta(),
                direction,
                normalized,
                Iteration { tol, max_iter },
            )
        })
        .or_raise()?;
    Ok(x.into_pyarray(py))
}
