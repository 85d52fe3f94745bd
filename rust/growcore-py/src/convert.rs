//! Python inputs to plain Rust vectors, with errors that name the argument. Inputs are copied
//! while the GIL is held so that the work after it can run without it.

use std::borrow::Cow;

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};
use rayon::prelude::*;

use crate::errors::{invalid, to_pyerr};
use growcore_core::GrowError;

fn asarray<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    let np = obj.py().import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{arg}: cannot be read as an array ({e})")))?;
    Ok(arr.cast_into::<PyUntypedArray>()?)
}

/// A dict argument, or the items of any other mapping in a new dict; a `TypeError` naming `arg`
/// (and what it should be) for anything else.
pub fn dict_arg<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    expected: &str,
) -> PyResult<Bound<'py, PyDict>> {
    if let Ok(dict) = obj.cast::<PyDict>() {
        return Ok(dict.clone());
    }
    let mapping = obj.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!("{arg}: expected {expected}, got {}", describe(obj)))
    })?;
    let dict = PyDict::new(obj.py());
    for item in mapping.items()?.iter() {
        let (key, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item.extract()?;
        dict.set_item(key, value)?;
    }
    Ok(dict)
}

fn dtype_kind(arr: &Bound<'_, PyUntypedArray>) -> u8 {
    arr.dtype().kind()
}

fn one_dim(arr: &Bound<'_, PyUntypedArray>, arg: &str) -> PyResult<()> {
    if arr.ndim() != 1 {
        return Err(invalid(
            arg,
            format!("must be 1-D, got shape {:?}", arr.shape()),
        ));
    }
    Ok(())
}

/// Any 1-D integer array-like as an int64 array (no copy when it already is one); None if empty
/// (an empty list has dtype float64 but counts as integers).
fn int64_array<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
) -> PyResult<Option<Bound<'py, PyArray1<i64>>>> {
    let arr = asarray(obj, arg)?;
    one_dim(&arr, arg)?;
    if arr.len() == 0 {
        return Ok(None);
    }
    let kind = dtype_kind(&arr);
    if kind != b'i' && kind != b'u' {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected integers, got an array of dtype {}",
            arr.dtype()
        )));
    }
    if kind == b'u' && arr.dtype().itemsize() == 8 {
        let max: u64 = arr.call_method0("max")?.extract()?;
        if max > i64::MAX as u64 {
            // Name the first such value (the array may be non-native-endian: then read as a list).
            let values: Vec<u64> = arr.call_method0("tolist")?.extract()?;
            let i = values
                .iter()
                .position(|&v| v > i64::MAX as u64)
                .unwrap_or(0);
            return Err(to_pyerr(GrowError::out_of_range(
                format!("{arg}[{i}]"),
                values[i],
                i64::MAX as u64,
                "64-bit signed integers",
            )));
        }
    }
    let arr = match arr.cast::<PyArray1<i64>>() {
        Ok(a) => a.clone(),
        Err(_) => arr
            .call_method1("astype", ("int64",))?
            .cast_into::<PyArray1<i64>>()?,
    };
    Ok(Some(arr))
}

/// Any 1-D integer array-like as i64.
pub fn int_vec(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<i64>> {
    Ok(match int64_array(obj, arg)? {
        Some(arr) => arr.readonly().as_array().to_vec(),
        None => Vec::new(),
    })
}

/// Any 1-D integer array-like as indices below `bound`, read in one pass.
pub fn index_vec(obj: &Bound<'_, PyAny>, arg: &str, bound: u32, what: &str) -> PyResult<Vec<u32>> {
    let mut out = index_vecs(&[IndexArg {
        obj,
        arg,
        bound,
        what,
    }])?;
    Ok(out.pop().unwrap())
}

/// One index argument: the object, its name, the (exclusive) bound and what the bound is.
pub struct IndexArg<'a, 'py> {
    pub obj: &'a Bound<'py, PyAny>,
    pub arg: &'a str,
    pub bound: u32,
    pub what: &'a str,
}

/// Index arguments adding up to this many values are narrowed in parallel.
const PARALLEL_MIN_INDICES: usize = 1 << 16;

/// Several index arguments as u32 vectors, in order. Each is read as int64 under the GIL (in
/// place when contiguous); large ones are then checked and narrowed in parallel. The pool's
/// threads only read the arrays, and the GIL, held throughout, keeps Python from changing them.
pub fn index_vecs(args: &[IndexArg<'_, '_>]) -> PyResult<Vec<Vec<u32>>> {
    let arrays = args
        .iter()
        .map(|a| int64_array(a.obj, a.arg))
        .collect::<PyResult<Vec<_>>>()?;
    let readonly: Vec<_> = arrays
        .iter()
        .map(|a| a.as_ref().map(|a| a.readonly()))
        .collect();
    let values: Vec<Cow<'_, [i64]>> = readonly
        .iter()
        .map(|r| match r {
            None => Cow::Borrowed(&[][..]),
            Some(r) => match r.as_slice() {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(r.as_array().to_vec()),
            },
        })
        .collect();
    let jobs: Vec<(&[i64], u32)> = values
        .iter()
        .zip(args)
        .map(|(v, a)| (&v[..], a.bound))
        .collect();
    let narrowed: Vec<_> = if values.iter().map(|v| v.len()).sum::<usize>() >= PARALLEL_MIN_INDICES
    {
        jobs.into_par_iter()
            .map(|(v, bound)| narrow(v, bound))
            .collect()
    } else {
        jobs.into_iter()
            .map(|(v, bound)| narrow(v, bound))
            .collect()
    };
    narrowed
        .into_iter()
        .zip(args.iter().zip(&values))
        .map(|(out, (a, v))| {
            out.map_err(|i| {
                let msg = GrowError::out_of_range(
                    format!("{}[{i}]", a.arg),
                    v[i],
                    a.bound as u64,
                    a.what,
                );
                to_pyerr(msg)
            })
        })
        .collect()
}

/// `values` as u32, or the position of the first one outside `0..bound`. A cache-sized chunk at
/// a time is checked, then narrowed, both vectorisable (a negative value wraps above any
/// bound), so the input is read from memory once.
fn narrow(values: &[i64], bound: u32) -> Result<Vec<u32>, usize> {
    let mut out = Vec::with_capacity(values.len());
    for (k, chunk) in values.chunks(4096).enumerate() {
        let largest = chunk.iter().fold(0u64, |m, &v| m.max(v as u64));
        if largest >= u64::from(bound) {
            let i = chunk
                .iter()
                .position(|&v| v as u64 >= u64::from(bound))
                .unwrap();
            return Err(k * 4096 + i);
        }
        out.extend(chunk.iter().map(|&v| v as u32));
    }
    Ok(out)
}

/// Any 1-D real array-like as f32 (NaN and inf pass through: the core's policy handles them).
pub fn f32_vec(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<f32>> {
    real_vec(obj, arg, "float32")
}

/// Any 1-D real array-like as f64 (NaN and inf pass through to the core's checks).
pub fn f64_vec(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<f64>> {
    real_vec(obj, arg, "float64")
}

fn real_vec<T: numpy::Element + Clone>(
    obj: &Bound<'_, PyAny>,
    arg: &str,
    dtype: &str,
) -> PyResult<Vec<T>> {
    let arr = asarray(obj, arg)?;
    one_dim(&arr, arg)?;
    if arr.len() == 0 {
        return Ok(Vec::new());
    }
    if !matches!(dtype_kind(&arr), b'b' | b'i' | b'u' | b'f') {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected real numbers, got an array of dtype {}",
            arr.dtype()
        )));
    }
    let arr = arr.call_method1("astype", (dtype,))?;
    let arr = arr.cast_into::<numpy::PyArray1<T>>()?;
    Ok(arr.readonly().as_array().to_vec())
}

/// A 2-D real array as row-major float64 values and its shape.
pub fn f64_matrix(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<(Vec<f64>, (usize, usize))> {
    let arr = asarray(obj, arg)?;
    if arr.ndim() != 2 {
        return Err(invalid(
            arg,
            format!("must be 2-D, got shape {:?}", arr.shape()),
        ));
    }
    if arr.len() > 0 && !matches!(dtype_kind(&arr), b'b' | b'i' | b'u' | b'f') {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected real numbers, got an array of dtype {}",
            arr.dtype()
        )));
    }
    let shape = (arr.shape()[0], arr.shape()[1]);
    let flat = arr
        .call_method1("astype", ("float64",))?
        .call_method1("reshape", (-1,))?
        .cast_into::<numpy::PyArray1<f64>>()?;
    Ok((flat.readonly().as_array().to_vec(), shape))
}

/// A 2-D boolean array as (row-major values, shape).
pub fn bool_matrix(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<(Vec<bool>, (usize, usize))> {
    let arr = asarray(obj, arg)?;
    if dtype_kind(&arr) != b'b' {
        return Err(PyTypeError::new_err(format!(
            "{arg}: a dense mask must have dtype bool, got {}",
            arr.dtype()
        )));
    }
    if arr.ndim() != 2 {
        return Err(invalid(
            arg,
            format!("a dense mask must be 2-D, got shape {:?}", arr.shape()),
        ));
    }
    let shape = (arr.shape()[0], arr.shape()[1]);
    let flat = arr
        .call_method1("reshape", (-1,))?
        .cast_into::<numpy::PyArray1<bool>>()?;
    Ok((flat.readonly().as_array().to_vec(), shape))
}

/// An integer argument read by PyO3 (`#[pyo3(from_py_with = int_not_bool)]`, which names the
/// argument in a note): a bool, which Python counts as an int, is refused (`seed=True` is a slip,
/// not seed 1).
pub fn int_not_bool(obj: &Bound<'_, PyAny>) -> PyResult<i128> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "expected an integer, got {}",
            describe(obj)
        )));
    }
    obj.extract()
}

/// `int_not_bool` for an argument that may be None.
pub fn optional_int_not_bool(obj: &Bound<'_, PyAny>) -> PyResult<Option<i128>> {
    if obj.is_none() {
        return Ok(None);
    }
    int_not_bool(obj).map(Some)
}

/// An integer argument such as a layer index; bools and non-integers are type errors.
pub fn int_arg(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<i64> {
    if obj.is_instance_of::<pyo3::types::PyBool>()
        || !obj.is_instance_of::<pyo3::types::PyInt>() && !obj.hasattr("__index__")?
    {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected an integer, got {}",
            describe(obj)
        )));
    }
    obj.extract::<i64>()
        .map_err(|_| match obj.extract::<i128>() {
            Ok(value) => to_pyerr(GrowError::out_of_range(
                arg,
                value,
                i64::MAX as u64,
                "64-bit integers",
            )),
            Err(_) => invalid(arg, format!("{} does not fit in 64 bits", describe(obj))),
        })
}

/// An integer argument that `fit` converts, or `None` when it is outside `range` (as written in
/// the error, e.g. "[0, 2**31)"). A non-integer or a bool is a type error; an integer beyond 128 bits is
/// out of range, like any other value `fit` refuses.
fn int_in<T>(
    obj: &Bound<'_, PyAny>,
    arg: &str,
    range: &str,
    fit: impl Fn(i128) -> Option<T>,
) -> PyResult<T> {
    let out_of_range =
        |got: String| invalid(arg, format!("must be an integer in {range}, got {got}"));
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected an integer, got {}",
            describe(obj)
        )));
    }
    match obj.extract::<i128>() {
        Ok(value) => fit(value).ok_or_else(|| out_of_range(value.to_string())),
        Err(_) if obj.is_instance_of::<pyo3::types::PyInt>() => Err(out_of_range(describe(obj))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{arg}: expected an integer, got {}",
            describe(obj)
        ))),
    }
}

/// A non-negative integer argument.
pub fn non_negative(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<u64> {
    int_in(obj, arg, "[0, 2**64)", |v| u64::try_from(v).ok())
}

const STEP_RANGE: &str = "[0, 2**31)";

fn step_fit(value: i128) -> Option<growcore_core::Step> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v <= growcore_core::MAX_STEP)
}

/// A step count (a step, an age or a number of steps): an integer in [0, 2**31).
pub fn step_arg(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<growcore_core::Step> {
    int_in(obj, arg, STEP_RANGE, step_fit)
}

/// `step_arg` for a value already read as an integer.
pub fn step_value(value: i128, arg: &str) -> PyResult<growcore_core::Step> {
    step_fit(value).ok_or_else(|| {
        invalid(
            arg,
            format!("must be an integer in {STEP_RANGE}, got {value}"),
        )
    })
}

/// A short description of a Python value for error messages.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match obj.repr() {
        Ok(r) => {
            let r = r.to_string();
            if r.len() > 60 {
                format!(
                    "{type_name} {}...",
                    &r[..r.char_indices().nth(57).map_or(r.len(), |(i, _)| i)]
                )
            } else {
                format!("{type_name} {r}")
            }
        }
        Err(_) => type_name,
    }
}

/// Reads a 1-D array of exactly dtype `T` (used for state dicts, which are strict).
pub fn exact_array<T: numpy::Element + Clone>(obj: &Bound<'_, PyAny>) -> Option<Vec<T>> {
    let arr = obj.cast::<numpy::PyArray1<T>>().ok()?;
    let ro: PyReadonlyArray1<T> = arr.readonly();
    Some(ro.as_array().to_vec())
}

/// A real array-like as a C-contiguous float32 array, read in place when it already is one (a
/// CPU torch tensor's `.numpy()` is), copied otherwise. Its shape must be `shape`.
pub fn dense_f32<'py, D: numpy::ndarray::Dimension>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    shape: &[usize],
) -> PyResult<numpy::PyReadonlyArray<'py, f32, D>> {
    let arr = asarray(obj, arg)?;
    if !matches!(dtype_kind(&arr), b'b' | b'i' | b'u' | b'f') {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected real numbers, got an array of dtype {}",
            arr.dtype()
        )));
    }
    if arr.shape() != shape {
        return Err(invalid(
            arg,
            format!(
                "must have shape {}, got shape {}",
                py_shape(shape),
                py_shape(arr.shape())
            ),
        ));
    }
    let np = obj.py().import("numpy")?;
    let arr = np.call_method1("ascontiguousarray", (arr, "float32"))?;
    arr.cast_into::<numpy::PyArray<f32, D>>()?
        .try_readonly()
        .map_err(|_| invalid(arg, "shares memory with an array this call writes to"))
}

/// A shape written as Python writes it: `(5, 6)`, `(5,)`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("{:?}", shape).replace('[', "(").replace(']', ")"),
    }
}
