//! Codes as Parquet (format `tlearn-codes` v1): the format tlearn shares with Ray Data, Spark,
//! pyarrow, DuckDB and polars. Defined here, with the npy cache it converts to and from, and
//! nowhere else: the Python package builds its Arrow batches and its sidecar through these
//! functions.
//!
//! A codes directory holds any number of Parquet files (`*.parquet`; Spark's `part-*`, Ray's
//! shards, tlearn's `part-NNNNN.parquet`) and the sidecar `_tlearn.json` ([`Sidecar`]: the whole
//! extractor fingerprint, its hash, the code length). Files whose names start with `_` or `.`
//! are not data (engines skip them too: `_SUCCESS`, `.crc`, temp files). Each row is one image:
//!
//! | column        | type                                     | meaning                               |
//! |---------------|------------------------------------------|---------------------------------------|
//! | `path`        | string                                   | relative to the data set root, `/`    |
//! | `label`       | string (null when not in a class folder) | the class folder                      |
//! | `sha256`      | string (null when unreadable)            | of the file's bytes                   |
//! | `features`    | fixed-size list of float32 (or a list)   | the CNN code; null when `error` isn't |
//! | `error`       | string, null when the row is fine        | why the image has no code             |
//! | `fingerprint` | string                                   | [`fingerprint_hash`] of the extractor |
//!
//! tlearn writes `features` as a fixed-size list; a plain list (what Spark and Ray write, and
//! what Spark's `mapInArrow` needs, [`ListKind::Variable`]) reads the same. Reading
//! ([`read_codes`]) refuses, naming the file and the row: another code length, float64 or
//! other non-float32 values, nulls inside a vector, values that are not finite, two rows of one
//! path with different bytes, a row without codes or error, a fingerprint that is not the
//! sidecar's, and a file that is not Parquet or is cut short. Rows of one path with the same
//! bytes (a retried task) are read once.
//!
//! [`import`] writes the npy cache `tlearn extract` writes for the same images (`features.npy`,
//! `index.csv` and `skipped.csv` byte for byte; `meta.json` the same but for its time of
//! writing); [`export`] writes a cache as Parquet.

mod batch;
mod read;
mod write;

pub use batch::{record_batch, schema, CodeRow, ListKind};
pub use read::{import, read_codes, read_sidecar, shard_files};
pub use write::{
    check_sidecar, codes_shard_bytes, export, shard_bytes, write_shard, write_sidecar,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;

/// The sidecar's `format` field.
pub const CODES_FORMAT: &str = "tlearn-codes";
/// The sidecar's `version` field: the only version this tlearn reads and writes.
pub const CODES_VERSION: u32 = 1;
/// The sidecar inside a codes directory (a leading `_`: Spark, pyarrow and Ray read past it).
pub const SIDECAR_FILE: &str = "_tlearn.json";

/// Column names.
pub const PATH: &str = "path";
pub const LABEL: &str = "label";
pub const SHA256: &str = "sha256";
pub const FEATURES: &str = "features";
pub const ERROR: &str = "error";
pub const FINGERPRINT: &str = "fingerprint";

/// `_tlearn.json`: which extractor made the codes of a directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// [`CODES_FORMAT`].
    pub format: String,
    /// [`CODES_VERSION`].
    pub version: u32,
    /// Length of every code.
    pub dim: usize,
    /// [`fingerprint_hash`] of `extractor`: what every row's `fingerprint` column holds.
    pub fingerprint: String,
    pub extractor: Fingerprint,
    /// Where the images were (a folder, or an engine's URI).
    #[serde(default)]
    pub dataset: String,
    /// RFC 3339 time of writing.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub tlearn_version: String,
}

impl Sidecar {
    pub fn new(
        extractor: Fingerprint,
        dim: usize,
        dataset: impl Into<String>,
        created: impl Into<String>,
    ) -> Sidecar {
        Sidecar {
            format: CODES_FORMAT.into(),
            version: CODES_VERSION,
            dim,
            fingerprint: fingerprint_hash(&extractor),
            extractor,
            dataset: dataset.into(),
            created: created.into(),
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The `fingerprint` column's value: sha256 (hex) of the fingerprint's JSON as this crate
/// writes it, so fingerprints equal by value (however a file spelt them) hash the same.
pub fn fingerprint_hash(fp: &Fingerprint) -> String {
    let json = serde_json::to_vec(fp).expect("a fingerprint serialises");
    hex::encode(Sha256::digest(json))
}

/// Whether `dir` is a codes directory (it holds the sidecar).
pub fn is_codes_dir(dir: &std::path::Path) -> bool {
    dir.join(SIDECAR_FILE).is_file()
}
