//! tlearn-cache: the on-disk feature cache (format `tlearn-features` v1), owned in one place.
//!
//! A cache directory holds `meta.json` ([`Meta`], with the extractor [`Fingerprint`]),
//! `features.npy` (float32 `[N, D]`, C order), `index.csv` (`path,label,sha256`, row i ↔
//! features row i, sorted by path, each path once, the label its class folder) and `skipped.csv` (`path,reason`). While an extraction runs,
//! new vectors are appended to `journal.bin` ([`journal`]) so that a killed run resumes. A cache
//! extracted with augmentation views kept also holds `views.npy` (float32 `[N, V, D]`, every
//! view's codes; `features.npy` is their mean over V), its views named in `meta.json`.
//!
//! Writers: [`write()`] (a whole cache, `meta.json` last) and [`write_atomic`] (any single
//! file: unique temp file in the same directory, fsync, rename, fsync of the directory), used
//! by every writer in the workspace. Reader: [`FeatureCache`], the only one, which checks
//! shapes, labels and finiteness and names the file and row of every problem.
//!
//! The same codes as Parquet, the format the cluster engines share: [`parquet_codes`] (a codes
//! directory reads as a cache wherever one is read, [`FeatureCache::load`], [`resolve`]).
//!
//! Several cuts of one backbone extracted together form a cut set ([`set`]): one ordinary cache
//! per cut under a directory holding `cuts.json`, replaced as one step ([`set_update`]).
//!
//! No tract, no linfa: extraction (`tlearn-extract`) and the heads (`tlearn-heads`) both
//! depend on this crate, never on each other.

pub mod atomic;
pub mod cut_spec;
pub mod error;
pub mod fingerprint;
pub mod journal;
pub mod json;
pub mod lock;
pub mod meta;
mod npy;
pub mod parquet_codes;
pub mod read;
pub mod set;
pub mod set_update;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod write;

pub use atomic::{check_writable, write_atomic, write_atomic_bytes};
pub use cut_spec::{CutCombo, CutName, CutSpecError, LayerSpec};
pub use error::CacheError;
pub use fingerprint::{
    Augment, ChannelOrder, DecodeMode, FieldDiff, Fingerprint, FingerprintDiff, Layout, Pooling,
    Preprocess,
};
pub use lock::CacheLock;
pub use meta::{IndexRow, Meta, SkipRow};
pub use read::{existing_fingerprint, FeatureCache, Views};
pub use set::{resolve, CutEntry, CutSet, NamedCache};
pub use write::{write, write_with_views};

/// `meta.json`'s `format` field.
pub const FORMAT: &str = "tlearn-features";
/// `meta.json`'s `version` field: the only version this tlearn reads and writes.
pub const VERSION: u32 = 1;

/// File names inside a cache directory.
pub const META_FILE: &str = "meta.json";
pub const FEATURES_FILE: &str = "features.npy";
pub const INDEX_FILE: &str = "index.csv";
pub const SKIPPED_FILE: &str = "skipped.csv";
pub const JOURNAL_FILE: &str = "journal.bin";
/// The last extraction run's report (written by `tlearn-extract`).
pub const SUMMARY_FILE: &str = "summary.json";
/// Every augmentation view's codes, float32 `[N, V, D]` (only in a cache extracted with
/// `--keep-views`; `meta.json`'s `views` names them).
pub const VIEWS_FILE: &str = "views.npy";
/// A plain cache's data files, `meta.json` first: removed in this order, a half-removed cache
/// never reads as one.
pub const DATA_FILES: [&str; 5] = [
    META_FILE,
    FEATURES_FILE,
    INDEX_FILE,
    SKIPPED_FILE,
    VIEWS_FILE,
];
