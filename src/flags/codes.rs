//! `tlearn export-codes` and `tlearn import-codes`' flags, as typed.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
#[command(after_help = "\
A codes directory holds Parquet files (columns path, label, sha256, features as a fixed-size list
of float32, error, fingerprint) and the sidecar _tlearn.json with the extractor's fingerprint:
what pyarrow, DuckDB, polars, Spark and Ray read as they are. `train` and `eval` read such a
directory wherever they read a cache. See docs/formats.md.")]
pub struct ExportCodesArgs {
    /// A feature cache, or a cut set (then one codes directory per cut, OUT/<cut>).
    pub cache: PathBuf,
    /// Codes directory to write (new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = 65536)]
    pub rows_per_file: usize,
}

#[derive(Args)]
#[command(after_help = "\
The rows are read as `train` reads them (every file checked against the sidecar: code length,
float32 values, finite, one row per path) and written as the npy cache `tlearn extract` writes
for the same images: features.npy, index.csv and skipped.csv byte for byte.")]
pub struct ImportCodesArgs {
    /// Codes directory (Parquet files and _tlearn.json), written by tlearn, Spark or Ray.
    pub codes: PathBuf,
    /// Feature cache to write (new or empty).
    #[arg(long)]
    pub out: PathBuf,
}
