//! Writing codes: one Parquet file (zstd, written atomically), the sidecar, and a whole npy
//! cache as a codes directory.

use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{record_batch, shard_files, CodeRow, ListKind, Sidecar, SIDECAR_FILE};
use crate::error::CacheError;
use crate::fingerprint::Fingerprint;
use crate::read::FeatureCache;

/// `batch` as the bytes of one Parquet file (zstd; one row group).
pub fn shard_bytes(batch: &RecordBatch) -> Result<Vec<u8>, CacheError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let fail = |e: parquet::errors::ParquetError| {
        CacheError::invalid("<codes batch>", format!("cannot write Parquet: {e}"))
    };
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(fail)?;
    w.write(batch).map_err(fail)?;
    w.into_inner().map_err(fail)
}

/// Write `batch` as the Parquet file `path`, atomically (a reader sees all of it or nothing).
pub fn write_shard(path: &Path, batch: &RecordBatch) -> Result<(), CacheError> {
    crate::write_atomic_bytes(path, &shard_bytes(batch)?)
}

/// Refuse when `dir` already holds codes of another extractor than `fp`, naming the fields
/// that differ.
pub fn check_sidecar(dir: &Path, fp: &Fingerprint) -> Result<(), CacheError> {
    if !dir.join(SIDECAR_FILE).exists() {
        return Ok(());
    }
    let old = super::read_sidecar(dir)?;
    match old
        .extractor
        .compare(fp, "the codes there", "this extractor")
    {
        None => Ok(()),
        Some(diff) => Err(CacheError::invalid(
            dir.join(SIDECAR_FILE),
            format!(
                "codes of another extractor, which cannot be mixed: {diff}; write to another \
                 directory"
            ),
        )),
    }
}

/// Write the sidecar into `dir` (created if missing), atomically; refused when `dir` holds
/// codes of another extractor ([`check_sidecar`]).
pub fn write_sidecar(dir: &Path, sidecar: &Sidecar) -> Result<(), CacheError> {
    std::fs::create_dir_all(dir).map_err(|e| CacheError::io("creating", dir, e))?;
    check_sidecar(dir, &sidecar.extractor)?;
    let json = serde_json::to_string_pretty(sidecar).expect("a sidecar serialises") + "\n";
    crate::write_atomic_bytes(&dir.join(SIDECAR_FILE), json.as_bytes())
}

/// Write the npy cache `cache` as the codes directory `out` (which must hold no Parquet files
/// yet): files of `rows_per_shard` rows (`part-00000.parquet`, ...) in path order, its skipped
/// files as rows with their error, then the sidecar. Returns the number of files.
pub fn export(
    cache: &FeatureCache,
    out: &Path,
    rows_per_shard: usize,
) -> Result<usize, CacheError> {
    if out.is_dir() && !shard_files(out).unwrap_or_default().is_empty() {
        return Err(CacheError::invalid(
            out,
            "already holds Parquet files; export into an empty or new directory",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| CacheError::io("creating", out, e))?;
    let fp = &cache.meta.extractor;
    check_sidecar(out, fp)?;
    let hash = super::fingerprint_hash(fp);
    let classes = cache.classes();
    let mut rows: Vec<CodeRow<'_>> = (0..cache.rows())
        .map(|i| CodeRow {
            path: &cache.paths[i],
            label: Some(&classes[cache.y[i]]),
            sha256: Some(&cache.sha256[i]),
            features: Some(cache.row(i)),
            error: None,
        })
        .chain(cache.skipped.iter().map(|s| CodeRow {
            path: &s.path,
            label: s.path.split_once('/').map(|(class, _)| class),
            sha256: None,
            features: None,
            error: Some(&s.reason),
        }))
        .collect();
    rows.sort_by(|a, b| a.path.cmp(b.path));
    let mut files = 0;
    for (k, chunk) in rows.chunks(rows_per_shard.max(1)).enumerate() {
        let batch = record_batch(chunk, cache.meta.dim, &hash, ListKind::Fixed)?;
        write_shard(&out.join(format!("part-{k:05}.parquet")), &batch)?;
        files += 1;
    }
    let sidecar = Sidecar::new(
        fp.clone(),
        cache.meta.dim,
        cache.meta.dataset.clone(),
        cache.meta.created.clone(),
    );
    write_sidecar(out, &sidecar)?;
    Ok(files)
}

/// The codes of `paths.len()` images as one Parquet file's bytes, in the schema of `kind`:
/// row `i` is `paths[i]` with `labels[i]`, `sha256[i]`, and either codes row `i` or, when `i`
/// is in `errors` (index, message), that error. What the engines' workers hand back per batch
/// (Ray Data's blocks, Spark's `mapInArrow` batches). Lengths that disagree are refused.
pub fn codes_shard_bytes(
    paths: &[String],
    labels: &[Option<String>],
    sha256: &[Option<String>],
    codes: ndarray::ArrayView2<f32>,
    errors: &[(usize, String)],
    fp: &Fingerprint,
    kind: ListKind,
) -> Result<Vec<u8>, CacheError> {
    let n = paths.len();
    if labels.len() != n || sha256.len() != n || codes.nrows() != n {
        return Err(CacheError::invalid(
            "<codes batch>",
            format!(
                "{n} paths, {} labels, {} hashes and {} rows of codes: one each per image",
                labels.len(),
                sha256.len(),
                codes.nrows()
            ),
        ));
    }
    let mut error_of: Vec<Option<&str>> = vec![None; n];
    for (i, e) in errors {
        if let Some(slot) = error_of.get_mut(*i) {
            *slot = Some(e);
        }
    }
    let rows: Vec<CodeRow<'_>> = (0..n)
        .map(|i| CodeRow {
            path: &paths[i],
            label: labels[i].as_deref(),
            sha256: sha256[i].as_deref(),
            features: match error_of[i] {
                Some(_) => None,
                None => codes.row(i).to_slice(),
            },
            error: error_of[i],
        })
        .collect();
    let batch = record_batch(&rows, codes.ncols(), &super::fingerprint_hash(fp), kind)?;
    shard_bytes(&batch)
}
