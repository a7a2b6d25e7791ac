//! The top of the training stack, as one object: [`Training`] takes the caches (a feature
//! cache or cut set, optionally a second backbone's) and the configuration, checks them, and
//! runs the selection over feature sets and the grid search; [`TrainOutcome`] is the saved head
//! and the typed `cv.json` ([`CvFile`]), written together by [`TrainOutcome::write`].
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use tlearn_heads::train::{CutConfig, Training};
//! let training = Training::open(&["caches/tuxpaint".into()], &|_| None, CutConfig::default())?;
//! for note in training.notes() {
//!     eprintln!("note: {note}");
//! }
//! let outcome = training.run(|_event| {})?;
//! outcome.write("run".as_ref())?;
//! # Ok(())
//! # }
//! ```

use crate::model_file::SavedHead;
use crate::train::config::{CutConfig, HeadChoice};
use crate::train::cut_selection::{self, Event};
use crate::train::cv_file::{CvFile, CV_FILE};
use crate::train::inputs::{load_inputs, CutInput, CutsError};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The head file's name in a training's output folder.
pub const HEAD_FILE: &str = "head.json";

/// A training run, checked and ready: its inputs, its configuration (with `--head auto`
/// resolved) and the notes for the person running it.
pub struct Training {
    inputs: Vec<CutInput>,
    config: CutConfig,
    notes: Vec<String>,
}

impl Training {
    /// The caches `paths` name (a feature cache or a cut set; a second path is another
    /// backbone's codes of the same images), loaded and named as reports name them.
    /// `bottleneck(backbone)` gives a backbone's bottleneck cut (the registry's default cut)
    /// when the caller knows it: the CS231n scenario needs it.
    pub fn open(
        paths: &[PathBuf],
        bottleneck: &dyn Fn(&str) -> Option<String>,
        config: CutConfig,
    ) -> Result<Training> {
        check(&config)?;
        Training::new(load_inputs(paths, bottleneck)?, config)
    }

    /// A training run on inputs already loaded. Refuses a configuration that cannot work;
    /// `--head auto` becomes the families that suit the training part's size (estimated from
    /// the first input's rows and the test size), with a note for each left out.
    pub fn new(inputs: Vec<CutInput>, mut config: CutConfig) -> Result<Training> {
        let Some(first) = inputs.first() else {
            return Err(CutsError::Empty.into());
        };
        check(&config)?;
        let test_size = config.train.test_size;
        let mut notes = Vec::new();
        if config.train.heads == HeadChoice::Auto {
            let n_train = training_images(first.cache.rows(), test_size);
            let (kinds, left_out) = HeadChoice::Auto.resolve(n_train);
            notes = left_out;
            config.train.heads = HeadChoice::Only(kinds);
        }
        Ok(Training {
            inputs,
            config,
            notes,
        })
    }

    /// The training part's size before the split is drawn (rows less the test fraction), which
    /// decides what `--head auto` tries.
    pub fn training_images(&self) -> usize {
        training_images(self.inputs[0].cache.rows(), self.config.train.test_size)
    }

    pub fn inputs(&self) -> &[CutInput] {
        &self.inputs
    }

    pub fn config(&self) -> &CutConfig {
        &self.config
    }

    /// Things the person running it should know before it starts (families `auto` leaves out).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The selection rule in words when several feature sets compete (`None`: one set, or a
    /// fixed `--cut`).
    pub fn selection_rule(&self) -> Option<String> {
        (self.inputs.len() > 1 && self.config.fixed.is_none()).then(|| self.config.rule())
    }

    /// Cross-validate, choose, and fit the chosen head on the whole training part; `progress`
    /// hears each stage and each candidate's CV.
    pub fn run(&self, progress: impl FnMut(Event)) -> Result<TrainOutcome> {
        cut_selection::select(&self.inputs, &self.config, progress)
    }
}

/// Rows less the test fraction: the training part's size, estimated before the split is drawn.
fn training_images(rows: usize, test_size: f64) -> usize {
    ((1.0 - test_size) * rows as f64) as usize
}

/// Refuse a configuration that cannot work, before any cache is read.
/// Refuse settings no candidate can use before anything is read or cross-validated, naming
/// the option: the test size, the C and gamma grids (positive numbers), the linear SVM's
/// tolerance (positive), a `--cut` concatenation naming a cut twice.
fn check(config: &CutConfig) -> Result<()> {
    let t = &config.train;
    if !(t.test_size > 0.0 && t.test_size < 1.0) {
        bail!("--test-size must be strictly between 0 and 1");
    }
    check_grid("--c-grid", &t.c_grid)?;
    check_grid("--screen-c-grid", &config.screen_c_grid)?;
    if let Some(g) = &t.grids.rbf_svm.gamma {
        check_grid("--gamma-grid", g)?;
    }
    let tol = t.grids.linear_svm.tol;
    if !(tol.is_finite() && tol > 0.0) {
        bail!("--linear-tol must be a positive number, got {tol}");
    }
    if let Some(max) = config.max_minutes {
        if !(max.is_finite() && max > 0.0) {
            bail!("--max-minutes must be a positive number, got {max}");
        }
    }
    if let Some(names) = &config.fixed {
        if let Some((i, n)) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            let first = names.iter().position(|m| m == n).unwrap_or(0);
            bail!(
                "--cut {}: '{n}' is named twice (part {} and part {}); a concatenation joins \
                 different cuts",
                names.join("+"),
                first + 1,
                i + 1
            );
        }
    }
    Ok(())
}

/// A grid of C or gamma values: not empty, every value a positive finite number; `option`
/// names it in the error.
pub fn check_grid(option: &str, grid: &[f64]) -> Result<()> {
    if let Some(bad) = grid.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        bail!("{option} must be a non-empty list of positive numbers, got {bad}");
    }
    if grid.is_empty() {
        bail!("{option} must be a non-empty list of positive numbers, got none");
    }
    Ok(())
}

/// A finished training: the head and its `cv.json`.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The chosen head (with its parts recorded for a concatenation).
    pub saved: SavedHead,
    /// The chosen set's full-grid CV report and the selection over feature sets.
    pub cv: CvFile,
}

/// The files [`TrainOutcome::write`] made.
#[derive(Debug, Clone)]
pub struct TrainFiles {
    pub head: PathBuf,
    pub cv: PathBuf,
}

impl TrainOutcome {
    /// Write `head.json` and `cv.json` into `dir` (created if missing), each atomically.
    pub fn write(&self, dir: &Path) -> Result<TrainFiles> {
        self.write_with(dir, |path| self.saved.save(path))
    }

    /// [`TrainOutcome::write`] with `head.json` written by `save_head` instead of the saved
    /// frozen head (a fine-tuned network CV kept over it; `cv.json` records both).
    pub fn write_with(
        &self,
        dir: &Path,
        save_head: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<TrainFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = TrainFiles {
            head: dir.join(HEAD_FILE),
            cv: dir.join(CV_FILE),
        };
        save_head(&files.head)?;
        self.cv.write(&files.cv)?;
        Ok(files)
    }
}
