//! `cv.json`, the record of a training run beside its `head.json`, as types: written by
//! [`CvFile::write`], read back by [`CvFile::read`] (the reports of `eval` read it this way;
//! nothing picks the JSON apart by hand). One definition of the format:
//!
//! - the chosen feature set's full-grid CV ([`CvReport`], its fields at the top level): every
//!   candidate ([`CvResult`]: transform, head with its hyper-parameters, accuracy per fold,
//!   time, convergence, skipped or failed), the chosen one, grid edges and extensions, the
//!   split and folds ([`SplitExport`], for other tools to use the very same rows), the
//!   calibration and the prediction rule;
//! - `cuts` ([`CutSelection`]): the selection over feature sets, each set's screen and full-grid
//!   score, the chosen set and the CS231n scenario it points to;
//! - `finetune` ([`FinetuneContest`]): where fine-tuning the layers after a cut competed with the
//!   frozen head on the same folds, its score, the paired difference and which one was kept.
//!
//! A CV accuracy that could not be measured (a failed or skipped candidate) is `null` in the
//! file and NaN in memory.

use crate::calibrate::Temperature;
use crate::fit_info::Convergence;
use crate::head::HeadSpec;
use crate::train::grid::Candidate;
use crate::transform::TransformSpec;
use crate::view_rows::{TrainViews, ViewRows};
use anyhow::{Context, Result};
use ndarray::Array2;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// The file name beside `head.json`.
pub const CV_FILE: &str = "cv.json";

/// A number written as `null` when it is NaN (serde_json's rule) reads back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// An optional part of `cv.json` (absent or `null`: `None`), its errors with their field path.
fn optional<T: serde::de::DeserializeOwned>(
    v: Option<serde_json::Value>,
) -> Result<Option<T>, serde_path_to_error::Error<serde_json::Error>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some),
    }
}

/// One row of the CV curve: one candidate cross-validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvResult {
    /// The feature transform this candidate was cross-validated with.
    pub transform: TransformSpec,
    #[serde(flatten)]
    pub params: HeadSpec,
    /// Trained on one row per kept augmentation view of each training-fold image (validation
    /// images scored on their averaged rows); absent: one averaged row per image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub view_rows: bool,
    /// How the solver stopped, over all folds (largest iteration count; converged only if
    /// every fold did). `None` if a fit failed.
    #[serde(default)]
    pub convergence: Option<Convergence>,
    /// Accuracy on each validation fold (empty if the fit failed).
    pub fold_accuracy: Vec<f64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_accuracy: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_accuracy: f64,
    /// Wall time of all k fits and predictions for this candidate.
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Not fitted: the C path stopped early (see `cross_validation::cross_validate`'s
    /// `patience`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Out-of-fold decision values for every training row `[n_train, classes]`; used to fit the
    /// calibration of the chosen SVM without another round of fits. Not written.
    #[serde(skip)]
    pub oof_scores: Option<Array2<f64>>,
}

impl CvResult {
    /// Fitted on every fold without error: a candidate `choose` can pick.
    pub fn scored(&self) -> bool {
        self.error.is_none() && !self.skipped
    }

    /// A candidate the early-stopping rule did not fit.
    pub(crate) fn skipped(cand: &Candidate, view_rows: bool) -> CvResult {
        CvResult {
            transform: cand.transform,
            params: cand.params.clone(),
            view_rows,
            convergence: None,
            fold_accuracy: vec![],
            mean_accuracy: f64::NAN,
            std_accuracy: f64::NAN,
            seconds: 0.0,
            error: None,
            skipped: true,
            oof_scores: None,
        }
    }
}

/// The split and fold assignment, exported so other tools (the scikit-learn bench) can use the
/// very same rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitExport {
    /// Cache row indices of the training part, ascending.
    pub train_rows: Vec<usize>,
    /// Cache row indices of the held-out part, ascending.
    pub test_rows: Vec<usize>,
    /// Fold number of each entry of `train_rows`.
    pub fold_of_train_row: Vec<usize>,
}

/// One feature set's full-grid cross-validation, the chosen candidate and its final fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvReport {
    pub classes: Vec<String>,
    /// The transforms cross-validated.
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
    /// The chosen candidate's transform.
    pub chosen_transform: TransformSpec,
    /// The fitted transform in words (e.g. "signed sqrt → standard").
    #[serde(default)]
    pub chosen_transform_steps: String,
    pub pca: Option<usize>,
    /// `--train-views` as asked.
    #[serde(default)]
    pub train_views: TrainViews,
    /// The chosen head's training rows came from every kept view of each training image
    /// (`None`: one averaged row per image).
    #[serde(default)]
    pub view_rows: Option<ViewRows>,
    /// With `--train-views auto` on a cache with views: the best CV accuracy with averaged
    /// rows and with view rows, on the same folds, and which was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_rows_cv: Option<ViewRowsCv>,
    pub folds: usize,
    pub seed: u64,
    pub test_size: f64,
    pub candidates: Vec<CvResult>,
    pub chosen: usize,
    pub chosen_params: HeadSpec,
    /// The chosen C or gamma sits at an edge of the grid searched (after any extension), e.g.
    /// "C at top of grid (1000)": the optimum may lie beyond it.
    #[serde(default)]
    pub grid_edge: Vec<String>,
    /// The grid points added because CV first picked an edge (empty when none was).
    #[serde(default)]
    pub grid_extended: Vec<String>,
    /// The early-stopping patience along C (0: every grid point fitted).
    #[serde(default)]
    pub c_patience: usize,
    /// How the final fit's solver stopped.
    pub final_fit: Convergence,
    /// How the chosen head predicts (the rule CV scored) and turns scores into probabilities.
    pub prediction_rule: String,
    /// The SVM probability calibration fitted on the out-of-fold scores.
    pub calibration: Option<Temperature>,
    pub cv_seconds: f64,
    pub final_fit_seconds: f64,
    pub split: SplitExport,
}

impl CvReport {
    /// The chosen candidate.
    pub fn chosen(&self) -> &CvResult {
        &self.candidates[self.chosen]
    }
}

/// `--train-views auto`: both kinds of training rows cross-validated on the same folds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewRowsCv {
    /// Best mean CV accuracy training on one averaged row per image.
    pub averaged_rows: f64,
    /// Best mean CV accuracy training on one row per view.
    pub view_rows: f64,
    /// "view rows" or "averaged rows" (ties go to the averaged rows: fewer rows, faster).
    pub kept: String,
}

/// A CV score of a feature set: the best candidate of one grid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    /// The best head and hyper-parameters of that grid.
    pub head: String,
    /// That best candidate's accuracy on each validation fold (the folds are the same for
    /// every feature set, so two sets' scores pair fold by fold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold_accuracy: Vec<f64>,
    /// Wall time of the grid's CV.
    pub seconds: f64,
}

impl Score {
    /// The best candidate of a grid's CV.
    pub fn of(cv: &CvReport) -> Score {
        let r = cv.chosen();
        Score {
            mean_accuracy: r.mean_accuracy,
            std_accuracy: r.std_accuracy,
            head: if r.view_rows {
                format!("{} + view rows", r.params)
            } else {
                r.params.to_string()
            },
            fold_accuracy: r.fold_accuracy.clone(),
            seconds: cv.cv_seconds,
        }
    }
}

/// One candidate feature set (a cut, or a concatenation of two) and how CV judged it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSet {
    /// `stage6`, or `stage6+features` for a concatenation.
    pub name: String,
    pub parts: Vec<String>,
    pub dim: usize,
    /// The screen's score (`None`: not screened, see `same_codes_as`, or the only candidate).
    pub screen: Option<Score>,
    /// The full grid's score (finalists only).
    pub full: Option<Score>,
    /// Not screened: its codes equal this earlier cut's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_codes_as: Option<String>,
    /// The inputs it is made of (indices into the training's inputs). Not written.
    #[serde(skip)]
    pub(crate) members: Vec<usize>,
}

/// The CS231n scenario the data and the chosen cut point to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// "small" (under `scenario::LARGE_PER_CLASS` training images per class on average) or
    /// "large".
    pub size: String,
    /// "similar" (the chosen set holds a backbone's bottleneck cut and beats the best set
    /// without it beyond noise), "different" (only earlier cuts, beating the best set with the
    /// bottleneck beyond noise), "within noise" (the two are not separated by the paired folds),
    /// or "not inferred" (one cut only, or no bottleneck known).
    pub similarity: String,
    pub training_images: usize,
    pub classes: usize,
    /// The paired comparison behind `similarity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The scenario in plain words.
    pub text: String,
}

/// The chosen set against the best set on the other side of the bottleneck question (with
/// the bottleneck if the chosen one has none, without it otherwise), fold by fold on the
/// screen's grid, which every candidate set ran on the same folds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// The best screened set on the other side.
    pub rival: String,
    /// Mean over folds of (chosen - rival) validation accuracy.
    pub difference: f64,
    /// Standard error of that mean (sample standard deviation of the differences / sqrt(folds)).
    pub standard_error: f64,
}

/// What `cv.json` says about the selection over cuts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CutSelection {
    pub rule: String,
    pub sets: Vec<FeatureSet>,
    /// Name of the chosen set.
    pub chosen: String,
    pub scenario: Scenario,
    /// Wall time of the whole selection (screen + full grids + final fit).
    pub seconds: f64,
}

/// `cv.json`: the chosen set's CV report with the selection over cuts beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvFile {
    #[serde(flatten)]
    pub report: CvReport,
    /// Absent in files written before the selection over cuts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<CutSelection>,
    /// Absent where fine-tuning did not compete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<FinetuneContest>,
}

/// Fine-tuning the layers after a cut, cross-validated on the folds of the frozen head's CV
/// (the same training images in the same folds) and paired with the frozen head fold by fold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneContest {
    /// The spatial cache the fine-tuning read (informational).
    pub cache: String,
    /// The backbone and the cut whose following layers were fine-tuned.
    pub backbone: String,
    pub cut: String,
    /// Validation accuracy per fold, at each fold's kept epoch.
    pub fold_accuracy: Vec<f64>,
    pub mean_accuracy: f64,
    /// Fine-tuned minus frozen, mean and standard error over the paired folds.
    pub difference: f64,
    pub standard_error: f64,
    /// The rule that decided, in words.
    pub rule: String,
    /// Whether the fine-tuned network is the saved head.
    pub chosen: bool,
    /// Wall time of the folds' fits (the final fit not included).
    pub seconds: f64,
}

impl CvFile {
    /// Where `train` wrote the `cv.json` of the head at `head_path`: beside it.
    pub fn beside(head_path: &Path) -> PathBuf {
        head_path.parent().unwrap_or(Path::new(".")).join(CV_FILE)
    }

    /// Read and type-check a `cv.json`; errors name the file and the field.
    pub fn read(path: &Path) -> Result<CvFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        // The two parts are read apart so that an error names its field (a flattened struct
        // is buffered whole, which hides the path).
        let cuts = v.as_object_mut().and_then(|o| o.remove("cuts"));
        let finetune = v.as_object_mut().and_then(|o| o.remove("finetune"));
        let bad = |part: &str, e: serde_path_to_error::Error<serde_json::Error>| {
            anyhow::anyhow!(
                "{}: not a tlearn cv.json: field `{part}{}`: {}",
                path.display(),
                e.path(),
                e.inner()
            )
        };
        let report = serde_path_to_error::deserialize(v).map_err(|e| bad("", e))?;
        Ok(CvFile {
            report,
            cuts: optional(cuts).map_err(|e| bad("cuts.", e))?,
            finetune: optional(finetune).map_err(|e| bad("finetune.", e))?,
        })
    }

    /// Write atomically (pretty-printed JSON).
    pub fn write(&self, path: &Path) -> Result<()> {
        tlearn_cache::write_atomic_bytes(path, serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(())
    }
}
