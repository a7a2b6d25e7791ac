//! `meta.json`, the rows of `index.csv` and of `skipped.csv`.

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// `meta.json`: what the cache holds and which extractor made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`crate::FORMAT`].
    pub format: String,
    /// [`crate::VERSION`].
    pub version: u32,
    /// The data set folder the rows come from (absolute).
    #[serde(default)]
    pub dataset: String,
    pub dim: usize,
    pub rows: usize,
    pub classes: Vec<String>,
    pub extractor: Fingerprint,
    /// The augmentation views whose codes `views.npy` holds, in its order (`centre`,
    /// `top-left-flip`, ...); empty (and absent from the file) when it holds none. Not part of
    /// the fingerprint: `features.npy` is the same either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<String>,
    /// RFC 3339 time of writing.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub tlearn_version: String,
}

impl Meta {
    /// A v1 `meta.json` for `rows × dim` vectors of `classes` made by `extractor`.
    pub fn new(
        dataset: impl Into<String>,
        dim: usize,
        rows: usize,
        classes: Vec<String>,
        extractor: Fingerprint,
        created: impl Into<String>,
    ) -> Meta {
        Meta {
            format: crate::FORMAT.into(),
            version: crate::VERSION,
            dataset: dataset.into(),
            dim,
            rows,
            classes,
            extractor,
            views: vec![],
            created: created.into(),
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One row of `index.csv`: row i of `features.npy` is the image `path` of class `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    /// Relative to the data set root, `/`-separated.
    pub path: String,
    pub label: String,
    /// sha256 of the file's bytes (duplicates share it).
    pub sha256: String,
}

/// One row of `skipped.csv`: a file that is not in the cache, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipRow {
    pub path: String,
    pub reason: String,
}
