//! `GraphState` <-> a Python dict of numpy arrays and plain values. Loading is strict: every key
//! must be present, no other key may be, and every array must have exactly the stored dtype.

use growcore_core::state::{BlockState, NeuronsState, RngState};
use growcore_core::LayerStats;
use growcore_core::{GraphState, GrowError, StatsConfig};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert::{describe, exact_array};
use crate::errors::to_pyerr;

fn bad(path: &str, msg: impl Into<String>) -> PyErr {
    to_pyerr(GrowError::state(path, msg))
}

pub fn stats_config_dict<'py>(py: Python<'py>, c: &StatsConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("decay", c.decay)?;
    d.set_item("fast_decay", c.fast_decay)?;
    d.set_item("alpha", c.alpha)?;
    d.set_item("beta", c.beta)?;
    d.set_item("gamma", c.gamma)?;
    d.set_item("stagnation_warmup", c.stagnation_warmup)?;
    d.set_item("strict", c.strict)?;
    Ok(d)
}

pub fn to_dict(py: Python<'_>, s: GraphState) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", s.version)?;
    d.set_item("step", s.step)?;
    let slot_ids: Vec<_> = s
        .slot_ids
        .into_iter()
        .map(|ids| ids.into_pyarray(py))
        .collect();
    d.set_item("slot_ids", PyList::new(py, slot_ids)?)?;

    let n = s.neurons;
    let neurons = PyDict::new(py);
    neurons.set_item("layer", n.layer.into_pyarray(py))?;
    neurons.set_item("birth", n.birth.into_pyarray(py))?;
    neurons.set_item("death", n.death.into_pyarray(py))?;
    neurons.set_item("parent_a", n.parent_a.into_pyarray(py))?;
    neurons.set_item("parent_b", n.parent_b.into_pyarray(py))?;
    neurons.set_item("generation", n.generation.into_pyarray(py))?;
    neurons.set_item("fate", n.fate.into_pyarray(py))?;
    d.set_item("neurons", neurons)?;

    let blocks = PyList::empty(py);
    for b in s.blocks {
        let block = PyDict::new(py);
        block.set_item("src", b.src)?;
        block.set_item("dst", b.dst)?;
        block.set_item("indptr", b.indptr.into_pyarray(py))?;
        block.set_item("indices", b.indices.into_pyarray(py))?;
        block.set_item("birth", b.birth.into_pyarray(py))?;
        block.set_item("frozen", b.frozen.into_pyarray(py))?;
        blocks.append(block)?;
    }
    d.set_item("blocks", blocks)?;

    let stats = PyList::empty(py);
    for l in s.stats {
        let layer = PyDict::new(py);
        layer.set_item("mean", l.mean.into_pyarray(py))?;
        layer.set_item("sq_mean", l.sq_mean.into_pyarray(py))?;
        layer.set_item("frac_high", l.frac_high.into_pyarray(py))?;
        layer.set_item("frac_low", l.frac_low.into_pyarray(py))?;
        layer.set_item("fast_mean", l.fast_mean.into_pyarray(py))?;
        layer.set_item("act_count", l.act_count.into_pyarray(py))?;
        layer.set_item("grad_norm", l.grad_norm.into_pyarray(py))?;
        layer.set_item("grad_count", l.grad_count.into_pyarray(py))?;
        layer.set_item("nonfinite", l.nonfinite)?;
        stats.append(layer)?;
    }
    d.set_item("stats", stats)?;

    d.set_item("stats_config", stats_config_dict(py, &s.stats_config)?)?;

    let rng = PyDict::new(py);
    rng.set_item("seed", PyBytes::new(py, &s.rng.seed))?;
    rng.set_item("stream", s.rng.stream)?;
    rng.set_item("word_pos", s.rng.word_pos)?;
    d.set_item("rng", rng)?;
    Ok(d)
}

/// A dict view that remembers its path and checks its key set exactly.
struct Fields<'py> {
    dict: Bound<'py, PyDict>,
    path: String,
}

impl<'py> Fields<'py> {
    fn new(obj: &Bound<'py, PyAny>, path: &str, keys: &[&str]) -> PyResult<Self> {
        let dict = obj
            .cast::<PyDict>()
            .map_err(|_| bad(path, format!("expected a dict, got {}", describe(obj))))?
            .clone();
        for key in keys {
            if !dict.contains(key)? {
                return Err(bad(&format!("{path}['{key}']"), "missing"));
            }
        }
        for key in dict.keys() {
            let name: String = key.extract().unwrap_or_else(|_| describe(&key));
            if !keys.contains(&name.as_str()) {
                return Err(bad(&format!("{path}['{name}']"), "unexpected key"));
            }
        }
        Ok(Fields {
            dict,
            path: path.to_string(),
        })
    }

    fn path(&self, key: &str) -> String {
        format!("{}['{key}']", self.path)
    }

    fn get(&self, key: &str) -> PyResult<Bound<'py, PyAny>> {
        Ok(self
            .dict
            .get_item(key)?
            .expect("presence checked in Fields::new"))
    }

    fn scalar<T: for<'a> FromPyObject<'a, 'py>>(&self, key: &str, what: &str) -> PyResult<T> {
        let value = self.get(key)?;
        value.extract::<T>().map_err(|_| {
            bad(
                &self.path(key),
                format!("expected {what}, got {}", describe(&value)),
            )
        })
    }

    fn array<T: numpy::Element + Clone>(&self, key: &str, dtype: &str) -> PyResult<Vec<T>> {
        let value = self.get(key)?;
        exact_array::<T>(&value).ok_or_else(|| {
            bad(
                &self.path(key),
                format!(
                    "expected a 1-D numpy array of dtype {dtype}, got {}",
                    describe(&value)
                ),
            )
        })
    }

    fn list(&self, key: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let value = self.get(key)?;
        let list = value.cast::<PyList>().map_err(|_| {
            bad(
                &self.path(key),
                format!("expected a list, got {}", describe(&value)),
            )
        })?;
        Ok(list.iter().collect())
    }
}

pub fn from_dict(obj: &Bound<'_, PyAny>) -> PyResult<GraphState> {
    let top = Fields::new(
        obj,
        "state",
        &[
            "version",
            "step",
            "slot_ids",
            "neurons",
            "blocks",
            "stats",
            "stats_config",
            "rng",
        ],
    )?;
    let version: u32 = top.scalar("version", "an integer")?;
    if version != growcore_core::STATE_VERSION {
        return Err(bad(
            &top.path("version"),
            format!(
                "unsupported state version {version} (this growcore reads {})",
                growcore_core::STATE_VERSION
            ),
        ));
    }
    let slot_ids = top
        .list("slot_ids")?
        .iter()
        .enumerate()
        .map(|(i, a)| {
            exact_array::<u64>(a).ok_or_else(|| {
                bad(
                    &format!("state['slot_ids'][{i}]"),
                    format!(
                        "expected a 1-D numpy array of dtype uint64, got {}",
                        describe(a)
                    ),
                )
            })
        })
        .collect::<PyResult<_>>()?;

    let n = Fields::new(
        &top.get("neurons")?,
        "state['neurons']",
        &[
            "layer",
            "birth",
            "death",
            "parent_a",
            "parent_b",
            "generation",
            "fate",
        ],
    )?;
    let neurons = NeuronsState {
        layer: n.array("layer", "uint32")?,
        birth: n.array("birth", "uint32")?,
        death: n.array("death", "int64")?,
        parent_a: n.array("parent_a", "int64")?,
        parent_b: n.array("parent_b", "int64")?,
        generation: n.array("generation", "uint32")?,
        fate: n.array("fate", "uint8")?,
    };

    let mut blocks = Vec::new();
    for (i, b) in top.list("blocks")?.iter().enumerate() {
        let f = Fields::new(
            b,
            &format!("state['blocks'][{i}]"),
            &["src", "dst", "indptr", "indices", "birth", "frozen"],
        )?;
        blocks.push(BlockState {
            src: f.scalar("src", "a layer index")?,
            dst: f.scalar("dst", "a layer index")?,
            indptr: f.array("indptr", "uint64")?,
            indices: f.array("indices", "uint32")?,
            birth: f.array("birth", "uint32")?,
            frozen: f.array("frozen", "bool")?,
        });
    }

    let mut stats = Vec::new();
    for (i, l) in top.list("stats")?.iter().enumerate() {
        let f = Fields::new(
            l,
            &format!("state['stats'][{i}]"),
            &[
                "mean",
                "sq_mean",
                "frac_high",
                "frac_low",
                "fast_mean",
                "act_count",
                "grad_norm",
                "grad_count",
                "nonfinite",
            ],
        )?;
        stats.push(LayerStats {
            mean: f.array("mean", "float64")?,
            sq_mean: f.array("sq_mean", "float64")?,
            frac_high: f.array("frac_high", "float64")?,
            frac_low: f.array("frac_low", "float64")?,
            fast_mean: f.array("fast_mean", "float64")?,
            act_count: f.array("act_count", "uint32")?,
            grad_norm: f.array("grad_norm", "float64")?,
            grad_count: f.array("grad_count", "uint32")?,
            nonfinite: f.scalar("nonfinite", "a non-negative integer")?,
        });
    }

    let c = Fields::new(
        &top.get("stats_config")?,
        "state['stats_config']",
        &[
            "decay",
            "fast_decay",
            "alpha",
            "beta",
            "gamma",
            "stagnation_warmup",
            "strict",
        ],
    )?;
    let stats_config = StatsConfig {
        decay: c.scalar("decay", "a number")?,
        fast_decay: c.scalar("fast_decay", "a number")?,
        alpha: c.scalar("alpha", "a number")?,
        beta: c.scalar("beta", "a number")?,
        gamma: c.scalar("gamma", "a number")?,
        stagnation_warmup: c.scalar("stagnation_warmup", "a non-negative integer")?,
        strict: c.scalar("strict", "a bool")?,
    };

    let r = Fields::new(
        &top.get("rng")?,
        "state['rng']",
        &["seed", "stream", "word_pos"],
    )?;
    let seed: Vec<u8> = r.scalar("seed", "32 bytes")?;
    let seed: [u8; 32] = seed.try_into().map_err(|v: Vec<u8>| {
        bad(
            &r.path("seed"),
            format!("expected 32 bytes, got {}", v.len()),
        )
    })?;
    let rng = RngState {
        seed,
        stream: r.scalar("stream", "a non-negative integer")?,
        word_pos: r.scalar("word_pos", "a non-negative integer")?,
    };

    Ok(GraphState {
        version,
        step: top.scalar("step", "a non-negative integer")?,
        slot_ids,
        neurons,
        blocks,
        stats,
        stats_config,
        rng,
    })
}
