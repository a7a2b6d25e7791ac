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
    chart(outcome, dir, files)
}

/// [`write`], with `head.json` written by `save_head` instead of the outcome's frozen head (a
/// fine-tuned network CV kept over it; `cv.json` records both).
pub fn write_replacing_head(
    outcome: &TrainOutcome,
    dir: &Path,
    save_head: impl FnOnce(&Path) -> Result<()>,
) -> Result<TrainOutputs> {
    let files = outcome.write_with(dir, save_head)?;
    chart(outcome, dir, files)
}

fn chart(outcome: &TrainOutcome, dir: &Path, files: TrainFiles) -> Result<TrainOutputs> {
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
