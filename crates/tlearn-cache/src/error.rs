//! The cache crate's error: every variant names the file (or directory) concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An I/O operation on `path` failed.
    #[error("{action} {path}: {err}")]
    Io {
        action: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    /// `path` exists but its content is not what the format says.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Another process holds the cache's lock.
    #[error(
        "cache {dir} is being written by {holder}; wait for it to finish or use another --out"
    )]
    Locked { dir: PathBuf, holder: String },
    /// The cache changed while it was read (an `extract` replacing it), or is half replaced.
    #[error("cache {dir} is being written{by}; run this again when it has finished")]
    BeingWritten { dir: PathBuf, by: String },
    /// Rows of `features.npy` hold NaN or infinite values.
    #[error(
        "{path}: {count} row(s) contain NaN or infinite values: {rows}; re-extract them with \
         `tlearn extract {dataset} --out {dir}` and the same --model/--layer/--pool/--augment \
         (rows that are not finite are extracted again)"
    )]
    NonFinite {
        path: PathBuf,
        dir: PathBuf,
        dataset: String,
        count: usize,
        rows: String,
    },
}

impl CacheError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        CacheError::Io {
            action,
            path: path.into(),
            err,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CacheError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
