//! A cut set: several caches of the same images, one per backbone cut, written by one
//! extraction (`tlearn extract --layer features,stage6,stage5`).
//!
//! Layout: `DIR/cuts.json` ([`CutSet`]) and one complete, ordinary cache per cut in
//! `DIR/<cut_dir_name(cut)>/` (its own `meta.json` and fingerprint, `features.npy`,
//! `index.csv`, `skipped.csv`), so every cut stays numpy-readable and can be given to `train`
//! or `eval` on its own. All caches of a set hold the same images in the same row order.
//!
//! One extraction of several cuts works on one row per image: the cuts' vectors side by side
//! (in the set's order), under one fingerprint whose `layer` is the cut names joined by
//! [`CUT_SEPARATOR`] ([`set_layer`]). That is what its journal holds; [`write_split`] splits the
//! columns into the per-cut caches (each with [`cut_fingerprint`]: the same fingerprint with
//! `layer` = the cut), and [`read_joined`] joins them back (to update or repair the set).
//!
//! [`resolve`] turns a path a user gives (`train PATH`) into the caches it names: a plain cache
//! is a set of one.

use std::path::{Path, PathBuf};

use ndarray::{concatenate, Axis};
use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::fingerprint::Fingerprint;
use crate::meta::{IndexRow, Meta, SkipRow};
use crate::read::{FeatureCache, Views};
use crate::META_FILE;

/// Separates the cut names in a set's joined `layer` (`features,stage6,stage5`); defined with
/// the rest of the cut spelling in [`crate::cut_spec`].
pub use crate::cut_spec::CUT_SEPARATOR;

/// The set's manifest file inside the set directory.
pub const SET_FILE: &str = "cuts.json";
/// `cuts.json`'s `format` field.
pub const SET_FORMAT: &str = "tlearn-cut-set";
/// `cuts.json`'s `version` field.
pub const SET_VERSION: u32 = 1;

/// `cuts.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutSet {
    /// [`SET_FORMAT`].
    pub format: String,
    /// [`SET_VERSION`].
    pub version: u32,
    /// The backbone (registry name or model path) the cuts come from.
    pub model: String,
    /// The data set folder (absolute).
    pub dataset: String,
    /// In the order they were requested.
    pub cuts: Vec<CutEntry>,
}

/// One cut of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutEntry {
    /// The cut as the user named it (`features`, `stage6`, an ONNX node name).
    pub name: String,
    /// The cache directory, relative to the set directory ([`cut_dir_name`]).
    pub dir: String,
    /// Feature dimension of the cut's codes.
    pub dim: usize,
}

impl CutSet {
    pub fn new(model: impl Into<String>, dataset: impl Into<String>, cuts: Vec<CutEntry>) -> Self {
        CutSet {
            format: SET_FORMAT.into(),
            version: SET_VERSION,
            model: model.into(),
            dataset: dataset.into(),
            cuts,
        }
    }
}

/// The sub-directory name of cut `cut`: the name itself when it is a plain file name
/// (ASCII letters, digits, `-`, `_`, `.`, and `@` after the first byte, as in the grid cut
/// `stage6@2x2`), else every other byte replaced by `_` and a short hash of the full name
/// appended, so two different node names never share a directory.
pub fn cut_dir_name(cut: &str) -> String {
    let plain = !cut.is_empty()
        && cut != "."
        && cut != ".."
        && cut.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') || (b == b'@' && i > 0)
        });
    if plain {
        return cut.to_string();
    }
    let cleaned: String = cut
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a: stable across platforms and releases (std's hasher is not).
    let hash = cut.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{cleaned}-{:08x}", hash as u32)
}

/// Write `DIR/cuts.json` atomically.
pub fn write_set(dir: &Path, set: &CutSet) -> Result<(), CacheError> {
    let path = dir.join(SET_FILE);
    let json = serde_json::to_string_pretty(set)
        .map_err(|e| CacheError::invalid(&path, format!("cannot serialise: {e}")))?;
    crate::write_atomic_bytes(&path, json.as_bytes())
}

/// Read and check `DIR/cuts.json`.
pub fn read_set(dir: &Path) -> Result<CutSet, CacheError> {
    let path = dir.join(SET_FILE);
    let bytes = std::fs::read(&path).map_err(|e| CacheError::io("reading", &path, e))?;
    let set: CutSet = crate::json::from_slice(&bytes)
        .map_err(|e| CacheError::invalid(&path, format!("not a cut-set manifest: {e}")))?;
    if set.format != SET_FORMAT {
        return Err(CacheError::invalid(
            &path,
            format!("format is '{}', expected '{SET_FORMAT}'", set.format),
        ));
    }
    if set.version != SET_VERSION {
        return Err(CacheError::invalid(
            &path,
            format!(
                "version {} (this tlearn reads version {SET_VERSION})",
                set.version
            ),
        ));
    }
    if set.cuts.is_empty() {
        return Err(CacheError::invalid(&path, "lists no cuts"));
    }
    for (i, c) in set.cuts.iter().enumerate() {
        if let Some(j) = set.cuts[..i].iter().position(|o| o.name == c.name) {
            return Err(CacheError::invalid(
                &path,
                format!(
                    "lists cut '{}' twice (entries {} and {}); each cut once",
                    c.name,
                    j + 1,
                    i + 1
                ),
            ));
        }
        if c.dir != cut_dir_name(&c.name) {
            return Err(CacheError::invalid(
                &path,
                format!(
                    "cut '{}' has directory '{}', expected '{}'",
                    c.name,
                    c.dir,
                    cut_dir_name(&c.name)
                ),
            ));
        }
    }
    Ok(set)
}

/// The `layer` of a whole multi-cut extraction: the cut names joined by [`CUT_SEPARATOR`].
pub fn set_layer<S: AsRef<str>>(cuts: &[S]) -> String {
    crate::cut_spec::join_cuts(cuts)
}

/// The fingerprint of cut `cut`'s cache in a set extracted under `set_fp`: the same, with
/// `layer` = the cut (so it equals a single-cut extraction of that layer).
pub fn cut_fingerprint(set_fp: &Fingerprint, cut: &str) -> Fingerprint {
    Fingerprint {
        layer: cut.to_string(),
        ..set_fp.clone()
    }
}

/// Write the cut set `set` into `dir` from one extraction's joined rows: `meta` describes the
/// whole extraction (`dim` = the cuts' dims summed, `extractor.layer` = [`set_layer`] of the
/// cuts) and row i of `features` (row-major `[meta.rows, meta.dim]`) holds the cuts' vectors
/// side by side in `set.cuts` order; so does each view of `views` (`[meta.rows,
/// meta.views.len(), meta.dim]`, see [`crate::write_with_views`]), when given. The old set (or
/// plain cache, replaced with `--overwrite`) stays whole until every file of the new one is
/// written, then is replaced in one recorded step list ([`crate::set_update`]); the caches of
/// cuts the previous set had and this one has not are retired.
pub fn write_split(
    dir: &Path,
    set: &CutSet,
    meta: &Meta,
    index: &[IndexRow],
    features: &[f32],
    views: Option<&[f32]>,
    skipped: &[SkipRow],
) -> Result<(), CacheError> {
    let names: Vec<&str> = set.cuts.iter().map(|c| c.name.as_str()).collect();
    let dims: usize = set.cuts.iter().map(|c| c.dim).sum();
    if dims != meta.dim || meta.extractor.layer != set_layer(&names) {
        return Err(CacheError::invalid(
            dir,
            format!(
                "refusing to write an inconsistent cut set: cuts [{}] of {dims} values in all, \
                 rows of {} values extracted as '{}'",
                names.join(", "),
                meta.dim,
                meta.extractor.layer
            ),
        ));
    }
    if index.len() != meta.rows || features.len() != meta.rows * meta.dim {
        return Err(CacheError::invalid(
            dir,
            format!(
                "refusing to write an inconsistent cut set: {} index rows and {} floats for {}×{}",
                index.len(),
                features.len(),
                meta.rows,
                meta.dim
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| CacheError::io("creating", dir, e))?;
    let old_cuts: Vec<String> = match read_set(dir) {
        Ok(old) => old.cuts.into_iter().map(|c| c.dir).collect(),
        Err(_) => vec![],
    };
    let retire: Vec<String> = old_cuts
        .into_iter()
        .filter(|o| !set.cuts.iter().any(|c| c.dir == *o))
        .collect();
    let json = serde_json::to_string_pretty(set)
        .map_err(|e| CacheError::invalid(dir.join(SET_FILE), format!("cannot serialise: {e}")))?;
    let cut_dirs: Vec<String> = set.cuts.iter().map(|c| c.dir.clone()).collect();
    let offsets: Vec<usize> = set
        .cuts
        .iter()
        .scan(0, |o, c| {
            let at = *o;
            *o += c.dim;
            Some(at)
        })
        .collect();
    let stage = |i: usize| {
        let (cut, offset) = (&set.cuts[i], offsets[i]);
        let mut cut_features = Vec::with_capacity(meta.rows * cut.dim);
        for row in features.chunks_exact(meta.dim) {
            cut_features.extend_from_slice(&row[offset..offset + cut.dim]);
        }
        let cut_views = views.map(|v| {
            let mut out = Vec::with_capacity(v.len() / meta.dim * cut.dim);
            for view in v.chunks_exact(meta.dim) {
                out.extend_from_slice(&view[offset..offset + cut.dim]);
            }
            out
        });
        let cut_meta = Meta {
            dim: cut.dim,
            extractor: cut_fingerprint(&meta.extractor, &cut.name),
            ..meta.clone()
        };
        crate::write::stage_cache(
            &dir.join(&cut.dir),
            &cut_meta,
            index,
            &cut_features,
            cut_views.as_deref(),
            skipped,
        )
    };
    crate::set_update::commit(dir, &cut_dirs, stage, json.as_bytes(), &retire)
}

/// Make `dir` hold no cut set any more (before a plain cache is written there with
/// `--overwrite`): `cuts.json` first, then the caches it lists.
pub fn retire_set(dir: &Path) -> Result<(), CacheError> {
    let Ok(old) = read_set(dir) else {
        return remove_if_present(&dir.join(SET_FILE));
    };
    remove_if_present(&dir.join(SET_FILE))?;
    for c in &old.cuts {
        retire_cache_dir(&dir.join(&c.dir))?;
    }
    Ok(())
}

/// Remove a cut's cache directory: only the files a cache holds, then the directory if that
/// left it empty (anything else a user put there stays).
pub(crate) fn retire_cache_dir(dir: &Path) -> Result<(), CacheError> {
    for f in crate::DATA_FILES
        .into_iter()
        .chain([crate::lock::LOCK_FILE])
    {
        remove_if_present(&dir.join(f))?;
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), CacheError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::io("removing", path, e)),
    }
}

/// What `dir` holds, as one cache: a plain cache as [`FeatureCache::read`] gives it, a cut set
/// joined (the cuts' columns side by side in `cuts.json` order, `meta.dim` their sum,
/// `extractor` the whole extraction's fingerprint, `non_finite` every row not finite in some
/// cut). `Ok(None)` when it holds neither. The caches of a set must hold the same rows and
/// fingerprints that differ only in `layer`; anything else is an error naming the cache. Rows
/// on which the caches of a set disagree are listed in `misplaced` with those of each cache
/// (for `extract` to extract again).
pub fn read_joined(dir: &Path) -> Result<Option<FeatureCache>, CacheError> {
    crate::set_update::finish_interrupted(dir)?;
    if dir.join(META_FILE).is_file() || !dir.join(SET_FILE).is_file() {
        return FeatureCache::read(dir);
    }
    let set = read_set(dir)?;
    let mut caches = Vec::with_capacity(set.cuts.len());
    for c in &set.cuts {
        let cdir = dir.join(&c.dir);
        let cache = FeatureCache::read(&cdir)?.ok_or_else(|| {
            CacheError::invalid(
                dir.join(SET_FILE),
                format!(
                    "lists cut '{}' but {} holds no cache",
                    c.name,
                    cdir.display()
                ),
            )
        })?;
        if cache.meta.dim != c.dim {
            return Err(CacheError::invalid(
                cdir.join(META_FILE),
                format!("dim {} but {} says {}", cache.meta.dim, SET_FILE, c.dim),
            ));
        }
        caches.push(cache);
    }
    let names: Vec<&str> = set.cuts.iter().map(|c| c.name.as_str()).collect();
    let first = &caches[0];
    let fp = Fingerprint {
        layer: set_layer(&names),
        ..first.meta.extractor.clone()
    };
    for (c, cache) in set.cuts.iter().zip(&caches) {
        let path = cache.dir.join(META_FILE);
        if let Some(diff) =
            cut_fingerprint(&fp, &c.name).compare(&cache.meta.extractor, "the set", "this cut")
        {
            return Err(CacheError::invalid(
                path,
                format!("not extracted with the rest of the set: {diff}"),
            ));
        }
        if cache.paths.len() != first.paths.len() {
            return Err(CacheError::invalid(
                path,
                format!(
                    "its rows are not those of {} (the caches of a set hold the same images): \
                     {} rows against {}",
                    first.dir.display(),
                    cache.paths.len(),
                    first.paths.len()
                ),
            ));
        }
    }
    // Rows on which the cuts disagree (an index edited in one cut) cannot be trusted in any.
    let disagree: Vec<usize> = (0..caches[0].paths.len())
        .filter(|&i| {
            caches.iter().any(|c| {
                c.paths[i] != caches[0].paths[i]
                    || c.sha256[i] != caches[0].sha256[i]
                    || c.y[i] != caches[0].y[i]
            })
        })
        .collect();
    let views: Vec<_> = caches.iter().map(|c| c.x.view()).collect();
    let x = concatenate(Axis(1), &views)
        .expect("same row counts")
        .as_standard_layout()
        .into_owned();
    let mut non_finite: Vec<usize> = caches.iter().flat_map(|c| c.non_finite.clone()).collect();
    non_finite.sort_unstable();
    non_finite.dedup();
    let mut misplaced: Vec<usize> = caches
        .iter()
        .flat_map(|c| c.misplaced.clone())
        .chain(disagree)
        .collect();
    misplaced.sort_unstable();
    misplaced.dedup();
    let mut joined = caches.swap_remove(0);
    joined.meta.dim = x.ncols();
    joined.meta.extractor = fp;
    joined.dir = dir.to_path_buf();
    joined.x = x;
    joined.non_finite = non_finite;
    joined.misplaced = misplaced;
    Ok(Some(joined))
}

/// Every view's codes of what `dir` holds, joined like [`read_joined`] (the cuts side by side
/// within each view): `[rows, views, dim]`, with the rows that are not finite in any cut listed;
/// `Ok(None)` when it keeps no views.
pub fn read_joined_views(dir: &Path) -> Result<Option<Views>, CacheError> {
    crate::set_update::finish_interrupted(dir)?;
    if dir.join(META_FILE).is_file() || !dir.join(SET_FILE).is_file() {
        return match FeatureCache::read(dir)? {
            Some(c) => c.load_views(),
            None => Ok(None),
        };
    }
    let set = read_set(dir)?;
    let mut parts = Vec::with_capacity(set.cuts.len());
    for c in &set.cuts {
        let cdir = dir.join(&c.dir);
        let Some(cache) = FeatureCache::read(&cdir)? else {
            return Ok(None);
        };
        match cache.load_views()? {
            Some(v) => parts.push(v),
            None => return Ok(None),
        }
    }
    let (rows, n_views, _) = parts[0].codes.dim();
    if !parts
        .iter()
        .all(|p| p.codes.dim().0 == rows && p.codes.dim().1 == n_views)
    {
        return Err(CacheError::invalid(
            dir.join(SET_FILE),
            "its cuts keep different numbers of rows or views",
        ));
    }
    let views: Vec<_> = parts.iter().map(|p| p.codes.view()).collect();
    let mut non_finite: Vec<usize> = parts.iter().flat_map(|p| p.non_finite.clone()).collect();
    non_finite.sort_unstable();
    non_finite.dedup();
    Ok(Some(Views {
        codes: concatenate(Axis(2), &views)
            .expect("shapes checked")
            .as_standard_layout()
            .into_owned(),
        non_finite,
    }))
}

/// The cut directories of the set in `dir` that a writer may have left temp files in: those of
/// `cuts.json`, and those of an unfinished multi-cut run's journal (a first run killed while it
/// wrote its set has no `cuts.json` yet).
pub(crate) fn cut_dirs_written(dir: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = read_set(dir)
        .map(|s| s.cuts.into_iter().map(|c| c.dir).collect())
        .unwrap_or_default();
    if let Some(fp) = crate::journal::journal_fingerprint(dir) {
        let cuts: Vec<&str> = fp.layer.split(CUT_SEPARATOR).collect();
        if cuts.len() > 1 {
            dirs.extend(cuts.into_iter().map(cut_dir_name));
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The fingerprint of the whole extraction that wrote the set in `dir` (its first cut's, with
/// `layer` = all the cuts), `None` when there is no readable set.
pub(crate) fn set_fingerprint(dir: &Path) -> Option<Fingerprint> {
    let set = read_set(dir).ok()?;
    let meta: Meta =
        serde_json::from_slice(&std::fs::read(dir.join(&set.cuts[0].dir).join(META_FILE)).ok()?)
            .ok()?;
    let names: Vec<&str> = set.cuts.iter().map(|c| c.name.as_str()).collect();
    Some(Fingerprint {
        layer: set_layer(&names),
        ..meta.extractor
    })
}

/// One cache a user's path names: a label for reports (the cut name, or the directory's name
/// for a plain cache) and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedCache {
    pub name: String,
    pub dir: PathBuf,
}

/// The caches `path` names: `path` itself when it holds `meta.json` (a plain cache, or a cut of
/// a set given directly) or is a Parquet codes directory, every cut in `cuts.json` order when it holds a cut set. Neither is an
/// error naming the path. An update of the set cut short is finished first
/// ([`crate::set_update`]); each cut's fingerprint (its `meta.json`) must be the set's: its
/// `layer` the cut's name, its `backbone` the set's model, the rest the same in every cut. The
/// caches' data are not read here.
pub fn resolve(path: &Path) -> Result<Vec<NamedCache>, CacheError> {
    crate::set_update::finish_interrupted(path)?;
    if path.join(META_FILE).is_file() || crate::parquet_codes::is_codes_dir(path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        return Ok(vec![NamedCache {
            name,
            dir: path.to_path_buf(),
        }]);
    }
    if path.join(SET_FILE).is_file() {
        let set = read_set(path)?;
        check_cut_fingerprints(path, &set)?;
        return Ok(set
            .cuts
            .iter()
            .map(|c| NamedCache {
                name: c.name.clone(),
                dir: path.join(&c.dir),
            })
            .collect());
    }
    if let Some(holder) = crate::lock::CacheLock::holder(path) {
        return Err(CacheError::BeingWritten {
            dir: path.to_path_buf(),
            by: format!(" by {holder}"),
        });
    }
    Err(CacheError::invalid(
        path,
        format!(
            "neither a feature cache ({META_FILE}), a cut set ({SET_FILE}) nor Parquet codes \
             ({}); make one with `tlearn extract`",
            crate::parquet_codes::SIDECAR_FILE
        ),
    ))
}

/// Each cut's `meta.json` against `cuts.json` and the set's first cut: `layer` = the cut's name,
/// `backbone` = the set's model, every other field of the fingerprint the same in all cuts. A cut
/// without `meta.json` is left to the reader (being written, or not a cache).
fn check_cut_fingerprints(dir: &Path, set: &CutSet) -> Result<(), CacheError> {
    let mut first: Option<(Fingerprint, &CutEntry)> = None;
    for c in &set.cuts {
        let path = dir.join(&c.dir).join(META_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CacheError::io("reading", path, e)),
        };
        // A meta.json that does not parse is named by the cache's own reader.
        let Ok(meta) = serde_json::from_slice::<Meta>(&bytes) else {
            continue;
        };
        let fp = meta.extractor;
        let wrong = |field: &str, has: &str, want: &str| {
            Err(CacheError::invalid(
                &path,
                format!(
                    "extractor.{field} is '{has}', but {} lists this cache as cut '{}' of {} \
                     ({field} '{want}'); re-extract the set with `tlearn extract`",
                    dir.join(SET_FILE).display(),
                    c.name,
                    set.model
                ),
            ))
        };
        if fp.layer != c.name {
            return wrong("layer", &fp.layer, &c.name);
        }
        if fp.backbone != set.model {
            return wrong("backbone", &fp.backbone, &set.model);
        }
        match &first {
            None => first = Some((fp, c)),
            Some((f, fc)) => {
                if let Some(diff) = cut_fingerprint(f, &c.name).compare(
                    &fp,
                    &format!("cut '{}'", fc.name),
                    "this cut",
                ) {
                    return Err(CacheError::invalid(
                        path,
                        format!("not extracted with the rest of the set: {diff}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FEATURES_FILE, VIEWS_FILE};

    #[test]
    fn plain_names_are_kept_and_others_are_made_safe_and_distinct() {
        assert_eq!(cut_dir_name("stage6"), "stage6");
        assert_eq!(cut_dir_name("features"), "features");
        assert_eq!(cut_dir_name("stage6@2x2"), "stage6@2x2");
        assert_ne!(cut_dir_name("@classifier_input"), "@classifier_input");
        let a = cut_dir_name("/blocks/5/conv/Conv_output_0");
        let b = cut_dir_name("_blocks_5_conv_Conv_output_0");
        assert!(!a.contains('/'));
        assert_ne!(a, b);
        assert_ne!(cut_dir_name(".."), "..");
    }

    #[test]
    fn a_set_round_trips_and_resolves_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cuts = ["features", "stage6"]
            .iter()
            .map(|n| CutEntry {
                name: n.to_string(),
                dir: cut_dir_name(n),
                dim: 8,
            })
            .collect();
        let set = CutSet::new("efficientnet-lite0", "/data/x", cuts);
        write_set(dir.path(), &set).unwrap();
        assert_eq!(read_set(dir.path()).unwrap(), set);
        let named = resolve(dir.path()).unwrap();
        assert_eq!(named.len(), 2);
        assert_eq!(named[1].name, "stage6");
        assert_eq!(named[1].dir, dir.path().join("stage6"));
    }

    fn fp(layer: &str) -> Fingerprint {
        serde_json::from_value(serde_json::json!({
            "backbone": "b", "sha256": "s", "layer": layer, "pool": "avg", "augment": "none",
            "preprocess": {"crop": 4, "resize_ratio": 1.0, "value_scale": 1.0,
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channels": "RGB",
                "layout": "NCHW"}
        }))
        .unwrap()
    }

    fn joined_rows() -> (CutSet, Meta, Vec<IndexRow>, Vec<f32>) {
        let cuts = vec![("a", 2), ("b/x", 1)]
            .into_iter()
            .map(|(n, d)| CutEntry {
                name: n.into(),
                dir: cut_dir_name(n),
                dim: d,
            })
            .collect();
        let set = CutSet::new("b", "/d", cuts);
        let meta = Meta::new("/d", 3, 2, vec!["k".into()], fp("a,b/x"), "now");
        let index = ["k/1.png", "k/2.png"]
            .iter()
            .map(|p| IndexRow {
                path: p.to_string(),
                label: "k".into(),
                sha256: format!("{p}-sha"),
            })
            .collect();
        (set, meta, index, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    }

    #[test]
    fn joined_rows_are_split_into_caches_and_joined_back() {
        let dir = tempfile::tempdir().unwrap();
        let (set, meta, index, rows) = joined_rows();
        write_split(dir.path(), &set, &meta, &index, &rows, None, &[]).unwrap();
        let b = FeatureCache::load(&dir.path().join(cut_dir_name("b/x"))).unwrap();
        assert_eq!(b.x.as_slice().unwrap(), &[3.0, 6.0]);
        assert_eq!(b.meta.extractor, fp("b/x"));
        let a = FeatureCache::load(&dir.path().join("a")).unwrap();
        assert_eq!(a.x.as_slice().unwrap(), &[1.0, 2.0, 4.0, 5.0]);
        let joined = read_joined(dir.path()).unwrap().unwrap();
        assert_eq!(joined.x.as_slice().unwrap(), &rows[..]);
        assert_eq!(joined.meta.extractor, fp("a,b/x"));
        assert_eq!(crate::existing_fingerprint(dir.path()), Some(fp("a,b/x")));
        assert_eq!(resolve(dir.path()).unwrap().len(), 2);

        // A row on which a cut differs from the others is listed as misplaced (extract
        // extracts it again); a cut with other rows altogether is an error naming its cache.
        let mut other = index.clone();
        other[1].sha256 = "changed".into();
        let a_meta = Meta {
            dim: 2,
            extractor: fp("a"),
            ..meta.clone()
        };
        crate::write(
            &dir.path().join("a"),
            &a_meta,
            &other,
            &[1.0, 2.0, 4.0, 5.0],
            &[],
        )
        .unwrap();
        assert_eq!(read_joined(dir.path()).unwrap().unwrap().misplaced, vec![1]);
        crate::write(
            &dir.path().join("a"),
            &Meta {
                rows: 1,
                ..a_meta.clone()
            },
            &other[..1],
            &[1.0, 2.0],
            &[],
        )
        .unwrap();
        let e = read_joined(dir.path()).unwrap_err().to_string();
        assert!(e.contains("rows are not those of"), "{e}");

        // An inconsistent layout is refused before anything is written.
        let mut wrong = meta.clone();
        wrong.extractor.layer = "b/x,a".into();
        let e = write_split(dir.path(), &set, &wrong, &index, &rows, None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inconsistent cut set"), "{e}");
    }

    #[test]
    fn kept_views_are_split_per_cut_and_joined_back() {
        let dir = tempfile::tempdir().unwrap();
        let (set, mut meta, index, _) = joined_rows();
        meta.views = vec!["centre".into(), "centre-flip".into()];
        // [2 rows, 2 views, 3 values]; features = the mean over the views.
        let views: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let features = [1.5, 2.5, 3.5, 7.5, 8.5, 9.5];
        write_split(
            dir.path(),
            &set,
            &meta,
            &index,
            &features,
            Some(&views),
            &[],
        )
        .unwrap();
        let b = FeatureCache::load(&dir.path().join(cut_dir_name("b/x"))).unwrap();
        assert_eq!(b.meta.views, meta.views);
        let bv = b.read_views().unwrap().unwrap();
        assert_eq!(bv.shape(), &[2, 2, 1]);
        assert_eq!(bv.as_slice().unwrap(), &[2.0, 5.0, 8.0, 11.0]);
        let joined = read_joined_views(dir.path()).unwrap().unwrap();
        assert_eq!(joined.codes.as_slice().unwrap(), &views[..]);
        assert!(joined.non_finite.is_empty());
        // A plain rewrite without views removes views.npy.
        let a = dir.path().join("a");
        let plain = Meta {
            dim: 2,
            extractor: fp("a"),
            views: vec![],
            ..meta.clone()
        };
        crate::write(&a, &plain, &index, &[1.0, 2.0, 4.0, 5.0], &[]).unwrap();
        assert!(!a.join(VIEWS_FILE).exists());
        assert!(read_joined_views(dir.path()).unwrap().is_none());
        // Views that disagree with meta.json are refused, naming the file.
        let e = crate::write_with_views(&a, &meta, &index, &features, Some(&views[..6]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inconsistent"), "{e}");
    }

    #[test]
    fn a_plain_cache_and_a_set_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let (set, meta, index, rows) = joined_rows();
        let plain = Meta {
            dim: 2,
            extractor: fp("a"),
            ..meta.clone()
        };
        crate::write(dir.path(), &plain, &index, &[1.0, 2.0, 4.0, 5.0], &[]).unwrap();
        write_split(dir.path(), &set, &meta, &index, &rows, None, &[]).unwrap();
        assert!(!dir.path().join(META_FILE).exists());
        assert!(!dir.path().join(FEATURES_FILE).exists());
        assert_eq!(resolve(dir.path()).unwrap().len(), 2);
        retire_set(dir.path()).unwrap();
        assert!(!dir.path().join(SET_FILE).exists());
        assert!(!dir.path().join("a").exists());
        assert!(read_joined(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_path_that_is_neither_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(dir.path()).unwrap_err().to_string();
        assert!(err.contains("neither a feature cache"), "{err}");
        std::fs::write(dir.path().join(SET_FILE), b"{\"format\":\"x\"}").unwrap();
        let err = resolve(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cuts.json"), "{err}");
    }
}
