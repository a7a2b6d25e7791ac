//! Writing a whole cache: its index is checked against the rules the reader enforces (rows in
//! path order, each path once, labels their class folders), every file is staged in full
//! (unique temp names, fsynced), then the old `meta.json` is retired, the data files renamed,
//! `meta.json` renamed last and the directory fsynced. A kill before the renames leaves the previous cache untouched; a kill
//! between them leaves a directory without `meta.json`, which reads as "no cache" (the journal
//! still holds the run's vectors) rather than an old `meta.json` over new data.

use std::fs;
use std::path::Path;

use ndarray::{ArrayView2, ArrayView3};
use ndarray_npy::WriteNpyExt;

use crate::atomic::{stage, sync_dir, Staged};
use crate::error::CacheError;
use crate::meta::{IndexRow, Meta, SkipRow};
use crate::{FEATURES_FILE, INDEX_FILE, META_FILE, SKIPPED_FILE, VIEWS_FILE};

/// Write the cache `meta` + `index` + `features` (row-major `[meta.rows, meta.dim]`) +
/// `skipped` into `dir` (created if missing); `meta.views` must be empty (a `views.npy` left by
/// an earlier cache is removed).
pub fn write(
    dir: &Path,
    meta: &Meta,
    index: &[IndexRow],
    features: &[f32],
    skipped: &[SkipRow],
) -> Result<(), CacheError> {
    write_with_views(dir, meta, index, features, None, skipped)
}

/// [`write`], plus `views.npy` when `views` is given: row-major `[meta.rows,
/// meta.views.len(), meta.dim]`, every view's codes (`features` is their mean over the views).
pub fn write_with_views(
    dir: &Path,
    meta: &Meta,
    index: &[IndexRow],
    features: &[f32],
    views: Option<&[f32]>,
    skipped: &[SkipRow],
) -> Result<(), CacheError> {
    stage_cache(dir, meta, index, features, views, skipped)?.commit()
}

/// A whole cache written under temporary names (every file fsynced), not yet in place.
pub(crate) struct StagedCache {
    pub(crate) dir: std::path::PathBuf,
    /// `features.npy`, `index.csv`, `skipped.csv` and (when kept) `views.npy`.
    pub(crate) data: Vec<Staged>,
    pub(crate) meta: Staged,
    /// No views kept: a `views.npy` left by an earlier cache is to be removed.
    pub(crate) drop_views: bool,
}

/// Check and stage the files of a cache in `dir` (created if missing); nothing in `dir` that a
/// reader sees changes.
pub(crate) fn stage_cache(
    dir: &Path,
    meta: &Meta,
    index: &[IndexRow],
    features: &[f32],
    views: Option<&[f32]>,
    skipped: &[SkipRow],
) -> Result<StagedCache, CacheError> {
    let n_views = meta.views.len();
    let views_ok = match views {
        None => n_views == 0,
        Some(v) => n_views > 0 && v.len() == meta.rows * n_views * meta.dim,
    };
    if !views_ok {
        return Err(CacheError::invalid(
            dir,
            format!(
                "refusing to write an inconsistent cache: {} floats of views for {} rows × {} \
                 named views × {} dims",
                views.map_or(0, <[f32]>::len),
                meta.rows,
                n_views,
                meta.dim
            ),
        ));
    }
    if index.len() != meta.rows || features.len() != meta.rows * meta.dim {
        return Err(CacheError::invalid(
            dir,
            format!(
                "refusing to write an inconsistent cache: {} index rows and {} floats for {}×{}",
                index.len(),
                features.len(),
                meta.rows,
                meta.dim
            ),
        ));
    }
    check_index(dir, meta, index)?;
    fs::create_dir_all(dir).map_err(|e| CacheError::io("creating cache dir", dir, e))?;
    let arr =
        ArrayView2::from_shape((meta.rows, meta.dim), features).expect("length checked above");
    let staged_features = stage(&dir.join(FEATURES_FILE), |w| Ok(arr.write_npy(w)?))?;
    let staged_index = stage(&dir.join(INDEX_FILE), |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record(["path", "label", "sha256"])?;
        for r in index {
            c.write_record([&r.path, &r.label, &r.sha256])?;
        }
        c.flush()?;
        Ok(())
    })?;
    let staged_skipped = stage(&dir.join(SKIPPED_FILE), |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record(["path", "reason"])?;
        for r in skipped {
            c.write_record([&r.path, &r.reason])?;
        }
        c.flush()?;
        Ok(())
    })?;
    let staged_views = match views {
        Some(v) => {
            let arr = ArrayView3::from_shape((meta.rows, n_views, meta.dim), v)
                .expect("length checked above");
            Some(stage(&dir.join(VIEWS_FILE), |w| Ok(arr.write_npy(w)?))?)
        }
        None => None,
    };
    let staged_meta = stage(&dir.join(META_FILE), |w| {
        serde_json::to_writer_pretty(&mut *w, meta)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    let mut data = vec![staged_features, staged_index, staged_skipped];
    data.extend(staged_views);
    Ok(StagedCache {
        dir: dir.to_path_buf(),
        data,
        meta: staged_meta,
        drop_views: views.is_none(),
    })
}

impl StagedCache {
    /// Put the staged files in place: the old `meta.json` retired first, the data files
    /// renamed, `meta.json` renamed last, the directory fsynced.
    pub(crate) fn commit(self) -> Result<(), CacheError> {
        let dir = self.dir.as_path();
        let meta_path = dir.join(META_FILE);
        match fs::remove_file(&meta_path) {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CacheError::io("retiring", meta_path, e)),
        }
        for f in self.data {
            f.commit()?;
        }
        if self.drop_views {
            match fs::remove_file(dir.join(VIEWS_FILE)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("removing", dir.join(VIEWS_FILE), e)),
            }
        }
        self.meta.commit()?;
        sync_dir(dir)
    }
}

/// Refuse to write an index that breaks what the reader checks: rows in path order, each path
/// once, each label the class folder of its path and among `meta.classes`.
fn check_index(dir: &Path, meta: &Meta, index: &[IndexRow]) -> Result<(), CacheError> {
    let bad = |i: usize, why: &str| {
        Err(CacheError::invalid(
            dir,
            format!(
                "refusing to write an inconsistent cache: index row {i} ({}) {why}",
                index[i].path
            ),
        ))
    };
    let classes: std::collections::HashSet<&str> =
        meta.classes.iter().map(String::as_str).collect();
    for (i, r) in index.iter().enumerate() {
        if i > 0 && r.path <= index[i - 1].path {
            return bad(
                i,
                "is not after the row before it (rows in path order, each once)",
            );
        }
        if r.path.split('/').next() != Some(r.label.as_str()) {
            return bad(i, "has a label other than its class folder");
        }
        if !classes.contains(r.label.as_str()) {
            return bad(i, "has a label that is not among the classes");
        }
    }
    Ok(())
}
