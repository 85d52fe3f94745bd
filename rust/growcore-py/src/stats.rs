//! Statistics bindings: the reduction of a batch of activations to per-neuron sums.

use numpy::{PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::dense_f32;
use crate::errors::{invalid, OrRaise};

/// Adds a batch of activations `x`, shaped (outer, neurons, inner), to the float64 per-neuron
/// sums `sums`, shaped (4, neurons): sum, sum of squares, and the numbers of samples at or
/// above `high` and at or below `low`. Every (outer, inner) pair is a sample. Returns the number
/// of samples added. `x` is read in place when C-contiguous float32 (a CPU tensor's `.numpy()`),
/// without the GIL; the result does not depend on the number of threads.
#[pyfunction]
pub fn add_activation_sums(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    mut sums: PyReadwriteArray2<'_, f64>,
    low: f32,
    high: f32,
) -> PyResult<u64> {
    let shape = {
        let arr = x
            .cast::<numpy::PyUntypedArray>()
            .map_err(|_| invalid("x", "must be a numpy array shaped (outer, neurons, inner)"))?;
        arr.shape().to_vec()
    };
    let &[_, neurons, inner] = shape.as_slice() else {
        return Err(invalid(
            "x",
            format!(
                "must be 3-D (outer, neurons, inner), got {} dimensions",
                shape.len()
            ),
        ));
    };
    let x = dense_f32::<numpy::Ix3>(x, "x", &shape)?;
    let x = x.as_slice()?;
    if sums.shape() != [4, neurons] {
        return Err(invalid(
            "sums",
            format!(
                "must have shape (4, {neurons}), got ({}, {})",
                sums.shape()[0],
                sums.shape()[1]
            ),
        ));
    }
    // Row-major: a Fortran-ordered array would also give a slice, with the rows interleaved.
    if !sums.is_c_contiguous() {
        return Err(invalid("sums", "must be C-contiguous"));
    }
    let sums = sums.as_slice_mut()?;
    py.detach(|| growcore_core::stats::add_activation_sums(x, (neurons, inner), (low, high), sums))
        .or_raise()
}
