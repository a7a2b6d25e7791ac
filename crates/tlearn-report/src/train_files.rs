//! What `tlearn train` writes into its output folder: `head.json` and `cv.json` (the training
//! outcome's own files) and `cv-cuts.png`, the bar chart of CV accuracy by feature set.

use crate::cuts;
use anyhow::Result;
use std::path::{Path, PathBuf};
use tlearn_heads::train::{TrainFiles, TrainOutcome};

/// The files [`write`] made: the outcome's, and the chart when there was a comparison to draw.
#[derive(Debug, Clone)]
pub struct TrainOutputs {
    pub files: TrainFiles,
    pub cuts_png: Option<PathBuf>,
}

/// Write `head.json`, `cv.json` and (when several feature sets were compared) `cv-cuts.png`
/// into `dir`.
pub fn write(outcome: &TrainOutcome, dir: &Path) -> Result<TrainOutputs> {
    let files = outcome.write(dir)?;
    let png = dir.join("cv-cuts.png");
    let drawn = match &outcome.cv.cuts {
        Some(c) => cuts::png(c, &png)?,
        None => false,
    };
    Ok(TrainOutputs {
        files,
        cuts_png: drawn.then_some(png),
    })
}
