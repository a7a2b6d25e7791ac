//! `tlearn._tlearn`: the Python face of the library (PyO3). The classes here are thin: every
//! rule is the Rust library's (`tlearn_extract::Extractor`, `tlearn_model::Model`,
//! `tlearn_cache`), and the Python package `tlearn` wraps them with docstrings and the
//! scikit-learn transformer.
//!
//! - Codes go to numpy without a copy: the `Array2<f32>` the extractor fills becomes the
//!   array's buffer (`PyArray2::from_owned_array`); codes coming in are read in place.
//! - The GIL is released while images are read, decoded and encoded (`Python::detach`), so
//!   other Python threads run meanwhile.
//! - Every error is a Python exception carrying the Rust message (the chain joined by `: `, as
//!   the command line prints it): `FileNotFoundError` when a file is missing, `OSError` for
//!   other I/O errors, `ValueError` for the rest (a malformed head names the field). A panic
//!   anywhere in a call is caught at the boundary and raised as `RuntimeError`; none unwinds
//!   into Python.

use std::path::PathBuf;

use numpy::{PyArray2, PyReadonlyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};
use tlearn_cache::{parquet_codes, Augment, DecodeMode, LayerSpec, Pooling};
use tlearn_extract::{CacheOptions, Codes, Extractor, ExtractorOptions};
use tlearn_model::{Model, ModelOptions};

/// The Python exception for a Rust error, with the same message.
fn py_err(e: anyhow::Error) -> PyErr {
    let msg = format!("{e:#}");
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return if io.kind() == std::io::ErrorKind::NotFound {
                PyFileNotFoundError::new_err(msg)
            } else {
                PyOSError::new_err(msg)
            };
        }
    }
    PyValueError::new_err(msg)
}

/// Run `f`, a panic turned into `RuntimeError` (it must not unwind into the interpreter).
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in tlearn (please report): {what}"
            )))
        }
    }
}

fn parse<T: std::str::FromStr>(what: &str, v: &str) -> PyResult<T>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e| PyValueError::new_err(format!("{what}={v:?}: {e}")))
}

/// Codes and errors as Python values: a float32 array `[N, D]` (the buffer handed over) and a
/// list of `(index, message)`.
type PyCodes<'py> = (Bound<'py, PyArray2<f32>>, Vec<(usize, String)>);

fn to_py(py: Python<'_>, c: Codes) -> PyCodes<'_> {
    let errors = c.errors.into_iter().map(|e| (e.index, e.error)).collect();
    (PyArray2::from_owned_array(py, c.codes), errors)
}

/// An opened feature extractor (see `tlearn.Extractor`).
#[pyclass(name = "Extractor", module = "tlearn._tlearn", frozen)]
struct PyExtractor {
    inner: Extractor,
}

#[pymethods]
impl PyExtractor {
    #[new]
    #[pyo3(signature = (model, layer=None, pool="avg", augment="none", threads=None,
        decode="reduced", decode_memory=None, models_dir=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        layer: Option<String>,
        pool: &str,
        augment: &str,
        threads: Option<usize>,
        decode: &str,
        decode_memory: Option<u64>,
        models_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        guarded(|| {
            let layer = LayerSpec::parse(layer.as_deref())
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let opts = ExtractorOptions {
                models_dir,
                pool: parse::<Pooling>("pool", pool)?,
                augment: parse::<Augment>("augment", augment)?,
                decode: parse::<DecodeMode>("decode", decode)?,
                threads,
                decode_memory,
                ..ExtractorOptions::default()
            };
            let inner = py
                .detach(|| Extractor::open(&model, &layer, &opts))
                .map_err(py_err)?;
            Ok(PyExtractor { inner })
        })
    }

    /// Length of each code.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Worker threads.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// The fingerprint as JSON text (what a cache's `meta.json` records as `extractor`).
    fn fingerprint_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.fingerprint())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The cuts side by side in each code: `[(name, dim)]`.
    fn cuts(&self) -> Vec<(String, usize)> {
        self.inner
            .cuts()
            .into_iter()
            .map(|c| (c.name, c.dim))
            .collect()
    }

    /// Codes of image files, `(codes, errors)`; the GIL is released meanwhile.
    fn encode_paths<'py>(&self, py: Python<'py>, paths: Vec<PathBuf>) -> PyResult<PyCodes<'py>> {
        guarded(|| {
            let codes = py.detach(|| self.inner.encode_paths(&paths));
            Ok(to_py(py, codes))
        })
    }

    /// Codes of encoded images in memory, `(codes, errors)`; the GIL is released meanwhile.
    fn encode_bytes<'py>(
        &self,
        py: Python<'py>,
        items: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<PyCodes<'py>> {
        guarded(|| {
            // Borrowed from the bytes objects (immutable, kept alive by `items`): no copy.
            let views: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
            let codes = py.detach(|| self.inner.encode_bytes(&views));
            Ok(to_py(py, codes))
        })
    }

    /// Codes of encoded images as the bytes of one Parquet file in the `tlearn-codes` schema
    /// (`tlearn_cache::parquet_codes`): row `i` is `paths[i]`, `labels[i]`, the sha256 of
    /// `items[i]`, its code or its error. `fixed`: features as a fixed-size list (tlearn's,
    /// Ray's) or a plain list (Spark's `array<float>`). The GIL is released meanwhile.
    #[pyo3(signature = (items, paths, labels, fixed=true))]
    fn encode_parquet<'py>(
        &self,
        py: Python<'py>,
        items: Vec<Bound<'py, PyBytes>>,
        paths: Vec<String>,
        labels: Vec<Option<String>>,
        fixed: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guarded(|| {
            if paths.len() != items.len() || labels.len() != items.len() {
                return Err(PyValueError::new_err(format!(
                    "{} items, {} paths and {} labels: one each per image",
                    items.len(),
                    paths.len(),
                    labels.len()
                )));
            }
            let views: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
            let kind = if fixed {
                parquet_codes::ListKind::Fixed
            } else {
                parquet_codes::ListKind::Variable
            };
            let bytes = py
                .detach(|| {
                    let codes = self.inner.encode_bytes(&views);
                    let sha: Vec<Option<String>> = views
                        .iter()
                        .map(|v| Some(hex::encode(Sha256::digest(v))))
                        .collect();
                    let errors: Vec<(usize, String)> = codes
                        .errors
                        .into_iter()
                        .map(|e| (e.index, e.error))
                        .collect();
                    parquet_codes::codes_shard_bytes(
                        &paths,
                        &labels,
                        &sha,
                        codes.codes.view(),
                        &errors,
                        self.inner.fingerprint(),
                        kind,
                    )
                })
                .map_err(|e| py_err(e.into()))?;
            Ok(PyBytes::new(py, &bytes))
        })
    }

    /// The sidecar `_tlearn.json` of a codes directory written with this extractor's codes, as
    /// JSON text; `dataset` says where the images were (a folder or an engine's URI).
    fn codes_sidecar_json(&self, dataset: &str) -> PyResult<String> {
        let sidecar = parquet_codes::Sidecar::new(
            self.inner.fingerprint().clone(),
            self.inner.dim(),
            dataset,
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        );
        serde_json::to_string_pretty(&sidecar).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Extract a folder `DIR/<class>/<image>` into the feature cache `out`, as `tlearn
    /// extract` does; returns the run summary as JSON text.
    #[pyo3(signature = (dataset, out, overwrite=false, keep_views=false))]
    fn extract_dir(
        &self,
        py: Python<'_>,
        dataset: PathBuf,
        out: PathBuf,
        overwrite: bool,
        keep_views: bool,
    ) -> PyResult<String> {
        guarded(|| {
            let cache = CacheOptions {
                overwrite,
                progress: false,
                keep_views,
            };
            let summary = py
                .detach(|| self.inner.extract_dir(&dataset, &out, &cache))
                .map_err(py_err)?;
            serde_json::to_string(&summary).map_err(|e| PyValueError::new_err(e.to_string()))
        })
    }
}

/// A saved head with its backbone(s) (see `tlearn.Head`).
#[pyclass(name = "Head", module = "tlearn._tlearn", frozen)]
struct PyHead {
    inner: Model,
}

#[pymethods]
impl PyHead {
    #[staticmethod]
    #[pyo3(signature = (path, model=None, models_dir=None, threads=None))]
    fn load(
        path: PathBuf,
        model: Option<String>,
        models_dir: Option<PathBuf>,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        guarded(|| {
            let options = ModelOptions {
                models_dir,
                model,
                threads,
                ..ModelOptions::default()
            };
            let inner = Model::open(&path, options).map_err(py_err)?;
            Ok(PyHead { inner })
        })
    }

    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.classes().to_vec()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The fingerprints of the head's parts, as JSON text (a list).
    fn parts_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.head().parts())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Class probabilities `[N, classes]` for codes `[N, dim]` (read in place).
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        guarded(|| {
            let p = self.inner.predict_proba(codes.as_array()).map_err(py_err)?;
            Ok(PyArray2::from_owned_array(py, p))
        })
    }

    /// Class probabilities of image files, `(probabilities, errors)`; the rows of images that
    /// could not be encoded are NaN. The GIL is released meanwhile.
    fn predict_paths<'py>(&self, py: Python<'py>, paths: Vec<PathBuf>) -> PyResult<PyCodes<'py>> {
        guarded(|| {
            let out = py
                .detach(|| self.inner.predict_paths(&paths))
                .map_err(py_err)?;
            let errors = out.errors.into_iter().map(|e| (e.index, e.error)).collect();
            Ok((PyArray2::from_owned_array(py, out.probabilities), errors))
        })
    }

    /// The codes the head reads for image files (its parts' codes side by side).
    fn encode_paths<'py>(&self, py: Python<'py>, paths: Vec<PathBuf>) -> PyResult<PyCodes<'py>> {
        guarded(|| {
            let codes = py
                .detach(|| self.inner.encode_paths(&paths))
                .map_err(py_err)?;
            Ok(to_py(py, codes))
        })
    }
}

/// A feature cache read as the command line writes it: `(codes, labels, paths, classes,
/// meta JSON)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_cache(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(
    Bound<'_, PyArray2<f32>>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    String,
)> {
    guarded(|| {
        let c = tlearn_cache::FeatureCache::load(&path).map_err(|e| py_err(e.into()))?;
        let meta =
            serde_json::to_string(&c.meta).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let classes = c.meta.classes.clone();
        let labels = c.y.iter().map(|&i| classes[i].clone()).collect();
        Ok((
            PyArray2::from_owned_array(py, c.x),
            labels,
            c.paths,
            classes,
            meta,
        ))
    })
}

/// Where `model` (a registry name, or an own ONNX file's path) is read from, as `Extractor`
/// would open it: `(path, file name in the models directory)`. What the engines ship to
/// workers that lack the file.
#[pyfunction]
#[pyo3(signature = (model, models_dir=None))]
fn model_file(model: &str, models_dir: Option<PathBuf>) -> PyResult<(String, String)> {
    guarded(|| {
        let dir = tlearn_extract::registry::models_dir(models_dir.as_deref());
        let entry = tlearn_extract::open::entry_for(
            model,
            &dir,
            None,
            &tlearn_extract::open::OwnModel::default(),
        )
        .map_err(py_err)?;
        Ok((entry.path(&dir).display().to_string(), entry.file.clone()))
    })
}

#[pymodule]
fn _tlearn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExtractor>()?;
    m.add_class::<PyHead>()?;
    m.add_function(wrap_pyfunction!(read_cache, m)?)?;
    m.add_function(wrap_pyfunction!(model_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
