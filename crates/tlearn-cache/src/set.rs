//! A cut set: several caches of the same images, one per backbone cut, written by one
//! extraction (`tlearn extract --layer features,stage6,stage5`).
//!
//! Layout: `DIR/cuts.json` ([`CutSet`]) and one complete, ordinary cache per cut in
//! `DIR/<cut_dir_name(cut)>/` (its own `meta.json` and fingerprint, `features.npy`,
//! `index.csv`, `skipped.csv`), so every cut stays numpy-readable and can be given to `train`
//! or `eval` on its own. All caches of a set hold the same images in the same row order.
//!
//! [`resolve`] turns a path a user gives (`train PATH`) into the caches it names: a plain cache
//! is a set of one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::META_FILE;

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
/// (ASCII letters, digits, `-`, `_`, `.`), else every other byte replaced by `_` and a short
/// hash of the full name appended, so two different node names never share a directory.
pub fn cut_dir_name(cut: &str) -> String {
    let plain = !cut.is_empty()
        && cut != "."
        && cut != ".."
        && cut
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
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
    let set: CutSet = serde_json::from_slice(&bytes)
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
    for c in &set.cuts {
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

/// One cache a user's path names: a label for reports (the cut name, or the directory's name
/// for a plain cache) and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedCache {
    pub name: String,
    pub dir: PathBuf,
}

/// The caches `path` names: `path` itself when it holds `meta.json` (a plain cache, or a cut of
/// a set given directly), every cut in `cuts.json` order when it holds a cut set. Neither is an
/// error naming the path. The caches themselves are not read here.
pub fn resolve(path: &Path) -> Result<Vec<NamedCache>, CacheError> {
    if path.join(META_FILE).is_file() {
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
        return Ok(set
            .cuts
            .iter()
            .map(|c| NamedCache {
                name: c.name.clone(),
                dir: path.join(&c.dir),
            })
            .collect());
    }
    Err(CacheError::invalid(
        path,
        format!(
            "neither a feature cache ({META_FILE}) nor a cut set ({SET_FILE}); make one with \
             `tlearn extract`"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept_and_others_are_made_safe_and_distinct() {
        assert_eq!(cut_dir_name("stage6"), "stage6");
        assert_eq!(cut_dir_name("features"), "features");
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
