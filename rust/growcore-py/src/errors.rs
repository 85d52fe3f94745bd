//! The one place where core errors become Python exceptions. The exception classes are defined
//! in `growcore/errors.py`, so they can subclass both `GrowcoreError` and a builtin.

use growcore_core::GrowError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Python class name for each core error variant.
fn class_name(err: &GrowError) -> &'static str {
    match err {
        GrowError::InvalidArgument { .. } => "InvalidArgumentError",
        GrowError::OutOfRange { .. } => "OutOfRangeError",
        GrowError::Block { .. } => "BlockError",
        GrowError::Edge { .. } => "EdgeError",
        GrowError::FrozenEdge { .. } => "FrozenEdgeError",
        GrowError::NonFinite { .. } => "NonFiniteError",
        GrowError::State { .. } => "StateDictError",
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub fn to_pyerr(err: GrowError) -> PyErr {
    Python::attach(|py| {
        let module = match ERRORS_MODULE
            .get_or_try_init(py, || py.import("growcore.errors").map(Bound::unbind))
        {
            Ok(m) => m.bind(py),
            Err(e) => return e,
        };
        match module
            .getattr(class_name(&err))
            .and_then(|c| Ok(c.cast_into::<PyType>()?))
        {
            Ok(class) => PyErr::from_type(class, err.to_string()),
            Err(e) => e,
        }
    })
}

/// `?`-friendly conversion of core results.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, GrowError> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}

/// A bad argument value detected while converting inputs.
pub fn invalid(arg: &str, msg: impl Into<String>) -> PyErr {
    to_pyerr(GrowError::invalid(arg, msg))
}
