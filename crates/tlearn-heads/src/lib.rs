//! Classical heads on cached CNN codes: seeded stratified splits grouped by content hash,
//! k-fold CV model selection over linear SVM / logistic regression / RBF SVM, Platt-calibrated
//! probabilities, held-out evaluation reports and a saved one-file model.
//!
//! Input is a feature cache (format v1, see `cache`); the crate never touches images or
//! backbones.

pub mod cache;
pub mod calibrate;
pub mod head;
pub mod kernel_svm;
pub mod linear_svm;
pub mod logistic;
pub mod metrics;
pub mod model_file;
pub mod pipeline;
pub mod report;
pub mod report_html;
pub mod report_plots;
pub mod select;
pub mod split;
pub mod transform;

pub use cache::FeatureCache;
pub use head::{HeadKind, HeadParams};
pub use model_file::SavedHead;
pub use pipeline::{evaluate, train, EvalReport, TrainConfig, TrainOutcome};
pub use transform::Scaling;

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Write a file atomically: `<path>.tmp`, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
