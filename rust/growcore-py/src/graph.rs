//! `growcore.Graph`: converts arguments, runs the core (without the GIL when the work is
//! proportional to the number of edges), and converts results. No algorithm lives here.

use growcore_core::{
    AlphaRule, ApoptosisSpec, BlockInput, BlockKey, Distribution, FitnessKind, Graph, InitSpec,
    ObjectiveWeights, Observation, Regrowth, Scores, StageAges, StatsConfig,
};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use parking_lot::RwLock;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::convert::{
    bool_matrix, dense_f32, describe, dict_arg, f32_vec, f64_vec, index_vec, index_vecs, int_arg,
    int_not_bool, int_vec, non_negative, optional_int_not_bool, step_arg, IndexArg,
};
use crate::errors::{invalid, OrRaise};
use crate::growth;
use crate::state;

/// A layered DAG of neurons with one CSR block of edges per connected (source, target) pair of
/// layers, stable neuron ids, lineage and per-neuron training statistics.
///
/// Layer 0 holds the inputs and the last layer the outputs. Block (a, b) holds the edges from
/// layer a to layer b > a; its rows are target slots in b and its columns source slots in a.
#[pyclass(name = "Graph", module = "growcore", frozen)]
pub struct PyGraph {
    inner: RwLock<Graph>,
}

type Ids<'py> = Bound<'py, PyArray1<i64>>;

fn i64_array<'py, T: Copy + TryInto<i64>>(py: Python<'py>, values: &[T]) -> Ids<'py> {
    values
        .iter()
        .map(|&v| v.try_into().unwrap_or(i64::MAX))
        .collect::<Vec<i64>>()
        .into_pyarray(py)
}

fn u64_arg(arg: &str, value: i128) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| {
        invalid(
            arg,
            format!("must be an integer in [0, 2**64), got {value}"),
        )
    })
}

fn layer_sizes_arg(layer_sizes: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let sizes = int_vec(layer_sizes, "layer_sizes")?;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            u32::try_from(n).map_err(|_| {
                invalid(
                    &format!("layer_sizes[{i}]"),
                    format!("must be in [1, 2**32), got {n}"),
                )
            })
        })
        .collect()
}

/// One statistics option, read from its Python value: it sets one field of a `StatsConfig`.
type StatsOption = Box<dyn Fn(&mut StatsConfig) + Send>;

/// Reads statistics options from Python values (no graph lock is held: reading a value may run
/// Python code, which may use the graph).
fn stats_options(options: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<StatsOption>> {
    let options = options
        .map(|o| dict_arg(o, "stats_config", "a mapping of option names to values"))
        .transpose()?;
    let mut parsed: Vec<StatsOption> = Vec::new();
    for (key, value) in options.iter().flat_map(|o| o.iter()) {
        let key: String = key.extract()?;
        // A real-valued option: read now, stored by `set` later.
        let real = |set: fn(&mut StatsConfig, f64)| -> PyResult<StatsOption> {
            let x: f64 = value.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{key}: expected a number, got {}",
                    describe(&value)
                ))
            })?;
            Ok(Box::new(move |c| set(c, x)))
        };
        parsed.push(match key.as_str() {
            "decay" => real(|c, x| c.decay = x)?,
            "fast_decay" => real(|c, x| c.fast_decay = x)?,
            "alpha" => real(|c, x| c.alpha = x)?,
            "beta" => real(|c, x| c.beta = x)?,
            "gamma" => real(|c, x| c.gamma = x)?,
            "stagnation_warmup" => {
                let n = non_negative(&value, "stagnation_warmup")?;
                let n = u32::try_from(n).map_err(|_| {
                    invalid("stagnation_warmup", format!("must be below 2**32, got {n}"))
                })?;
                Box::new(move |c| c.stagnation_warmup = n)
            }
            "strict" => {
                let on: bool = value.extract().map_err(|_| {
                    PyTypeError::new_err(format!("strict: expected a bool, got {}", describe(&value)))
                })?;
                Box::new(move |c| c.strict = on)
            }
            other => {
                return Err(invalid(
                    other,
                    "unknown statistics option; expected decay, fast_decay, alpha, beta, gamma, stagnation_warmup or strict",
                ))
            }
        });
    }
    Ok(parsed)
}

/// `base` with the options applied, checked.
fn with_options(base: StatsConfig, options: &[StatsOption]) -> PyResult<StatsConfig> {
    let mut config = base;
    for set in options {
        set(&mut config);
    }
    config.validate().or_raise()?;
    Ok(config)
}

fn stats_config_arg(
    base: StatsConfig,
    options: Option<&Bound<'_, PyAny>>,
) -> PyResult<StatsConfig> {
    with_options(base, &stats_options(options)?)
}

pub(crate) fn block_key_arg(key: &Bound<'_, PyAny>, arg: &str) -> PyResult<BlockKey> {
    let (a, b): (i64, i64) = key.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: keys must be (a, b) pairs of layers, got {}",
            describe(key)
        ))
    })?;
    let to_u32 = |v: i64| {
        u32::try_from(v).map_err(|_| {
            invalid(
                arg,
                format!("layer {v} in key ({a}, {b}) is negative or too large"),
            )
        })
    };
    Ok((to_u32(a)?, to_u32(b)?))
}

/// One user-supplied block, read into owned arrays: scipy sparse, (indptr, indices), or a mask.
enum OwnedBlock {
    Csr {
        indptr: Vec<i64>,
        indices: Vec<i64>,
        shape: Option<(usize, usize)>,
    },
    Dense {
        mask: Vec<bool>,
        shape: (usize, usize),
    },
}

fn read_block(value: &Bound<'_, PyAny>, arg: &str) -> PyResult<OwnedBlock> {
    if value.hasattr("tocsr")? {
        let csr = value.call_method0("tocsr")?;
        let shape: (usize, usize) = csr.getattr("shape")?.extract()?;
        return Ok(OwnedBlock::Csr {
            indptr: int_vec(&csr.getattr("indptr")?, &format!("{arg}.indptr"))?,
            indices: int_vec(&csr.getattr("indices")?, &format!("{arg}.indices"))?,
            shape: Some(shape),
        });
    }
    if let Ok(pair) = value.cast::<PyTuple>() {
        if pair.len() != 2 {
            return Err(invalid(
                arg,
                format!(
                    "a CSR pair must be (indptr, indices), got a tuple of {}",
                    pair.len()
                ),
            ));
        }
        return Ok(OwnedBlock::Csr {
            indptr: int_vec(&pair.get_item(0)?, &format!("{arg}.indptr"))?,
            indices: int_vec(&pair.get_item(1)?, &format!("{arg}.indices"))?,
            shape: None,
        });
    }
    let (mask, shape) = bool_matrix(value, arg)?;
    Ok(OwnedBlock::Dense { mask, shape })
}

impl PyGraph {
    fn wrap(graph: Graph) -> Self {
        PyGraph {
            inner: RwLock::new(graph),
        }
    }

    /// Shared access to the core graph for the other binding files.
    pub(crate) fn graph(&self) -> parking_lot::RwLockReadGuard<'_, Graph> {
        self.inner.read()
    }

    /// Exclusive access to the core graph for the other binding files.
    pub(crate) fn graph_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Graph> {
        self.inner.write()
    }

    fn layer(&self, layer: &Bound<'_, PyAny>) -> PyResult<u32> {
        let layer = int_arg(layer, "layer")?;
        self.inner.read().check_layer("layer", layer).or_raise()
    }

    fn block_key(&self, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<BlockKey> {
        let (a, b) = (int_arg(a, "a")?, int_arg(b, "b")?);
        self.inner.read().check_block(a, b).or_raise()
    }

    /// Converts (rows, cols) of block (a, b) to validated slot vectors; `arg` names the rows
    /// argument and, with "rows" replaced by "cols", the columns argument.
    /// A prune-and-grow score argument: a dense (rows, cols) array, (rows, cols, values)
    /// candidates, or "random".
    fn scores_arg<'py>(
        &self,
        key: BlockKey,
        arg: &str,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<ScoresArg<'py>> {
        if let Ok(s) = obj.extract::<String>() {
            return match s.as_str() {
                "random" => Ok(ScoresArg::Random),
                _ => Err(invalid(
                    arg,
                    format!("the only named scores are \"random\", got {s:?}"),
                )),
            };
        }
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            if tuple.len() != 3 {
                return Err(invalid(
                    arg,
                    format!(
                        "candidates are a (rows, cols, values) tuple, got {} items",
                        tuple.len()
                    ),
                ));
            }
            let rows_arg = format!("{arg}.rows");
            let (rows, cols) =
                self.block_edges(key, &rows_arg, &tuple.get_item(0)?, &tuple.get_item(1)?)?;
            let values = f32_vec(&tuple.get_item(2)?, &format!("{arg}.values"))?;
            return Ok(ScoresArg::Listed(rows, cols, values));
        }
        Ok(ScoresArg::Dense(dense_f32(
            obj,
            arg,
            &self.block_shape(key),
        )?))
    }

    /// A block's matrix shape, (rows, cols) = (size of its target layer, size of its source).
    fn block_shape(&self, key: BlockKey) -> [usize; 2] {
        let g = self.inner.read();
        [g.layer_size(key.1) as usize, g.layer_size(key.0) as usize]
    }

    fn edge_args(
        &self,
        (a, b): (&Bound<'_, PyAny>, &Bound<'_, PyAny>),
        arg: &str,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<(BlockKey, Vec<u32>, Vec<u32>)> {
        let key = self.block_key(a, b)?;
        let (rows, cols) = self.block_edges(key, arg, rows, cols)?;
        Ok((key, rows, cols))
    }

    /// (rows, cols) of edges of a known block, range-checked.
    fn block_edges(
        &self,
        key: BlockKey,
        arg: &str,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<u32>, Vec<u32>)> {
        Ok(self
            .block_edge_lists(key, &[(arg, rows, cols)])?
            .pop()
            .unwrap())
    }

    /// Several (rows, cols) lists of edges of a known block, range-checked, read together (so
    /// that large ones are converted in parallel). Each `arg` names the rows; "rows" in it
    /// becomes "cols" for the columns.
    fn block_edge_lists(
        &self,
        key: BlockKey,
        lists: &[(&str, &Bound<'_, PyAny>, &Bound<'_, PyAny>)],
    ) -> PyResult<Vec<(Vec<u32>, Vec<u32>)>> {
        let (size_a, size_b) = {
            let g = self.inner.read();
            (g.layer_size(key.0), g.layer_size(key.1))
        };
        let (target, source) = (
            format!("target layer {} of size {size_b}", key.1),
            format!("source layer {} of size {size_a}", key.0),
        );
        let cols_args: Vec<String> = lists
            .iter()
            .map(|(arg, ..)| arg.replace("rows", "cols"))
            .collect();
        let mut args = Vec::with_capacity(2 * lists.len());
        for (&(arg, rows, cols), cols_arg) in lists.iter().zip(&cols_args) {
            args.push(IndexArg {
                obj: rows,
                arg,
                bound: size_b,
                what: &target,
            });
            args.push(IndexArg {
                obj: cols,
                arg: cols_arg,
                bound: size_a,
                what: &source,
            });
        }
        let mut vecs = index_vecs(&args)?.into_iter();
        Ok(lists
            .iter()
            .map(|_| (vecs.next().unwrap(), vecs.next().unwrap()))
            .collect())
    }

    fn slot_args(
        &self,
        layer: &Bound<'_, PyAny>,
        slots: &Bound<'_, PyAny>,
    ) -> PyResult<(u32, Vec<u32>)> {
        let layer = self.layer(layer)?;
        let size = self.inner.read().layer_size(layer);
        let slots = index_vec(
            slots,
            "slots",
            size,
            &format!("layer {layer} of size {size}"),
        )?;
        Ok((layer, slots))
    }
}

#[pymethods]
impl PyGraph {
    #[new]
    #[pyo3(signature = (layer_sizes, density=1.0, *, seed=0, distribution="uniform", block_density=None, stats_config=None, blocks=None))]
    /// A layered graph with every adjacent block (or the listed `blocks`) populated at `density`
    /// ("uniform": each block gets round(density * rows * cols) edges; "erk": density proportional
    /// to (rows + cols) / (rows * cols), capped at 1, total exact). `block_density` fixes chosen
    /// blocks; `seed` fixes the structure.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        layer_sizes: &Bound<'_, PyAny>,
        density: f64,
        #[pyo3(from_py_with = int_not_bool)] seed: i128,
        distribution: &str,
        block_density: Option<&Bound<'_, PyAny>>,
        stats_config: Option<&Bound<'_, PyAny>>,
        blocks: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let sizes = layer_sizes_arg(layer_sizes)?;
        let blocks = match blocks {
            None => None,
            Some(list) => Some(
                list.try_iter()
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "blocks: expected a list of (a, b) pairs, got {}",
                            describe(list)
                        ))
                    })?
                    .map(|key| block_key_arg(&key?, "blocks"))
                    .collect::<PyResult<Vec<_>>>()?,
            ),
        };
        let mut init = InitSpec {
            density,
            distribution: Distribution::parse(distribution).or_raise()?,
            block_density: Vec::new(),
            seed: u64_arg("seed", seed)?,
            blocks,
        };
        if let Some(overrides) = block_density {
            let overrides = dict_arg(
                overrides,
                "block_density",
                "a mapping of (a, b) blocks to densities",
            )?;
            for (key, value) in overrides.iter() {
                let key = block_key_arg(&key, "block_density")?;
                let d: f64 = value.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "block_density[{key:?}]: expected a number, got {}",
                        describe(&value)
                    ))
                })?;
                init.block_density.push((key, d));
            }
        }
        let config = stats_config_arg(StatsConfig::default(), stats_config)?;
        let mut graph = py.detach(|| Graph::new(&sizes, &init)).or_raise()?;
        graph.set_stats_config(config).or_raise()?;
        Ok(PyGraph::wrap(graph))
    }

    #[staticmethod]
    #[pyo3(signature = (layer_sizes, blocks, *, seed=0, stats_config=None))]
    /// A graph whose blocks are exactly the given ones: each value is a scipy.sparse matrix, an
    /// (indptr, indices) pair, or a 2-D bool mask of shape (size of layer b, size of layer a).
    fn from_blocks(
        py: Python<'_>,
        layer_sizes: &Bound<'_, PyAny>,
        blocks: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = int_not_bool)] seed: i128,
        stats_config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let sizes = layer_sizes_arg(layer_sizes)?;
        let seed = u64_arg("seed", seed)?;
        let config = stats_config_arg(StatsConfig::default(), stats_config)?;
        let blocks = dict_arg(
            blocks,
            "blocks",
            "a mapping of (a, b) blocks to their edges",
        )?;
        let mut owned = Vec::with_capacity(blocks.len());
        for (key, value) in blocks.iter() {
            let key = block_key_arg(&key, "blocks")?;
            owned.push((key, read_block(&value, &format!("blocks[{key:?}]"))?));
        }
        let mut graph = py
            .detach(|| {
                let inputs = owned
                    .iter()
                    .map(|(key, block)| {
                        let input = match block {
                            OwnedBlock::Csr {
                                indptr,
                                indices,
                                shape,
                            } => BlockInput::Csr {
                                indptr,
                                indices,
                                shape: *shape,
                            },
                            OwnedBlock::Dense { mask, shape } => BlockInput::Dense {
                                mask,
                                shape: *shape,
                            },
                        };
                        (*key, input)
                    })
                    .collect();
                Graph::from_blocks(&sizes, seed, inputs)
            })
            .or_raise()?;
        graph.set_stats_config(config).or_raise()?;
        Ok(PyGraph::wrap(graph))
    }

    #[staticmethod]
    /// The graph serialised by `to_bytes`.
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<Self> {
        let bytes = data.as_bytes().to_vec();
        let graph = py.detach(|| Graph::from_bytes(&bytes)).or_raise()?;
        Ok(PyGraph::wrap(graph))
    }

    // ------------------------------------------------------------------ shape and bookkeeping

    #[getter]
    /// Number of neurons in each layer.
    fn layer_sizes(&self) -> Vec<u32> {
        self.inner.read().layer_sizes()
    }

    #[getter]
    /// Number of layers (inputs and outputs included).
    fn num_layers(&self) -> usize {
        self.inner.read().num_layers()
    }

    #[getter]
    /// Number of living neurons.
    fn num_neurons(&self) -> usize {
        self.inner.read().num_neurons()
    }

    #[getter]
    /// Number of neuron ids issued so far (ids are never reused).
    fn num_ids(&self) -> usize {
        self.inner.read().num_ids()
    }

    #[getter]
    /// The step counter; ages and edge birth steps are measured against it.
    fn step(&self) -> u32 {
        self.inner.read().step()
    }

    #[pyo3(signature = (steps=1))]
    /// Moves the step counter forward by `steps` and returns the new step.
    fn advance(&self, #[pyo3(from_py_with = int_not_bool)] steps: i128) -> PyResult<u32> {
        let steps = u64_arg("steps", steps)?;
        self.inner.write().advance(steps).or_raise()
    }

    #[getter]
    /// The (source layer, target layer) pairs that have a block, sorted.
    fn blocks(&self) -> Vec<BlockKey> {
        self.inner.read().block_keys()
    }

    /// Whether block (a, b) exists.
    fn has_block(&self, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
        let (a, b) = (int_arg(a, "a")?, int_arg(b, "b")?);
        let (Ok(a), Ok(b)) = (u32::try_from(a), u32::try_from(b)) else {
            return Ok(false);
        };
        Ok(self.inner.read().has_block(a, b))
    }

    /// Adds an empty block from layer a to layer b > a (a skip block when b > a + 1).
    fn add_block(&self, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<()> {
        let (a, b) = (int_arg(a, "a")?, int_arg(b, "b")?);
        let mut g = self.inner.write();
        let a = g.check_layer("a", a).or_raise()?;
        let b = g.check_layer("b", b).or_raise()?;
        g.add_block(a, b).or_raise()
    }

    /// Removes block (a, b) and its edges; refused while any of them is frozen.
    fn remove_block(&self, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = self.block_key(a, b)?;
        self.inner.write().remove_block(key.0, key.1).or_raise()
    }

    #[getter]
    /// Number of edges over all blocks.
    fn nnz(&self) -> usize {
        self.inner.read().nnz()
    }

    /// Number of edges in block (a, b).
    fn block_nnz(&self, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<usize> {
        let key = self.block_key(a, b)?;
        Ok(self.inner.read().block(key).or_raise()?.nnz())
    }

    #[pyo3(signature = (a=None, b=None))]
    /// Edges present over edges possible: of the whole graph, or of block (a, b).
    fn density(&self, a: Option<&Bound<'_, PyAny>>, b: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        match (a, b) {
            (None, None) => Ok(self.inner.read().density()),
            (Some(a), Some(b)) => {
                let key = self.block_key(a, b)?;
                let g = self.inner.read();
                let block = g.block(key).or_raise()?;
                Ok(if block.capacity() == 0 {
                    0.0
                } else {
                    block.nnz() as f64 / block.capacity() as f64
                })
            }
            _ => Err(invalid(
                "b",
                "give both a and b for a block's density, or neither for the whole graph",
            )),
        }
    }

    #[getter]
    /// Bytes held by the connectivity structure (indices, birth steps, frozen flags, row pointers).
    fn nbytes(&self) -> usize {
        self.inner.read().nbytes()
    }

    // ------------------------------------------------------------------ edge queries

    /// Block (a, b) as int64 (indptr, indices): rows are target slots in b, columns source slots in a.
    fn csr<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<(Ids<'py>, Ids<'py>)> {
        let key = self.block_key(a, b)?;
        let g = self.inner.read();
        let block = g.block(key).or_raise()?;
        Ok((
            i64_array(py, block.indptr()),
            i64_array(py, block.indices()),
        ))
    }

    /// Block (a, b) as a bool scipy.sparse.csr_array of shape (size of b, size of a).
    fn to_scipy<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = self.block_key(a, b)?;
        let g = self.inner.read();
        let block = g.block(key).or_raise()?;
        let shape = (g.layer_size(key.1), g.layer_size(key.0));
        let data = vec![true; block.nnz()].into_pyarray(py);
        // int32 indices when they fit, as scipy itself would choose.
        let (indptr, indices) =
            if block.nnz() <= i32::MAX as usize && block.shape().1 <= i32::MAX as u32 {
                let indptr: Vec<i32> = block.indptr().iter().map(|&p| p as i32).collect();
                let indices: Vec<i32> = block.indices().iter().map(|&c| c as i32).collect();
                (
                    indptr.into_pyarray(py).into_any(),
                    indices.into_pyarray(py).into_any(),
                )
            } else {
                (
                    i64_array(py, block.indptr()).into_any(),
                    i64_array(py, block.indices()).into_any(),
                )
            };
        drop(g);
        let sparse = py.import("scipy.sparse")?;
        sparse.call_method1("csr_array", ((data, indices, indptr), shape))
    }

    fn to_dense<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let key = self.block_key(a, b)?;
        let (mask, rows, cols) = py
            .detach(|| {
                let g = self.inner.read();
                let block = g.block(key)?;
                let (rows, cols) = block.shape();
                Ok((block.to_dense(), rows as usize, cols as usize))
            })
            .or_raise()?;
        mask.into_pyarray(py).reshape([rows, cols])
    }

    /// The step at which each edge of block (a, b) was added, aligned with `csr(a, b)[1]`.
    fn edge_births<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<Ids<'py>> {
        let key = self.block_key(a, b)?;
        Ok(i64_array(
            py,
            &self.inner.read().block(key).or_raise()?.births(),
        ))
    }

    /// Whether each edge of block (a, b) is frozen, aligned with `csr(a, b)[1]`.
    fn edge_frozen<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let key = self.block_key(a, b)?;
        Ok(self
            .inner
            .read()
            .block(key)
            .or_raise()?
            .frozen()
            .into_pyarray(py))
    }

    /// Whether each edge (rows[i], cols[i]) of block (a, b) exists.
    fn has_edges<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        rows: &Bound<'py, PyAny>,
        cols: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let (key, rows, cols) = self.edge_args((a, b), "rows", rows, cols)?;
        let found = py
            .detach(|| self.inner.read().block(key)?.contains(&rows, &cols))
            .or_raise()?;
        Ok(found.into_pyarray(py))
    }

    /// Edges into each neuron of `layer`, over every block that targets it.
    fn fan_in<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, &self.inner.read().fan_in(layer)))
    }

    /// Edges out of each neuron of `layer`, over every block that it feeds.
    fn fan_out<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, &self.inner.read().fan_out(layer)))
    }

    // ------------------------------------------------------------------ edge mutations

    /// Adds edges (rows[i], cols[i]) to block (a, b), born at the current step. Each must be new
    /// and named once; otherwise nothing changes and EdgeError is raised.
    fn add_edges(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, rows, cols) = self.edge_args((a, b), "rows", rows, cols)?;
        py.detach(|| self.inner.write().add_edges(key, &rows, &cols))
            .or_raise()
    }

    /// Removes edges (rows[i], cols[i]) from block (a, b). Each must exist, be named once and not
    /// be frozen; otherwise nothing changes.
    fn remove_edges(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, rows, cols) = self.edge_args((a, b), "rows", rows, cols)?;
        py.detach(|| self.inner.write().remove_edges(key, &rows, &cols))
            .or_raise()
    }

    #[allow(clippy::too_many_arguments)]
    /// Drops edges (drop_rows, drop_cols) and grows edges (grow_rows, grow_cols) of block (a, b) in
    /// one pass: the prune-and-regrow step. An edge may not be both dropped and grown, unless
    /// `regrow_dropped`: then it is dropped and grown again, reborn now, as `prune_and_grow(...,
    /// regrow_dropped=True)` does, so a plan it returned replays exactly on another copy of the
    /// graph. Nothing changes on error.
    #[pyo3(signature = (a, b, drop_rows, drop_cols, grow_rows, grow_cols, *, regrow_dropped = false))]
    fn rewire(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        drop_rows: &Bound<'_, PyAny>,
        drop_cols: &Bound<'_, PyAny>,
        grow_rows: &Bound<'_, PyAny>,
        grow_cols: &Bound<'_, PyAny>,
        regrow_dropped: bool,
    ) -> PyResult<()> {
        let key = self.block_key(a, b)?;
        let mut lists = self.block_edge_lists(
            key,
            &[
                ("drop_rows", drop_rows, drop_cols),
                ("grow_rows", grow_rows, grow_cols),
            ],
        )?;
        let ((gr, gc), (dr, dc)) = (lists.pop().unwrap(), lists.pop().unwrap());
        py.detach(|| {
            let mut graph = self.inner.write();
            if regrow_dropped {
                graph.rewire_regrowing(key, (&dr, &dc), (&gr, &gc))
            } else {
                graph.rewire(key, (&dr, &dc), (&gr, &gc))
            }
        })
        .or_raise()
    }

    /// Drops up to `count` edges of block (a, b) and grows as many absent positions: one
    /// prune-and-regrow step (SET, RigL), decided in the core; returns what it did.
    ///
    /// Scores rank positions by magnitude. Each is a dense (rows, cols) array over the block
    /// (read in place when it is C-contiguous float32, e.g. a CPU tensor's `.numpy()`), a
    /// `(rows, cols, values)` tuple of candidates (positions not listed do not compete), or, for
    /// growth only, "random" (uniform, from the graph's seeded RNG).
    ///
    /// Dropped: the non-frozen edges with the smallest |drop_scores|. Grown: the positions
    /// absent before this call with the largest |grow_scores|; with `regrow_dropped` an edge
    /// dropped now may be grown again (it is then reborn). Ties go to the smaller (row, col).
    /// The drop and grow counts are always equal, so the edge count never drifts; they fall
    /// short of `count` when fewer edges can be dropped or fewer positions grown.
    ///
    /// Returns {"drop_rows", "drop_cols", "grow_rows", "grow_cols"} (int64 slots, sorted by
    /// (row, col)). NaN/inf scores, a wrong shape or bad candidates raise and change nothing.
    #[pyo3(signature = (a, b, drop_scores, grow_scores, count, *, regrow_dropped = false))]
    #[allow(clippy::too_many_arguments)]
    fn prune_and_grow<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'py, PyAny>,
        b: &Bound<'py, PyAny>,
        drop_scores: &Bound<'py, PyAny>,
        grow_scores: &Bound<'py, PyAny>,
        count: &Bound<'py, PyAny>,
        regrow_dropped: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let key = self.block_key(a, b)?;
        let count = non_negative(count, "count")?;
        let drop = self.scores_arg(key, "drop_scores", drop_scores)?;
        let grow = self.scores_arg(key, "grow_scores", grow_scores)?;
        let (drop_s, grow_s) = (drop.scores()?, grow.scores()?);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let plan = py
            .detach(|| {
                self.inner
                    .write()
                    .prune_and_grow(key, drop_s, grow_s, count, regrow_dropped)
            })
            .or_raise()?;
        let out = PyDict::new(py);
        out.set_item("drop_rows", i64_array(py, &plan.drop_rows))?;
        out.set_item("drop_cols", i64_array(py, &plan.drop_cols))?;
        out.set_item("grow_rows", i64_array(py, &plan.grow_rows))?;
        out.set_item("grow_cols", i64_array(py, &plan.grow_cols))?;
        Ok(out)
    }

    /// Freezes existing edges: a frozen edge is only removed after `unfreeze_edges`.
    fn freeze_edges(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, rows, cols) = self.edge_args((a, b), "rows", rows, cols)?;
        py.detach(|| self.inner.write().set_frozen(key, &rows, &cols, true))
            .or_raise()
    }

    /// Unfreezes existing edges.
    fn unfreeze_edges(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        rows: &Bound<'_, PyAny>,
        cols: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, rows, cols) = self.edge_args((a, b), "rows", rows, cols)?;
        py.detach(|| self.inner.write().set_frozen(key, &rows, &cols, false))
            .or_raise()
    }

    // ------------------------------------------------------------------ neurons

    /// The id of the neuron in each slot of `layer`.
    fn ids<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, self.inner.read().ids(layer)))
    }

    /// (layers, slots) of living neurons given by id.
    fn locate<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<(Ids<'py>, Ids<'py>)> {
        let ids = int_vec(ids, "ids")?;
        let g = self.inner.read();
        let mut layers = Vec::with_capacity(ids.len());
        let mut slots = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let (layer, slot) = g.locate(&format!("ids[{i}]"), id).or_raise()?;
            layers.push(layer);
            slots.push(slot);
        }
        Ok((i64_array(py, &layers), i64_array(py, &slots)))
    }

    /// Birth step of each neuron of `layer`, by slot.
    fn births<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, &self.inner.read().births(layer)))
    }

    /// Age (step - birth step) of each neuron of `layer`, by slot.
    fn ages<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, &self.inner.read().ages(layer)))
    }

    /// Generation of each neuron of `layer` (0 without parents, else 1 + the largest parent's).
    fn generations<'py>(&self, py: Python<'py>, layer: &Bound<'_, PyAny>) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        Ok(i64_array(py, &self.inner.read().generations(layer)))
    }

    #[pyo3(signature = (layer, count, parents=None))]
    /// Appends `count` neurons without edges to `layer`; `parents` gives up to two parent ids each.
    /// Returns the new ids.
    fn add_neurons<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        count: &Bound<'py, PyAny>,
        parents: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Ids<'py>> {
        let layer = self.layer(layer)?;
        let count = non_negative(count, "count")?;
        let count = u32::try_from(count)
            .map_err(|_| invalid("count", format!("must be below 2**32, got {count}")))?;
        let parents: Vec<Vec<i64>> = match parents {
            None => Vec::new(),
            Some(p) => p
                .try_iter()
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "parents: expected a sequence, got {}",
                        describe(p)
                    ))
                })?
                .enumerate()
                .map(|(i, item)| int_vec(&item?, &format!("parents[{i}]")))
                .collect::<PyResult<_>>()?,
        };
        let ids = self
            .inner
            .write()
            .add_neurons(layer, count, &parents)
            .or_raise()?;
        Ok(i64_array(py, &ids))
    }

    /// Removes neurons and their edges and compacts the layer's slots. Returns `kept`: new slot i
    /// holds the neuron that was in old slot kept[i] (so `W = W[kept]`).
    fn remove_neurons<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        slots: &Bound<'py, PyAny>,
    ) -> PyResult<Ids<'py>> {
        let (layer, slots) = self.slot_args(layer, slots)?;
        let kept = py
            .detach(|| self.inner.write().remove_neurons(layer, &slots))
            .or_raise()?;
        Ok(i64_array(py, &kept))
    }

    /// Replaces neurons in place by fresh ones (new ids whose parent is the old id, age 0, empty
    /// statistics); their edges stay. Returns the new ids.
    fn reset_neurons<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        slots: &Bound<'py, PyAny>,
    ) -> PyResult<Ids<'py>> {
        let (layer, slots) = self.slot_args(layer, slots)?;
        let ids = self.inner.write().reset_neurons(layer, &slots).or_raise()?;
        Ok(i64_array(py, &ids))
    }

    /// A layer's fitness as z-scores within the layer, `(f - mean) / std` (all 0 when the values
    /// do not vary). `fitness` (one value per slot) replaces the accumulated fitness.
    #[pyo3(signature = (layer, fitness=None))]
    fn normalized_fitness<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        fitness: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let layer = self.layer(layer)?;
        let raw = fitness.map(|f| f64_vec(f, "fitness")).transpose()?;
        let z = self
            .inner
            .read()
            .normalized_fitness(layer, raw.as_deref())
            .or_raise()?;
        Ok(z.into_pyarray(py))
    }

    /// A layer's raw fitness, one value per slot: "default" (the accumulated
    /// alpha*grad_norm + beta*variance - gamma*stagnation), "utility" (Continual Backprop:
    /// activation magnitude x `out_weight`, each neuron's mean |outgoing weight|) or "dormancy"
    /// (ReDo: activation magnitude over the layer's mean). Activation magnitude is the RMS
    /// sqrt(E[h^2]) of the accumulated statistics.
    #[pyo3(signature = (layer, kind="default", out_weight=None))]
    fn fitness_scores<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        kind: &str,
        out_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let layer = self.layer(layer)?;
        let kind = FitnessKind::parse(kind).or_raise()?;
        let w = out_weight.map(|w| f64_vec(w, "out_weight")).transpose()?;
        let scores = self
            .inner
            .read()
            .fitness_scores(layer, kind, w.as_deref())
            .or_raise()?;
        Ok(scores.into_pyarray(py))
    }

    /// Each neuron's life stage in a layer by age: 0 newborn (younger than `mature`), 1 mature,
    /// 2 senior (from `senior` on).
    fn stages<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        mature: &Bound<'_, PyAny>,
        senior: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let layer = self.layer(layer)?;
        let mature = step_arg(mature, "mature")?;
        let senior = step_arg(senior, "senior")?;
        if senior < mature {
            return Err(invalid(
                "senior",
                format!("must be at least mature ({mature}), got {senior}"),
            ));
        }
        let stages = self
            .inner
            .read()
            .stages(layer, StageAges { mature, senior })
            .or_raise()?;
        Ok(stages.into_pyarray(py))
    }

    /// Apoptosis: kills the least fit mature neurons of `layer` (at most `fraction` of those at
    /// least `maturity_age` steps old; with `threshold`, only those whose normalised fitness is
    /// below it) and replaces each in place by a newborn, decided in the core.
    ///
    /// `strategy` is "random", "mutation", "crossover" or "function_preserving"; parents are
    /// mature survivors drawn with probability proportional to `z - min(z) + 1e-3` of their
    /// normalised fitness `z`. A crossover's `alpha` (weight of the first parent) is uniform in
    /// the `alpha` range, or "fitness" for `w1 / (w1 + w2)`. Without two eligible parents a
    /// crossover falls back to a mutation of the only one, and without any to random regrowth.
    /// `fitness` (one value per slot) replaces the accumulated fitness.
    ///
    /// Returns columns over the replacements, in slot order: slot, dead, born (ids), parent_a,
    /// parent_b (slots, -1 for none), alpha (NaN for none), noise_seed (uint64), fitness
    /// (normalised, of the dead neuron), and "strategy" as actually applied per replacement.
    #[pyo3(signature = (layer, fraction, *, strategy="random", threshold=None, maturity_age=None, alpha=None, fitness=None, escalated=None))]
    #[allow(clippy::too_many_arguments)]
    fn apoptosis<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        fraction: f64,
        strategy: &str,
        threshold: Option<f64>,
        maturity_age: Option<&Bound<'_, PyAny>>,
        alpha: Option<&Bound<'_, PyAny>>,
        fitness: Option<&Bound<'_, PyAny>>,
        escalated: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let layer = self.layer(layer)?;
        let size = self.inner.read().layer_size(layer);
        let escalated = escalated
            .map(|e| {
                index_vec(
                    e,
                    "escalated",
                    size,
                    &format!("layer {layer} of size {size}"),
                )
            })
            .transpose()?
            .unwrap_or_default();
        let mut regrowth = Regrowth::parse(strategy).or_raise()?;
        if let Some(alpha) = alpha {
            let rule = if alpha.extract::<String>().is_ok_and(|s| s == "fitness") {
                AlphaRule::FitnessWeighted
            } else {
                let (low, high): (f64, f64) = alpha.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "alpha: expected a (low, high) range or \"fitness\", got {}",
                        describe(alpha)
                    ))
                })?;
                AlphaRule::Uniform { low, high }
            };
            match &mut regrowth {
                Regrowth::Crossover(r) => *r = rule,
                _ => {
                    return Err(invalid(
                        "alpha",
                        format!("only applies to the crossover strategy, not {strategy:?}"),
                    ))
                }
            }
        }
        let spec = ApoptosisSpec {
            fraction,
            threshold,
            maturity_age: maturity_age.map_or(Ok(0), |a| step_arg(a, "maturity_age"))?,
            regrowth,
        };
        let raw = fitness.map(|f| f64_vec(f, "fitness")).transpose()?;
        let plan = self
            .inner
            .write()
            .apoptosis(layer, &spec, raw.as_deref(), &escalated)
            .or_raise()?;
        let parent = |k: usize| -> Vec<i64> {
            plan.iter()
                .map(|r| r.parent_slots.get(k).map_or(-1, |&s| s as i64))
                .collect()
        };
        let out = PyDict::new(py);
        out.set_item(
            "slot",
            i64_array(py, &plan.iter().map(|r| r.slot).collect::<Vec<_>>()),
        )?;
        out.set_item(
            "dead",
            i64_array(py, &plan.iter().map(|r| r.dead).collect::<Vec<_>>()),
        )?;
        out.set_item(
            "born",
            i64_array(py, &plan.iter().map(|r| r.born).collect::<Vec<_>>()),
        )?;
        out.set_item("parent_a", parent(0).into_pyarray(py))?;
        out.set_item("parent_b", parent(1).into_pyarray(py))?;
        let alphas: Vec<f64> = plan.iter().map(|r| r.alpha.unwrap_or(f64::NAN)).collect();
        out.set_item("alpha", alphas.into_pyarray(py))?;
        let seeds: Vec<u64> = plan.iter().map(|r| r.noise_seed).collect();
        out.set_item("noise_seed", seeds.into_pyarray(py))?;
        let fit: Vec<f64> = plan.iter().map(|r| r.fitness).collect();
        out.set_item("fitness", fit.into_pyarray(py))?;
        let applied: Vec<&str> = plan
            .iter()
            .map(|r| match (regrowth, r.parent_slots.len()) {
                (Regrowth::Crossover(_), 2) => "crossover",
                (Regrowth::Crossover(_) | Regrowth::Mutation, 1) => "mutation",
                (Regrowth::Crossover(_) | Regrowth::Mutation, _) => "random",
                (other, _) => other.name(),
            })
            .collect();
        out.set_item("strategy", applied)?;
        let escalated: Vec<bool> = plan.iter().map(|r| r.escalated).collect();
        out.set_item("escalated", escalated.into_pyarray(py))?;
        Ok(out)
    }

    /// The high and low extrema of hidden `layer` from its accumulated statistics, with the
    /// preset of `activation` ("tanh", "sigmoid" or "relu"); see `growcore.Graph.extrema` in
    /// the stubs for the definitions. Returns columns "high", "high_score", "low", "low_score"
    /// (slots, strongest first).
    #[pyo3(signature = (layer, activation="relu", *, q=0.5, dead_fraction=0.9, fraction=0.1, high_z=1.0, min_observations=1))]
    #[allow(clippy::too_many_arguments)]
    fn extrema<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        activation: &str,
        q: f64,
        dead_fraction: f64,
        fraction: f64,
        high_z: f64,
        #[pyo3(from_py_with = int_not_bool)] min_observations: i128,
    ) -> PyResult<Bound<'py, PyDict>> {
        let layer = self.layer(layer)?;
        let options = growth::ExtremaOptions {
            q,
            dead_fraction,
            fraction,
            high_z,
            min_observations,
        };
        growth::extrema(self, py, layer, activation, options)
    }

    /// One growth event: clones of the `high` extrema and routes from them to the `low` ones
    /// (each a mapping layer -> slots, strongest first), applied to the graph. See
    /// `growcore.Graph.grow` in the stubs.
    #[pyo3(signature = (high, low, *, katz=None, clone_type="both", clone_budget=4, max_layer_size=None, max_params=None, radius=3, routes_per_source=2, max_routes=None, fan_in_cap=None, load="fan_in"))]
    #[allow(clippy::too_many_arguments)]
    fn grow<'py>(
        &self,
        py: Python<'py>,
        high: &Bound<'py, PyAny>,
        low: &Bound<'py, PyAny>,
        katz: Option<&Bound<'py, PyAny>>,
        clone_type: &str,
        #[pyo3(from_py_with = int_not_bool)] clone_budget: i128,
        #[pyo3(from_py_with = optional_int_not_bool)] max_layer_size: Option<i128>,
        #[pyo3(from_py_with = optional_int_not_bool)] max_params: Option<i128>,
        #[pyo3(from_py_with = int_not_bool)] radius: i128,
        #[pyo3(from_py_with = int_not_bool)] routes_per_source: i128,
        #[pyo3(from_py_with = optional_int_not_bool)] max_routes: Option<i128>,
        #[pyo3(from_py_with = optional_int_not_bool)] fan_in_cap: Option<i128>,
        load: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let options = growth::GrowOptions {
            katz,
            clone_type,
            clone_budget,
            max_layer_size,
            max_params,
            radius,
            routes_per_source,
            max_routes,
            fan_in_cap,
            load,
        };
        growth::grow(self, py, high, low, options)
    }

    /// How steady each neuron's activation level is, in [0, 1]: `1 - min(1, |fast_mean - mean|
    /// / std)` from the accumulated statistics (0 before any observation).
    fn stability<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let layer = self.layer(layer)?;
        let values = self.inner.read().stability(layer).or_raise()?;
        Ok(values.into_pyarray(py))
    }

    /// The multi-objective fitness of a layer: `w_i z(importance) + w_d z(diversity) + w_s
    /// z(stability) - w_e z(energy)`, each term z-scored within the layer. Returns the raw
    /// terms and "fitness". A term with weight 0 may be left out.
    #[pyo3(signature = (layer, *, importance=None, diversity=None, energy=None, weights=(1.0, 0.5, 0.5, 0.25)))]
    fn multi_objective_fitness<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        importance: Option<&Bound<'_, PyAny>>,
        diversity: Option<&Bound<'_, PyAny>>,
        energy: Option<&Bound<'_, PyAny>>,
        weights: (f64, f64, f64, f64),
    ) -> PyResult<Bound<'py, PyDict>> {
        let layer = self.layer(layer)?;
        let read = |v: Option<&Bound<'_, PyAny>>, arg: &str| v.map(|v| f64_vec(v, arg)).transpose();
        let (importance, diversity, energy) = (
            read(importance, "importance")?,
            read(diversity, "diversity")?,
            read(energy, "energy")?,
        );
        let weights = ObjectiveWeights {
            importance: weights.0,
            diversity: weights.1,
            stability: weights.2,
            energy: weights.3,
        };
        let scores = self
            .inner
            .read()
            .multi_objective_fitness(
                layer,
                weights,
                importance.as_deref(),
                diversity.as_deref(),
                energy.as_deref(),
            )
            .or_raise()?;
        let out = PyDict::new(py);
        out.set_item("importance", scores.importance.into_pyarray(py))?;
        out.set_item("diversity", scores.diversity.into_pyarray(py))?;
        out.set_item("stability", scores.stability.into_pyarray(py))?;
        out.set_item("energy", scores.energy.into_pyarray(py))?;
        out.set_item("fitness", scores.fitness.into_pyarray(py))?;
        Ok(out)
    }

    /// Every neuron ever, as numpy columns: id, layer, slot, birth_step, death_step, generation,
    /// parent_a, parent_b (-1 for none) and cause ("alive", "removed", "reset", "apoptosis",
    /// "senescence").
    fn lineage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.inner.read();
        let records = g.lineage();
        let col = |f: &dyn Fn(&growcore_core::NeuronRecord) -> i64| -> Vec<i64> {
            records.iter().map(f).collect()
        };
        let table = PyDict::new(py);
        table.set_item(
            "id",
            (0..records.len() as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        table.set_item("layer", col(&|r| r.layer as i64).into_pyarray(py))?;
        table.set_item(
            "slot",
            col(&|r| r.slot.map_or(-1, i64::from)).into_pyarray(py),
        )?;
        table.set_item("birth_step", col(&|r| r.birth as i64).into_pyarray(py))?;
        table.set_item(
            "death_step",
            col(&|r| r.death.map_or(-1, i64::from)).into_pyarray(py),
        )?;
        table.set_item("generation", col(&|r| r.generation as i64).into_pyarray(py))?;
        table.set_item(
            "parent_a",
            col(&|r| r.parents[0].map_or(-1, |p| p as i64)).into_pyarray(py),
        )?;
        table.set_item(
            "parent_b",
            col(&|r| r.parents[1].map_or(-1, |p| p as i64)).into_pyarray(py),
        )?;
        let causes: Vec<&str> = records.iter().map(|r| r.fate.name()).collect();
        let np = py.import("numpy")?;
        table.set_item("cause", np.call_method1("array", (causes,))?)?;
        Ok(table)
    }

    // ------------------------------------------------------------------ statistics

    #[pyo3(signature = (layer, mean=None, sq_mean=None, frac_high=None, frac_low=None, grad_norm=None))]
    #[allow(clippy::too_many_arguments)]
    /// Folds per-neuron float32 summaries of a batch into the statistics of `layer`: the four
    /// activation summaries together, the gradient norm, or both.
    fn observe(
        &self,
        layer: &Bound<'_, PyAny>,
        mean: Option<&Bound<'_, PyAny>>,
        sq_mean: Option<&Bound<'_, PyAny>>,
        frac_high: Option<&Bound<'_, PyAny>>,
        frac_low: Option<&Bound<'_, PyAny>>,
        grad_norm: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let layer = self.layer(layer)?;
        let read =
            |v: Option<&Bound<'_, PyAny>>, name: &str| v.map(|v| f32_vec(v, name)).transpose();
        let (mean, sq_mean) = (read(mean, "mean")?, read(sq_mean, "sq_mean")?);
        let (frac_high, frac_low) = (read(frac_high, "frac_high")?, read(frac_low, "frac_low")?);
        let grad_norm = read(grad_norm, "grad_norm")?;
        let obs = Observation {
            mean: mean.as_deref(),
            sq_mean: sq_mean.as_deref(),
            frac_high: frac_high.as_deref(),
            frac_low: frac_low.as_deref(),
            grad_norm: grad_norm.as_deref(),
        };
        self.inner.write().observe(layer, &obs).or_raise()
    }

    /// The L2 norm of each target neuron's present edges in a dense (rows, cols) matrix over
    /// block (a, b), e.g. a weight gradient restricted to the kept weights: float32, one per row.
    /// Read in place when C-contiguous float32 (a CPU tensor's `.numpy()`), without the GIL.
    fn row_norms<'py>(
        &self,
        py: Python<'py>,
        a: &Bound<'py, PyAny>,
        b: &Bound<'py, PyAny>,
        values: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let key = self.block_key(a, b)?;
        let values = dense_f32::<numpy::Ix2>(values, "values", &self.block_shape(key))?;
        let values = values.as_slice()?;
        let norms = py
            .detach(|| self.inner.read().block(key)?.row_norms(values))
            .or_raise()?;
        Ok(norms.into_pyarray(py))
    }

    /// Bias-corrected statistics of `layer`, with stagnation and fitness.
    fn stats<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let layer = self.layer(layer)?;
        let r = self.inner.read().stats(layer);
        let out = PyDict::new(py);
        for (name, values) in [
            ("mean", r.mean),
            ("sq_mean", r.sq_mean),
            ("variance", r.variance),
            ("frac_high", r.frac_high),
            ("frac_low", r.frac_low),
            ("grad_norm", r.grad_norm),
            ("fast_mean", r.fast_mean),
            ("stagnation", r.stagnation),
            ("fitness", r.fitness),
        ] {
            out.set_item(name, values.into_pyarray(py))?;
        }
        out.set_item("observations", i64_array(py, &r.observations))?;
        out.set_item("grad_observations", i64_array(py, &r.grad_observations))?;
        Ok(out)
    }

    /// alpha * grad_norm + beta * variance - gamma * stagnation for each neuron of `layer`.
    fn fitness<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let layer = self.layer(layer)?;
        Ok(self.inner.read().stats(layer).fitness.into_pyarray(py))
    }

    #[getter]
    /// Per layer, how many neuron-samples were skipped because they held NaN or inf.
    fn nonfinite_counts(&self) -> Vec<u64> {
        self.inner.read().nonfinite_counts()
    }

    #[getter]
    /// The statistics options: decay, fast_decay, alpha, beta, gamma, stagnation_warmup, strict.
    fn stats_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        state::stats_config_dict(py, self.inner.read().stats_config())
    }

    #[pyo3(signature = (**options))]
    /// Changes some statistics options; an invalid value changes none.
    fn set_stats_config(&self, options: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let options = stats_options(options.map(|o| o.as_any()))?;
        let mut g = self.inner.write();
        let config = with_options(*g.stats_config(), &options)?;
        g.set_stats_config(config).or_raise()
    }

    // ------------------------------------------------------------------ integrity and persistence

    /// Checks every internal invariant (raises StateDictError naming the broken part).
    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.read().validate()).or_raise()
    }

    /// Everything about the graph as a versioned dict of numpy arrays and plain values.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = py.detach(|| self.inner.read().to_state());
        state::to_dict(py, state)
    }

    /// Replaces this graph by the one in `state`; strict, and unchanged on error.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let state = state::from_dict(state)?;
        let graph = py.detach(|| Graph::from_state(state)).or_raise()?;
        *self.inner.write() = graph;
        Ok(())
    }

    /// The whole graph as bytes (`Graph.from_bytes` reads them back).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| self.inner.read().to_bytes());
        PyBytes::new(py, &bytes)
    }

    /// An independent copy.
    fn copy(&self, py: Python<'_>) -> Self {
        PyGraph::wrap(py.detach(|| self.inner.read().clone()))
    }

    /// Makes this graph equal to `snapshot` (a copy taken earlier), in place: every holder of
    /// this object sees the restored graph. No state-dict round trip; how a failed step puts
    /// the graph back.
    fn restore(&self, py: Python<'_>, snapshot: &Bound<'_, PyGraph>) {
        let other = snapshot.get();
        if std::ptr::eq(self, other) {
            return; // restoring a graph from itself (and no lock taken twice)
        }
        let copy = py.detach(|| other.inner.read().clone());
        *self.inner.write() = copy;
    }

    fn __copy__(&self, py: Python<'_>) -> Self {
        self.copy(py)
    }

    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> Self {
        self.copy(py)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let constructor = slf.get_type().getattr("from_bytes")?;
        Ok((constructor, (slf.get().to_bytes(py),)))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        let Ok(other) = other.cast::<PyGraph>() else {
            return py.NotImplemented();
        };
        let other = other.get();
        // Both locks in one global order (by address): two threads comparing a == b and b == a
        // while writers wait would otherwise each hold one read lock and wait for the other.
        let (first, second) = if (self as *const Self) < (other as *const Self) {
            (self, other)
        } else {
            (other, self)
        };
        let equal = std::ptr::eq(self, other)
            || py.detach(|| {
                let first = first.inner.read();
                *first == *second.inner.read()
            });
        equal
            .into_pyobject(py)
            .map_or_else(|_| py.None(), |b| b.to_owned().into_any().unbind())
    }

    fn __repr__(&self) -> String {
        let g = self.inner.read();
        format!(
            "Graph(layer_sizes={:?}, blocks={}, nnz={}, density={:.4}, step={})",
            g.layer_sizes(),
            g.block_keys().len(),
            g.nnz(),
            g.density(),
            g.step()
        )
    }
}

/// A parsed score argument of `prune_and_grow`; dense arrays stay borrowed from Python.
enum ScoresArg<'py> {
    Dense(numpy::PyReadonlyArray2<'py, f32>),
    Listed(Vec<u32>, Vec<u32>, Vec<f32>),
    Random,
}

impl ScoresArg<'_> {
    fn scores(&self) -> PyResult<Scores<'_>> {
        Ok(match self {
            ScoresArg::Dense(arr) => Scores::Dense(arr.as_slice()?),
            ScoresArg::Listed(rows, cols, values) => Scores::Listed { rows, cols, values },
            ScoresArg::Random => Scores::Random,
        })
    }
}
