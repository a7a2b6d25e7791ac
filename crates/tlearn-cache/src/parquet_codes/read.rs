//! Reading a codes directory: every Parquet file checked against the sidecar, the rows joined
//! into the [`FeatureCache`] that `train` and `eval` read; and [`import`], which writes them as
//! the npy cache.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{
    fingerprint_hash, Sidecar, CODES_FORMAT, CODES_VERSION, ERROR, FEATURES, FINGERPRINT, LABEL,
    PATH, SHA256, SIDECAR_FILE,
};
use crate::error::CacheError;
use crate::meta::{IndexRow, Meta, SkipRow};
use crate::read::FeatureCache;

/// Read and check `DIR/_tlearn.json`.
pub fn read_sidecar(dir: &Path) -> Result<Sidecar, CacheError> {
    let path = dir.join(SIDECAR_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| CacheError::io("reading", &path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CacheError::invalid(&path, format!("not valid JSON: {e}")))?;
    if v.get("format").and_then(|f| f.as_str()) != Some(CODES_FORMAT) {
        return Err(CacheError::invalid(
            &path,
            format!(
                "format is {}, expected \"{CODES_FORMAT}\"",
                v.get("format").unwrap_or(&serde_json::Value::Null)
            ),
        ));
    }
    if v.get("version").and_then(|v| v.as_u64()) != Some(CODES_VERSION as u64) {
        return Err(CacheError::invalid(
            &path,
            format!(
                "codes version {} is not supported (this tlearn reads version {CODES_VERSION})",
                v.get("version").unwrap_or(&serde_json::Value::Null)
            ),
        ));
    }
    let s: Sidecar = serde_json::from_value(v)
        .map_err(|e| CacheError::invalid(&path, format!("malformed sidecar: {e}")))?;
    let hash = fingerprint_hash(&s.extractor);
    if s.fingerprint != hash {
        return Err(CacheError::invalid(
            &path,
            format!(
                "field `fingerprint` is {} but the `extractor` it records hashes to {hash}",
                s.fingerprint
            ),
        ));
    }
    Ok(s)
}

/// The Parquet files of a codes directory (`*.parquet`, not starting with `_` or `.`), sorted
/// by name.
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CacheError::io("listing", dir, e))?;
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(|e| CacheError::io("listing", dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".parquet") && !name.starts_with('_') && !name.starts_with('.') {
            files.push(e.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One row as read, and where it came from.
struct Row {
    path: String,
    label: Option<String>,
    sha256: Option<String>,
    features: Option<Vec<f32>>,
    error: Option<String>,
    file: usize,
    row: usize,
}

/// Read the codes directory `dir` as a feature cache: rows sorted by path, the rows with an
/// error as its `skipped`, the classes those of the rows with codes. Every problem is an error
/// naming the file (and the row).
pub fn read_codes(dir: &Path) -> Result<FeatureCache, CacheError> {
    let sidecar = read_sidecar(dir)?;
    let files = shard_files(dir)?;
    if files.is_empty() {
        return Err(CacheError::invalid(
            dir,
            "holds a codes sidecar but no Parquet files (*.parquet)",
        ));
    }
    let mut rows = Vec::new();
    for (k, file) in files.iter().enumerate() {
        read_file(file, k, &sidecar, &mut rows)?;
    }
    // One row per path: the same bytes twice (a retried task) are read once, a row with codes
    // wins over an error; different bytes are refused.
    let mut by_path: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        match by_path.get(&r.path) {
            None => {
                by_path.insert(r.path.clone(), kept.len());
                kept.push(r);
            }
            Some(&i) => {
                let old = &kept[i];
                if let (Some(a), Some(b)) = (&old.sha256, &r.sha256) {
                    if a != b {
                        return Err(CacheError::invalid(
                            &files[r.file],
                            format!(
                                "row {} ({}) has sha256 {b}, but row {} of {} holds the same \
                                 path with sha256 {a}: two different images under one path",
                                r.row,
                                r.path,
                                old.row,
                                files[old.file].display()
                            ),
                        ));
                    }
                }
                if old.features.is_none() && r.features.is_some() {
                    kept[i] = r;
                }
            }
        }
    }
    kept.sort_by(|a, b| a.path.cmp(&b.path));

    let dim = sidecar.dim;
    let mut classes = BTreeSet::new();
    let (mut index, mut skipped, mut x) = (Vec::new(), Vec::new(), Vec::new());
    for r in kept {
        match r.features {
            Some(f) => {
                let missing = if r.sha256.is_some() { LABEL } else { SHA256 };
                let (Some(label), Some(sha256)) = (r.label, r.sha256) else {
                    return Err(CacheError::invalid(
                        &files[r.file],
                        format!("row {} ({}) has codes but no {missing}", r.row, r.path),
                    ));
                };
                classes.insert(label.clone());
                x.extend_from_slice(&f);
                index.push(IndexRow {
                    path: r.path,
                    label,
                    sha256,
                });
            }
            None => skipped.push(SkipRow {
                path: r.path,
                reason: r.error.unwrap_or_default(),
            }),
        }
    }
    let n = index.len();
    let classes: Vec<String> = classes.into_iter().collect();
    let y = index
        .iter()
        .map(|r| classes.binary_search(&r.label).expect("collected above"))
        .collect();
    let x = Array2::from_shape_vec((n, dim), x).expect("every row is dim long");
    let meta = Meta {
        created: sidecar.created.clone(),
        ..Meta::new(
            sidecar.dataset.clone(),
            dim,
            n,
            classes,
            sidecar.extractor,
            String::new(),
        )
    };
    let (paths, sha256) = index.into_iter().map(|r| (r.path, r.sha256)).unzip();
    Ok(FeatureCache {
        dir: dir.to_path_buf(),
        meta,
        x,
        paths,
        y,
        sha256,
        skipped,
        non_finite: Vec::new(),
        // The rows were put in path order and each path kept once above.
        misplaced: Vec::new(),
    })
}

/// Read the codes directory `dir` and write it as the npy cache `out` (as `tlearn extract`
/// writes it for the same images).
pub fn import(dir: &Path, out: &Path) -> Result<FeatureCache, CacheError> {
    let cache = read_codes(dir)?;
    let index: Vec<IndexRow> = (0..cache.rows()).map(|i| cache.index_row(i)).collect();
    let features = cache
        .x
        .as_slice()
        .expect("read_codes builds a standard-layout array");
    crate::write(out, &cache.meta, &index, features, &cache.skipped)?;
    Ok(cache)
}

fn read_file(
    path: &Path,
    k: usize,
    sidecar: &Sidecar,
    out: &mut Vec<Row>,
) -> Result<(), CacheError> {
    let file = File::open(path).map_err(|e| CacheError::io("opening", path, e))?;
    let damaged = |e: &dyn std::fmt::Display| {
        CacheError::invalid(
            path,
            format!("not a readable Parquet file (damaged or cut short): {e}"),
        )
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| damaged(&e))?;
    let schema = builder.schema().clone();
    for required in [PATH, LABEL, SHA256, FEATURES] {
        if schema.field_with_name(required).is_err() {
            return Err(CacheError::invalid(
                path,
                format!(
                    "no column `{required}` (the columns are {:?})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                ),
            ));
        }
    }
    let features = schema.field_with_name(FEATURES).expect("checked above");
    check_features_type(path, features.data_type(), sidecar.dim)?;
    let reader = builder.build().map_err(|e| damaged(&e))?;
    let mut base = 0;
    for batch in reader {
        let batch = batch.map_err(|e| damaged(&e))?;
        read_batch(path, k, base, &batch, sidecar, out)?;
        base += batch.num_rows();
    }
    Ok(())
}

fn check_features_type(path: &Path, t: &DataType, dim: usize) -> Result<(), CacheError> {
    let item = match t {
        DataType::FixedSizeList(f, n) => {
            if *n as usize != dim {
                return Err(CacheError::invalid(
                    path,
                    format!(
                        "column `{FEATURES}` holds codes of length {n}, but {SIDECAR_FILE} says \
                         dim {dim}"
                    ),
                ));
            }
            f.data_type()
        }
        DataType::List(f) | DataType::LargeList(f) => f.data_type(),
        other => {
            return Err(CacheError::invalid(
                path,
                format!("column `{FEATURES}` is {other}, not a list of float32"),
            ))
        }
    };
    match item {
        DataType::Float32 => Ok(()),
        DataType::Float64 => Err(CacheError::invalid(
            path,
            format!(
                "column `{FEATURES}` holds float64 values; tlearn's codes are float32 (cast the \
                 column to a list of float32 before writing)"
            ),
        )),
        other => Err(CacheError::invalid(
            path,
            format!("column `{FEATURES}` holds {other} values, not float32"),
        )),
    }
}

/// Column `name` as optional strings (string, large string or string view).
fn strings(
    path: &Path,
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<Vec<Option<String>>>, CacheError> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let v: Vec<Option<String>> = match col.data_type() {
        DataType::Utf8 => col
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => col
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        DataType::Utf8View => col
            .as_string_view()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        other => {
            return Err(CacheError::invalid(
                path,
                format!("column `{name}` is {other}, not a string"),
            ))
        }
    };
    Ok(Some(v))
}

/// Each row's codes as `(start, len)` in the values array, `None` for a null row.
fn spans(col: &ArrayRef) -> (Vec<Option<(usize, usize)>>, ArrayRef) {
    let valid = |i: usize| col.is_valid(i);
    match col.data_type() {
        DataType::FixedSizeList(..) => {
            let l = col.as_fixed_size_list();
            let spans = (0..l.len())
                .map(|i| valid(i).then(|| (l.value_offset_at(i), l.value_length() as usize)))
                .collect();
            (spans, l.values().clone())
        }
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            let o = l.value_offsets();
            let spans = (0..l.len())
                .map(|i| valid(i).then(|| (o[i] as usize, (o[i + 1] - o[i]) as usize)))
                .collect();
            (spans, l.values().clone())
        }
        _ => {
            let l = col.as_list::<i64>();
            let o = l.value_offsets();
            let spans = (0..l.len())
                .map(|i| valid(i).then(|| (o[i] as usize, (o[i + 1] - o[i]) as usize)))
                .collect();
            (spans, l.values().clone())
        }
    }
}

fn read_batch(
    path: &Path,
    k: usize,
    base: usize,
    batch: &RecordBatch,
    sidecar: &Sidecar,
    out: &mut Vec<Row>,
) -> Result<(), CacheError> {
    let need = |name: &str, v: Option<Vec<Option<String>>>| {
        v.ok_or_else(|| CacheError::invalid(path, format!("no column `{name}`")))
    };
    let paths = need(PATH, strings(path, batch, PATH)?)?;
    let labels = need(LABEL, strings(path, batch, LABEL)?)?;
    let shas = need(SHA256, strings(path, batch, SHA256)?)?;
    let errors = strings(path, batch, ERROR)?;
    let hashes = strings(path, batch, FINGERPRINT)?;
    let (spans, values) = spans(batch.column_by_name(FEATURES).expect("checked"));
    let values = values.as_primitive::<Float32Type>();
    let dim = sidecar.dim;
    for (i, p) in paths.into_iter().enumerate() {
        let row = base + i;
        let Some(p) = p else {
            return Err(CacheError::invalid(
                path,
                format!("row {row} has no `{PATH}`"),
            ));
        };
        let bad = |what: String| CacheError::invalid(path, format!("row {row} ({p}): {what}"));
        if let Some(h) = hashes.as_ref().and_then(|h| h[i].as_deref()) {
            if h != sidecar.fingerprint {
                return Err(bad(format!(
                    "column `{FINGERPRINT}` is {h}, but {SIDECAR_FILE} records the extractor \
                     {}: codes of another extractor",
                    sidecar.fingerprint
                )));
            }
        }
        let error = errors.as_ref().and_then(|e| e[i].clone());
        let features = match (spans[i], &error) {
            (Some((start, len)), None) => {
                if len != dim {
                    return Err(bad(format!(
                        "{len} values in `{FEATURES}`, but {SIDECAR_FILE} says dim {dim}"
                    )));
                }
                if values.null_count() > 0 && (start..start + len).any(|j| values.is_null(j)) {
                    return Err(bad(format!("null values inside `{FEATURES}`")));
                }
                let v = &values.values()[start..start + len];
                if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!(
                        "`{FEATURES}`[{j}] is {}, not a finite number",
                        v[j]
                    )));
                }
                Some(v.to_vec())
            }
            (None, Some(_)) => None,
            (Some(_), Some(e)) => return Err(bad(format!("holds both codes and the error {e:?}"))),
            (None, None) => {
                return Err(bad(format!(
                    "`{FEATURES}` is null and there is no `{ERROR}` to say why"
                )))
            }
        };
        out.push(Row {
            path: p,
            label: labels[i].clone(),
            sha256: shas[i].clone(),
            features,
            error,
            file: k,
            row,
        });
    }
    Ok(())
}
