//! The one reader of a cache. It checks that the pieces agree (format and version, the shape
//! of `features.npy` against `meta.json`, the number of `index.csv` rows, every label among
//! the classes) and finds rows that are not finite; every problem is an error naming the file
//! (and the line or row).
//!
//! Row i of `index.csv` names the image whose vector is row i of `features.npy`; nothing in the
//! two files ties them together but their order, so the reader checks the order the writer
//! promises: rows sorted by path, each path once, each label the class folder of its path. An
//! index whose rows were reordered or duplicated (by hand, a script, a merge) would otherwise
//! train on vectors under the wrong labels. [`FeatureCache::read`] lists the rows whose vector
//! can no longer be proven to be theirs ([`FeatureCache::misplaced`], for `extract` to extract
//! again); [`FeatureCache::load`] refuses them, naming the file and the first bad line.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};

use crate::error::CacheError;
use crate::fingerprint::Fingerprint;
use crate::meta::{IndexRow, Meta, SkipRow};
use crate::{FEATURES_FILE, FORMAT, INDEX_FILE, META_FILE, SKIPPED_FILE, VERSION, VIEWS_FILE};

/// The extractor fingerprint of what `dir` already holds: its `meta.json`'s, else the cut set's
/// ([`crate::set`]: the whole extraction's), else the header of an unfinished first run's
/// journal. `None` when there is neither or it does not parse: only a
/// default is chosen from it, damage is reported by [`FeatureCache::read`] when the cache is read.
pub fn existing_fingerprint(dir: &Path) -> Option<Fingerprint> {
    std::fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
        .map(|m| m.extractor)
        .or_else(|| crate::set::set_fingerprint(dir))
        .or_else(|| crate::journal::journal_fingerprint(dir))
        .or_else(|| {
            crate::parquet_codes::read_sidecar(dir)
                .ok()
                .map(|s| s.extractor)
        })
}

/// A loaded, validated feature cache.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    pub dir: PathBuf,
    pub meta: Meta,
    /// `[rows, dim]` feature vectors (standard layout).
    pub x: Array2<f32>,
    /// Row i: path relative to the data set root.
    pub paths: Vec<String>,
    /// Row i: index into `meta.classes`.
    pub y: Vec<usize>,
    /// Row i: sha256 of the image bytes (duplicates share it).
    pub sha256: Vec<String>,
    /// `skipped.csv` (empty if the file is absent).
    pub skipped: Vec<SkipRow>,
    /// Rows holding NaN or infinite values (refused by [`FeatureCache::load`]).
    pub non_finite: Vec<usize>,
    /// Rows of an `index.csv` out of path order or naming a path twice whose vector cannot be
    /// proven to be theirs ([`misplaced_rows`]; refused by [`FeatureCache::load`]).
    pub misplaced: Vec<usize>,
}

/// A cache's kept augmentation views (`views.npy`).
#[derive(Debug, Clone)]
pub struct Views {
    /// `[rows, views, dim]`, row i ↔ `features.npy` row i, views in `meta.views` order.
    pub codes: Array3<f32>,
    /// Rows holding NaN or infinite values.
    pub non_finite: Vec<usize>,
}

impl FeatureCache {
    /// Load a cache for training or evaluation: it must exist and every row must be finite.
    /// A codes directory (Parquet, [`crate::parquet_codes`]) is read as the same cache.
    pub fn load(dir: &Path) -> Result<FeatureCache, CacheError> {
        if crate::parquet_codes::is_codes_dir(dir) && !dir.join(META_FILE).exists() {
            return crate::parquet_codes::read_codes(dir);
        }
        if !dir.is_dir() {
            return Err(CacheError::invalid(
                dir,
                "feature cache is not a directory (make one with `tlearn extract`)",
            ));
        }
        let Some(cache) = FeatureCache::read(dir)? else {
            if let Some(holder) = crate::lock::CacheLock::holder(dir) {
                return Err(CacheError::BeingWritten {
                    dir: dir.to_path_buf(),
                    by: format!(" by {holder}"),
                });
            }
            return Err(CacheError::invalid(
                dir.join(META_FILE),
                "missing: not a feature cache (an interrupted `tlearn extract` leaves none \
                 until it is run again)",
            ));
        };
        cache.check_rows()?;
        cache.check_finite()?;
        Ok(cache)
    }

    /// Read a cache, `Ok(None)` if `dir` has no `meta.json`. Rows that are not finite are
    /// listed in `non_finite`, not refused (extraction re-extracts them).
    pub fn read(dir: &Path) -> Result<Option<FeatureCache>, CacheError> {
        let meta_path = dir.join(META_FILE);
        let stamp_before = stamp(&meta_path);
        let text = match std::fs::read_to_string(&meta_path) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && crate::parquet_codes::is_codes_dir(dir) =>
            {
                return Err(CacheError::invalid(
                    dir,
                    "is a directory of Parquet codes, not an npy feature cache (read it with \
                     `train`/`eval`, or turn it into one with `tlearn import-codes`)",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io("reading", meta_path, e)),
        };
        let result = FeatureCache::read_files(dir, &meta_path, &text);
        // meta.json is retired first and renamed last by a writer: if it changed while the
        // other files were read, they may come from two caches.
        if stamp_before.is_none() || stamp(&meta_path) != stamp_before {
            return Err(CacheError::BeingWritten {
                dir: dir.to_path_buf(),
                by: crate::lock::CacheLock::holder(dir)
                    .map(|h| format!(" by {h}"))
                    .unwrap_or_default(),
            });
        }
        result.map(Some)
    }

    fn read_files(dir: &Path, meta_path: &Path, text: &str) -> Result<FeatureCache, CacheError> {
        let format: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CacheError::invalid(meta_path, format!("not valid JSON: {e}")))?;
        crate::json::check_unique_keys(text.as_bytes())
            .map_err(|e| CacheError::invalid(meta_path, format!("malformed meta.json: {e}")))?;
        if format.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(CacheError::invalid(
                meta_path,
                format!(
                    "format is {}, expected \"{FORMAT}\"",
                    format.get("format").unwrap_or(&serde_json::Value::Null)
                ),
            ));
        }
        let version = format.get("version").and_then(|v| v.as_u64());
        if version != Some(VERSION as u64) {
            return Err(CacheError::invalid(
                meta_path,
                format!(
                    "feature cache version {} is not supported (this tlearn reads version \
                     {VERSION})",
                    format.get("version").unwrap_or(&serde_json::Value::Null)
                ),
            ));
        }
        let meta: Meta = serde_json::from_value(format)
            .map_err(|e| CacheError::invalid(meta_path, format!("malformed meta.json: {e}")))?;

        let npy_path = dir.join(FEATURES_FILE);
        let x = crate::npy::read_features(&npy_path)?;
        if x.nrows() != meta.rows || x.ncols() != meta.dim {
            return Err(CacheError::invalid(
                &npy_path,
                format!(
                    "shape is [{}, {}] but {} says rows={} dim={}",
                    x.nrows(),
                    x.ncols(),
                    meta_path.display(),
                    meta.rows,
                    meta.dim
                ),
            ));
        }
        let x = x.as_standard_layout().into_owned();

        let index_path = dir.join(INDEX_FILE);
        let index: Vec<IndexRow> = read_csv(&index_path)?;
        if index.len() != meta.rows {
            return Err(CacheError::invalid(
                &index_path,
                format!(
                    "{} rows, but {} has {} and {} says {}",
                    index.len(),
                    npy_path.display(),
                    x.nrows(),
                    meta_path.display(),
                    meta.rows
                ),
            ));
        }
        let mut y = Vec::with_capacity(meta.rows);
        for (i, r) in index.iter().enumerate() {
            match meta.classes.iter().position(|c| *c == r.label) {
                Some(k) => y.push(k),
                None => {
                    return Err(CacheError::invalid(
                        &index_path,
                        format!(
                            "line {} ({}) has label {:?}, which is not among the classes in \
                             meta.json {:?}",
                            i + 2,
                            r.path,
                            r.label,
                            meta.classes
                        ),
                    ))
                }
            }
        }
        let skipped_path = dir.join(SKIPPED_FILE);
        let skipped = if skipped_path.exists() {
            read_csv(&skipped_path)?
        } else {
            Vec::new()
        };
        let non_finite = x
            .outer_iter()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|v| !v.is_finite()))
            .map(|(i, _)| i)
            .collect();
        let (paths, sha256): (Vec<String>, Vec<String>) =
            index.into_iter().map(|r| (r.path, r.sha256)).unzip();
        let misplaced = misplaced_rows(&paths);
        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            meta,
            x,
            paths,
            y,
            sha256,
            skipped,
            non_finite,
            misplaced,
        })
    }

    /// Refuse an `index.csv` that breaks the promises that tie its rows to `features.npy`
    /// (rows in path order, each path once) or to their class (the label is the path's class
    /// folder), naming the first bad line and the command that repairs the cache.
    pub fn check_rows(&self) -> Result<(), CacheError> {
        let path = self.dir.join(INDEX_FILE);
        let repair = format!(
            "run `tlearn extract {} --out {}` with the same --model/--layer/--pool/--augment to \
             repair the cache (rows that cannot be matched to their vectors are extracted again)",
            if self.meta.dataset.is_empty() {
                "DATASET"
            } else {
                &self.meta.dataset
            },
            self.dir.display()
        );
        if let Some(i) = (1..self.paths.len()).find(|&i| self.paths[i] <= self.paths[i - 1]) {
            let what = if self.paths[i] == self.paths[i - 1] {
                "names the same image as line"
            } else {
                "comes before line"
            };
            return Err(CacheError::invalid(
                path,
                format!(
                    "line {} ({}) {what} {} ({}): rows must be in path order, each image once, \
                     so they no longer match the rows of {FEATURES_FILE} ({} of {} rows cannot \
                     be matched); {repair}",
                    i + 2,
                    self.paths[i],
                    i + 1,
                    self.paths[i - 1],
                    self.misplaced.len(),
                    self.paths.len()
                ),
            ));
        }
        if let Some(i) = (0..self.paths.len()).find(|&i| {
            self.paths[i].split('/').next() != Some(self.meta.classes[self.y[i]].as_str())
        }) {
            return Err(CacheError::invalid(
                path,
                format!(
                    "line {} ({}) has label {:?}, but its class folder is {:?}; {repair}",
                    i + 2,
                    self.paths[i],
                    self.meta.classes[self.y[i]],
                    self.paths[i].split('/').next().unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// Refuse rows that are not finite, naming the first few and the command that repairs them.
    pub fn check_finite(&self) -> Result<(), CacheError> {
        if self.non_finite.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<String> = self
            .non_finite
            .iter()
            .take(5)
            .map(|&i| format!("row {i} ({})", self.paths[i]))
            .collect();
        if self.non_finite.len() > 5 {
            rows.push("...".into());
        }
        Err(CacheError::NonFinite {
            path: self.dir.join(FEATURES_FILE),
            dir: self.dir.clone(),
            dataset: if self.meta.dataset.is_empty() {
                "DATASET".into()
            } else {
                self.meta.dataset.clone()
            },
            count: self.non_finite.len(),
            rows: rows.join(", "),
        })
    }

    /// Every augmentation view's codes, `[rows, views, dim]` in `meta.views` order, from
    /// `views.npy`; `Ok(None)` when the cache keeps no views. Read on demand (it is `views`
    /// times the size of `features.npy`); a file that disagrees with `meta.json` or holds
    /// values that are not finite is an error naming it and the `extract` that repairs it.
    pub fn read_views(&self) -> Result<Option<Array3<f32>>, CacheError> {
        let Some(v) = self.load_views()? else {
            return Ok(None);
        };
        if let Some(&i) = v.non_finite.first() {
            return Err(CacheError::invalid(
                self.dir.join(VIEWS_FILE),
                format!(
                    "{} row(s) hold NaN or infinite values, the first row {i} ({}); run \
                     `tlearn extract` on the same --out again to re-extract them",
                    v.non_finite.len(),
                    self.paths[i]
                ),
            ));
        }
        Ok(Some(v.codes))
    }

    /// [`FeatureCache::read_views`] with the rows that are not finite listed instead of refused
    /// (extraction re-extracts them).
    pub fn load_views(&self) -> Result<Option<Views>, CacheError> {
        if self.meta.views.is_empty() {
            return Ok(None);
        }
        let path = self.dir.join(VIEWS_FILE);
        let v = crate::npy::read_views(&path)?;
        let want = (self.meta.rows, self.meta.views.len(), self.meta.dim);
        if v.dim() != want {
            return Err(CacheError::invalid(
                &path,
                format!(
                    "shape is {:?} but meta.json says rows={} views={} dim={}",
                    v.shape(),
                    want.0,
                    want.1,
                    want.2
                ),
            ));
        }
        let non_finite = v
            .outer_iter()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|x| !x.is_finite()))
            .map(|(i, _)| i)
            .collect();
        Ok(Some(Views {
            codes: v.as_standard_layout().into_owned(),
            non_finite,
        }))
    }

    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        self.x
            .row(i)
            .to_slice()
            .expect("features are kept in standard layout")
    }

    /// Row i of `index.csv`.
    pub fn index_row(&self, i: usize) -> IndexRow {
        IndexRow {
            path: self.paths[i].clone(),
            label: self.meta.classes[self.y[i]].clone(),
            sha256: self.sha256[i].clone(),
        }
    }

    /// Training needs at least one row and at least two classes, each with rows.
    pub fn check_trainable(&self) -> Result<(), CacheError> {
        if self.rows() == 0 {
            return Err(CacheError::invalid(
                &self.dir,
                "feature cache is empty (0 rows): nothing to train on",
            ));
        }
        let mut counts = vec![0usize; self.classes().len()];
        for &k in &self.y {
            counts[k] += 1;
        }
        let with = |has: bool| -> Vec<&String> {
            self.classes()
                .iter()
                .zip(&counts)
                .filter(|(_, &n)| (n > 0) == has)
                .map(|(c, _)| c)
                .collect()
        };
        let present = with(true);
        if present.len() < 2 {
            return Err(CacheError::invalid(
                &self.dir,
                format!(
                    "feature cache has {} class(es) with images ({:?}); a classifier needs at \
                     least 2",
                    present.len(),
                    present
                ),
            ));
        }
        let empty = with(false);
        if !empty.is_empty() {
            return Err(CacheError::invalid(
                &self.dir,
                format!("classes {empty:?} are listed in meta.json but have no rows"),
            ));
        }
        Ok(())
    }
}

/// The rows of an index whose vector cannot be proven to be theirs. The writer puts rows in
/// path order, each path once, so the vectors of `features.npy` are in that order: row i's
/// vector belongs to the i-th path in sorted order. After `index.csv` alone was reordered that
/// is the sorted index's row i; after both files were reordered alike, it is row i itself. A
/// row is kept only where the two agree (its path is the i-th in sorted order) and its path is
/// named once; every other row is listed. Empty for an index in path order.
pub fn misplaced_rows(paths: &[String]) -> Vec<usize> {
    if paths.windows(2).all(|w| w[0] < w[1]) {
        return Vec::new();
    }
    let mut sorted: Vec<&str> = paths.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let repeated =
        |i: usize| (i > 0 && sorted[i - 1] == sorted[i]) || sorted.get(i + 1) == Some(&sorted[i]);
    (0..paths.len())
        .filter(|&i| paths[i] != sorted[i] || repeated(i))
        .collect()
}

/// What identifies one version of a file: inode (unix), length, modification time.
fn stamp(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((ino, m.len(), m.modified().ok()?))
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, CacheError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => CacheError::io("opening", path, io),
        other => CacheError::invalid(path, format!("{other:?}")),
    })?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.map_err(|e| CacheError::invalid(path, format!("line {}: {e}", i + 2))))
        .collect()
}
