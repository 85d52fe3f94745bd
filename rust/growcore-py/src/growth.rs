//! Growth bindings: extrema detection, cloning and routing (`Graph.extrema`, `Graph.grow`,
//! which delegate here) and the saturation presets.

use growcore_core::{Activation, CloneType, ExtremaSpec, GrowError, GrowSpec, Load};
use numpy::IntoPyArray;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use crate::convert::{describe, f64_vec, index_vec, int_arg};
use crate::errors::{invalid, OrRaise};
use crate::graph::PyGraph;

/// The saturation thresholds `(low, high)` of an activation's preset for an ε-ball of radius
/// `epsilon`, or, when `low` and `high` are given, those checked against the activation's range.
#[pyfunction]
#[pyo3(signature = (activation, epsilon=0.05, *, low=None, high=None))]
pub fn saturation_thresholds(
    activation: &str,
    epsilon: f64,
    low: Option<f64>,
    high: Option<f64>,
) -> PyResult<(f64, f64)> {
    let act = Activation::parse(activation).or_raise()?;
    // `epsilon` only matters (and is only checked) when a threshold comes from the preset.
    let (low, high) = match (low, high) {
        (Some(low), Some(high)) => (low, high),
        _ => {
            let (preset_low, preset_high) = act.thresholds(epsilon).or_raise()?;
            (low.unwrap_or(preset_low), high.unwrap_or(preset_high))
        }
    };
    act.check_thresholds(low, high).or_raise()?;
    Ok((low, high))
}

/// Options of `Graph.extrema`, as keyword arguments.
pub struct ExtremaOptions {
    pub q: f64,
    pub dead_fraction: f64,
    pub fraction: f64,
    pub high_z: f64,
    pub min_observations: i128,
}

pub fn extrema<'py>(
    graph: &PyGraph,
    py: Python<'py>,
    layer: u32,
    activation: &str,
    o: ExtremaOptions,
) -> PyResult<Bound<'py, PyDict>> {
    let mut spec = ExtremaSpec::new(Activation::parse(activation).or_raise()?);
    spec.q = o.q;
    spec.dead_fraction = o.dead_fraction;
    spec.fraction = o.fraction;
    spec.high_z = o.high_z;
    spec.min_observations = u32::try_from(o.min_observations).map_err(|_| {
        invalid(
            "min_observations",
            format!(
                "must be an integer in [0, 2**32), got {}",
                o.min_observations
            ),
        )
    })?;
    let e = graph.graph().extrema(layer, &spec).or_raise()?;
    let out = PyDict::new(py);
    let slots = |v: &[u32]| v.iter().map(|&s| s as i64).collect::<Vec<i64>>();
    out.set_item("high", slots(&e.high).into_pyarray(py))?;
    out.set_item("high_score", e.high_score.into_pyarray(py))?;
    out.set_item("low", slots(&e.low).into_pyarray(py))?;
    out.set_item("low_score", e.low_score.into_pyarray(py))?;
    Ok(out)
}

/// Options of `Graph.grow`, as keyword arguments.
pub struct GrowOptions<'a, 'py> {
    pub katz: Option<&'a Bound<'py, PyAny>>,
    pub clone_type: &'a str,
    pub clone_budget: i128,
    pub max_layer_size: Option<i128>,
    pub max_params: Option<i128>,
    pub radius: i128,
    pub routes_per_source: i128,
    pub max_routes: Option<i128>,
    pub fan_in_cap: Option<i128>,
    pub load: &'a str,
}

/// A count argument: an integer in [0, 2**32).
fn count32(value: i128, arg: &str) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        invalid(
            arg,
            format!("must be an integer in [0, 2**32), got {value}"),
        )
    })
}

/// A non-negative 64-bit count argument.
fn count64(value: i128, arg: &str) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| invalid(arg, format!("must be non-negative, got {value}")))
}

/// `{layer: slots}` as one list per layer, each slot checked against its layer's size.
fn per_layer(graph: &PyGraph, obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<Vec<u32>>> {
    let mapping = obj.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected a mapping of layer -> slots, got {}",
            describe(obj)
        ))
    })?;
    // The sizes are copied out: reading the keys and slots may run Python code that uses the
    // graph, so no lock is held meanwhile (the core checks the slots again under its lock).
    let sizes = graph.graph().layer_sizes();
    let mut out = vec![Vec::new(); sizes.len()];
    for item in mapping.items()?.iter() {
        let (key, slots): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let key_arg = format!("{arg} key");
        let layer = int_arg(&key, &key_arg)?;
        if layer < 0 || layer >= sizes.len() as i64 {
            let n = sizes.len() as u64;
            return Err(GrowError::out_of_range(key_arg, layer, n, "the layers")).or_raise();
        }
        let layer = layer as u32;
        let size = sizes[layer as usize];
        out[layer as usize] = index_vec(
            &slots,
            &format!("{arg}[{layer}]"),
            size,
            &format!("layer {layer} of size {size}"),
        )?;
    }
    Ok(out)
}

pub fn grow<'py>(
    graph: &PyGraph,
    py: Python<'py>,
    high: &Bound<'py, PyAny>,
    low: &Bound<'py, PyAny>,
    o: GrowOptions<'_, 'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let (high, low) = (
        per_layer(graph, high, "high")?,
        per_layer(graph, low, "low")?,
    );
    let katz = o.katz.map(|k| f64_vec(k, "katz")).transpose()?;
    let spec = GrowSpec {
        clone_type: CloneType::parse(o.clone_type).or_raise()?,
        clone_budget: count32(o.clone_budget, "clone_budget")?,
        max_layer_size: o
            .max_layer_size
            .map(|m| count32(m, "max_layer_size"))
            .transpose()?,
        max_params: o.max_params.map(|m| count64(m, "max_params")).transpose()?,
        radius: count32(o.radius, "radius")?,
        routes_per_source: count32(o.routes_per_source, "routes_per_source")?,
        max_routes: o.max_routes.map(|m| count32(m, "max_routes")).transpose()?,
        fan_in_cap: o.fan_in_cap.map(|m| count64(m, "fan_in_cap")).transpose()?,
        load: Load::parse(o.load).or_raise()?,
    };
    let plan = py
        .detach(|| graph.graph_mut().grow(&high, &low, katz.as_deref(), &spec))
        .or_raise()?;

    let clones = PyDict::new(py);
    let c = &plan.clones;
    let column = |f: fn(&growcore_core::NeuronClone) -> i64| c.iter().map(f).collect::<Vec<i64>>();
    clones.set_item(
        "vertical",
        c.iter()
            .map(|x| x.vertical)
            .collect::<Vec<bool>>()
            .into_pyarray(py),
    )?;
    clones.set_item(
        "source_layer",
        column(|x| x.source_layer as i64).into_pyarray(py),
    )?;
    clones.set_item(
        "source_slot",
        column(|x| x.source_slot as i64).into_pyarray(py),
    )?;
    clones.set_item("source_id", column(|x| x.source_id as i64).into_pyarray(py))?;
    clones.set_item("layer", column(|x| x.layer as i64).into_pyarray(py))?;
    clones.set_item("slot", column(|x| x.slot as i64).into_pyarray(py))?;
    clones.set_item("id", column(|x| x.id as i64).into_pyarray(py))?;
    clones.set_item(
        "noise_seed",
        c.iter()
            .map(|x| x.noise_seed)
            .collect::<Vec<u64>>()
            .into_pyarray(py),
    )?;

    let routes = PyDict::new(py);
    let r = &plan.routes;
    let column =
        |f: fn(&growcore_core::Route) -> u32| r.iter().map(|x| f(x) as i64).collect::<Vec<i64>>();
    routes.set_item("src_layer", column(|x| x.src_layer).into_pyarray(py))?;
    routes.set_item("src_slot", column(|x| x.src_slot).into_pyarray(py))?;
    routes.set_item("dst_layer", column(|x| x.dst_layer).into_pyarray(py))?;
    routes.set_item("dst_slot", column(|x| x.dst_slot).into_pyarray(py))?;

    let out = PyDict::new(py);
    out.set_item("clones", clones)?;
    out.set_item("routes", routes)?;
    out.set_item("new_blocks", plan.new_blocks)?;
    Ok(out)
}
