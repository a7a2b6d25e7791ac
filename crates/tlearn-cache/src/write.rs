//! Writing a whole cache: every file is staged in full (unique temp names, fsynced), then the
//! old `meta.json` is retired, the data files renamed, `meta.json` renamed last and the
//! directory fsynced. A kill before the renames leaves the previous cache untouched; a kill
//! between them leaves a directory without `meta.json`, which reads as "no cache" (the journal
//! still holds the run's vectors) rather than an old `meta.json` over new data.

use std::fs;
use std::path::Path;

use ndarray::{ArrayView2, ArrayView3};
use ndarray_npy::WriteNpyExt;

use crate::atomic::{stage, sync_dir};
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
    let meta_path = dir.join(META_FILE);
    match fs::remove_file(&meta_path) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CacheError::io("retiring", meta_path, e)),
    }
    staged_features.commit()?;
    staged_index.commit()?;
    staged_skipped.commit()?;
    match staged_views {
        Some(v) => v.commit()?,
        None => match fs::remove_file(dir.join(VIEWS_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CacheError::io("removing", dir.join(VIEWS_FILE), e)),
        },
    }
    staged_meta.commit()?;
    sync_dir(dir)
}
