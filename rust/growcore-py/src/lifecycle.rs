//! Lifecycle bindings beyond the graph's own methods: the senescence tracker and comparisons of
//! activation profiles.

use growcore_core::{Profiles, Senescence, SenescenceSpec};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::convert::{f64_matrix, f64_vec, int_arg, int_not_bool, step_value};
use crate::errors::{invalid, OrRaise};
use crate::graph::PyGraph;

fn profiles_arg(profiles: &Bound<'_, PyAny>) -> PyResult<(Vec<f64>, (usize, usize))> {
    f64_matrix(profiles, "profiles")
}

/// Each neuron's diversity from its activation profile (one row per neuron):
/// `1 - max_{j != i} cos(p_i, p_j)`, 0 for an exact duplicate, 1 for a profile orthogonal to
/// every other. A row of zeros has similarity 0 with every row.
#[pyfunction]
pub fn diversity<'py>(
    py: Python<'py>,
    profiles: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (values, (n, k)) = profiles_arg(profiles)?;
    let out = py.detach(|| Profiles::new(&values, n, k).map(|p| p.diversity()));
    Ok(out.or_raise()?.into_pyarray(py))
}

/// Pairs of neurons whose profiles' cosine similarity is at least `threshold`, as columns
/// "a", "b" (rows, a < b) and "similarity", most similar first.
#[pyfunction]
#[pyo3(signature = (profiles, threshold=0.95))]
pub fn redundant_pairs<'py>(
    py: Python<'py>,
    profiles: &Bound<'py, PyAny>,
    threshold: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (values, (n, k)) = profiles_arg(profiles)?;
    let pairs = py
        .detach(|| Profiles::new(&values, n, k).and_then(|p| p.redundant_pairs(threshold)))
        .or_raise()?;
    let out = PyDict::new(py);
    let column = |f: fn(&(u32, u32, f64)) -> i64| pairs.iter().map(f).collect::<Vec<i64>>();
    out.set_item("a", column(|p| p.0 as i64).into_pyarray(py))?;
    out.set_item("b", column(|p| p.1 as i64).into_pyarray(py))?;
    let sim: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    out.set_item("similarity", sim.into_pyarray(py))?;
    Ok(out)
}

/// Tracks each neuron's fitness over time and decides senescence and its escalation to
/// apoptosis. See `growcore.Senescence` in the stubs for the rules.
#[pyclass(name = "Senescence", module = "growcore._core", frozen)]
#[derive(Default)]
pub struct PySenescence {
    inner: parking_lot::Mutex<Senescence>,
}

#[pymethods]
impl PySenescence {
    #[new]
    fn new() -> Self {
        PySenescence::default()
    }

    /// Samples `layer`'s fitness at the graph's current step and advances every neuron's
    /// state. Returns "slope" (relative, NaN until a neuron's window is full),
    /// "newly_senescent", "escalated" and "senescent" (slots, ascending).
    #[pyo3(signature = (graph, layer, fitness=None, *, window=5, epsilon=0.1, flat_steps=500, escalate_after=500, max_fraction=0.05, min_age=0))]
    #[allow(clippy::too_many_arguments)]
    fn update<'py>(
        &self,
        py: Python<'py>,
        graph: &Bound<'py, PyGraph>,
        layer: &Bound<'py, PyAny>,
        fitness: Option<&Bound<'py, PyAny>>,
        #[pyo3(from_py_with = int_not_bool)] window: i128,
        epsilon: f64,
        #[pyo3(from_py_with = int_not_bool)] flat_steps: i128,
        #[pyo3(from_py_with = int_not_bool)] escalate_after: i128,
        max_fraction: f64,
        #[pyo3(from_py_with = int_not_bool)] min_age: i128,
    ) -> PyResult<Bound<'py, PyDict>> {
        let layer = int_arg(layer, "layer")?;
        let spec = SenescenceSpec {
            // The core says what a usable window is; here only a negative one cannot be held.
            window: usize::try_from(window).map_err(|_| {
                invalid(
                    "window",
                    format!("must be a non-negative integer, got {window}"),
                )
            })?,
            epsilon,
            flat_steps: step_value(flat_steps, "flat_steps")?,
            min_age: step_value(min_age, "min_age")?,
            escalate_after: step_value(escalate_after, "escalate_after")?,
            max_fraction,
        };
        let fitness = fitness.map(|f| f64_vec(f, "fitness")).transpose()?;
        let graph = graph.get();
        let g = graph.graph();
        let layer = g.check_layer("layer", layer).or_raise()?;
        let up = self
            .inner
            .lock()
            .update(&g, layer, fitness.as_deref(), &spec)
            .or_raise()?;
        let out = PyDict::new(py);
        out.set_item("slope", up.slope.into_pyarray(py))?;
        let slots = |v: Vec<u32>| v.into_iter().map(i64::from).collect::<Vec<i64>>();
        out.set_item(
            "newly_senescent",
            slots(up.newly_senescent).into_pyarray(py),
        )?;
        out.set_item("escalated", slots(up.escalated).into_pyarray(py))?;
        out.set_item("senescent", slots(up.senescent).into_pyarray(py))?;
        Ok(out)
    }

    /// The senescent slots of `layer`, ascending.
    fn senescent<'py>(
        &self,
        py: Python<'py>,
        graph: &Bound<'py, PyGraph>,
        layer: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let layer = int_arg(layer, "layer")?;
        let graph = graph.get();
        let g = graph.graph();
        let layer = g.check_layer("layer", layer).or_raise()?;
        let slots: Vec<i64> = self
            .inner
            .lock()
            .senescent(&g, layer)
            .into_iter()
            .map(i64::from)
            .collect();
        Ok(slots.into_pyarray(py))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.lock().to_bytes())
    }

    /// Replaces this tracker's state with the one `data` holds (from `to_bytes`), in place, so
    /// every reference to this tracker sees it; nothing changes on error.
    fn load_bytes(&self, data: &[u8]) -> PyResult<()> {
        *self.inner.lock() = Senescence::from_bytes(data).or_raise()?;
        Ok(())
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        let inner = Senescence::from_bytes(data).or_raise()?;
        Ok(PySenescence {
            inner: parking_lot::Mutex::new(inner),
        })
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PySenescence>() {
            Ok(o) => {
                let other = o.get();
                std::ptr::eq(self, other) || *self.inner.lock() == *other.inner.lock()
            }
            Err(_) => false,
        }
    }
}
