//! `tlearn eval`'s flags, as typed.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// Saved head (head.json written by `tlearn train`).
    #[arg(long)]
    pub head: PathBuf,
    /// Feature cache or cut set: the one the head was trained on (its held-out rows are used),
    /// or a separate test cache with --all. The head's cut(s) are found in a set by their
    /// fingerprints; a head on two backbones' codes needs the second backbone's cache or set
    /// as a second PATH.
    #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
    pub caches: Vec<PathBuf>,
    /// Evaluate on every row of the cache instead of the held-out rows recorded in the head.
    #[arg(long)]
    pub all: bool,
    /// Output directory for report.json, confusion.png and report.html (one self-contained page;
    /// also cv-curve.png and codes-map.png). A fine-tuned head: report.json and confusion.png.
    #[arg(long)]
    pub out: PathBuf,
}
