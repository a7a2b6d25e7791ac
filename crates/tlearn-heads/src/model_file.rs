//! The saved model: one JSON file (`head.json`).
//!
//! Format `tlearn-head`, version 2 (version-1 files still load). Top-level fields:
//! - `format`: `"tlearn-head"`, `version`: `2`, `tlearn_version`, `created` (unix seconds)
//! - `classes`: class names, in the order of the probability columns
//! - `extractor`: the feature cache's extractor fingerprint (backbone name + sha256, cut layer,
//!   pooling, preprocessing, augmentation; `tlearn_cache::Fingerprint`), as in the cache's
//!   `meta.json`, compared by value
//! - `dim`: expected feature dimension
//! - `transform`: `{scaling: "standard"|"l2"|"none", input_dim, blocks?, power?, mean?,
//!   inv_std?, l2_after?, pca?: {mean, components, explained_variance_ratio, whitened?}}`,
//!   applied as per-block normalisation (`blocks: {rule: "sqrt-l2"|"l2", dims}`, only on a
//!   concatenation: one block per part, each signed-square-rooted (`sqrt-l2`) and divided by its
//!   own L2 norm) → signed power `sign(x)·|x|^power` → L2 (scaling "l2") → standardise → L2 (`l2_after`) → PCA
//!   (whitened components are stored divided by their standard deviation); `power`, `l2_after`
//!   and `whitened` are absent (off) in older heads; arrays are ndarray's serde form
//!   `{"v":1,"dim":[..],"data":[..]}`
//! - `params`: `{kind: "logistic"|"linear-svm"|"rbf-svm", c, tol? (linear), gamma (rbf)}`
//! - `fit` (version 2): `{iterations, converged}` of the final fit's solver
//! - `head`: `{kind, weights [classes, d], bias [classes]}` for the linear heads, or
//!   `{kind: "rbf-svm", gamma, support_vectors [n_sv, d], coef [classes, n_sv], rho [classes]}`
//!   with score_c(x) = Σ_s coef[c,s]·exp(−gamma·|x − sv_s|²) − rho[c]
//! - `calibration` (version 2, SVMs): `{slope, log_loss?, degenerate?}`: probabilities are
//!   softmax(slope · scores), the slope fitted on out-of-fold CV decision values, so the most
//!   probable class is the one with the largest decision value (the rule CV scored; see
//!   `calibrate`). `degenerate` says why a fit is not a regular one.
//! - `platt` (version 1 only): one `{a, b}` per class; converted on load to one shared slope
//!
//! Loading checks every array's shape against the others (`head.bias` against
//! `head.weights`, `transform.inv_std` against `dim`, `head.coef` against
//! `head.support_vectors`, ...) and refuses a mismatch naming the field.
//! - `parts` (only for a head on a concatenation of cuts, or of two backbones' codes; see
//!   `train::cut_selection`): the cuts its input columns come from, in order: `{name, cache, extractor, dim,
//!   offset}` each; `extractor` is then the first part's, and `dim` their sum. Absent = one
//!   part, `extractor` itself.
//! - `cv`: the chosen candidate's CV accuracy (mean, std, per fold) and `grid_edge?`, notes when
//!   the chosen C or gamma sat at an edge of the grid searched
//! - `split`: `{cache, seed, test_size, folds, train_rows, held_out: [paths]}`
//! - `view_rows` (only for a head trained with `--train-views on|auto` on view rows):
//!   `{views: [names], training_rows}`: each training image gave one row per kept augmentation
//!   view; held-out and new images are still scored on their averaged views

use crate::calibrate::{Platt, Temperature};
use crate::error::HeadError;
use crate::fit_info::Convergence;
use crate::head::{probabilities, Head, HeadSpec};
use crate::transform::Transform;
use anyhow::{bail, Context, Result};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tlearn_cache::Fingerprint;

pub const FORMAT: &str = "tlearn-head";
pub const VERSION: u32 = 2;
/// Versions this build reads.
pub const READS_VERSIONS: [u32; 2] = [1, 2];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvSummary {
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    pub fold_accuracy: Vec<f64>,
    /// The chosen C or gamma was at an edge of the grid searched ("C at top of grid (1000)").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grid_edge: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitRecord {
    /// The cache directory the head was trained on (informational).
    pub cache: String,
    pub seed: u64,
    pub test_size: f64,
    pub folds: usize,
    pub train_rows: usize,
    /// Paths (relative to the data set root) of the held-out images.
    pub held_out: Vec<String>,
}

/// One block of the head's input columns: `[offset, offset + dim)` holds the codes of the cut
/// with fingerprint `extractor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeaturePart {
    /// The cut's name in the selection (`stage6`, `mobilenetv2/features`).
    pub name: String,
    /// The cache directory it was trained from (informational).
    pub cache: String,
    pub extractor: Fingerprint,
    pub dim: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedHead {
    pub format: String,
    pub version: u32,
    pub tlearn_version: String,
    pub created: u64,
    pub classes: Vec<String>,
    pub extractor: Fingerprint,
    pub dim: usize,
    pub transform: Transform,
    pub params: HeadSpec,
    pub head: Head,
    /// How the final fit's solver stopped (version 2; absent in version-1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Convergence>,
    /// SVM probability calibration (see `calibrate`); `None` for logistic regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Temperature>,
    /// Version 1's per-class Platt sigmoids, read only (converted to `calibration` on load).
    #[serde(default, skip_serializing)]
    pub platt: Option<Vec<Platt>>,
    pub cv: CvSummary,
    pub split: SplitRecord,
    /// The cut(s) the input columns come from (see the module doc); empty = `extractor` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<FeaturePart>,
    /// Trained on one row per kept augmentation view of each training image (absent: one
    /// averaged row per image). Prediction is the same either way: one averaged row per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_rows: Option<crate::view_rows::ViewRows>,
}

impl SavedHead {
    /// Read and check a saved head.
    pub fn load(path: &Path) -> Result<SavedHead> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading saved head {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON (truncated or corrupted model file?)",
                path.display()
            )
        })?;
        // serde_json keeps the last of two equal keys without a word.
        tlearn_cache::json::check_unique_keys(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: malformed tlearn head: {e}", path.display()))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            other => bail!(
                "{} is not a tlearn head (format {:?}, expected {FORMAT:?})",
                path.display(),
                other
            ),
        }
        let version = v.get("version").and_then(|f| f.as_u64());
        if !version.is_some_and(|v| READS_VERSIONS.iter().any(|&r| r as u64 == v)) {
            bail!(
                "{}: head format version {:?} is not supported (this tlearn reads versions {:?})",
                path.display(),
                version,
                READS_VERSIONS
            );
        }
        // serde_path_to_error names the field a type error sits in (`head.coef: data and
        // dimension must match in size`), which serde_json alone does not for a Value.
        let mut h: SavedHead = serde_path_to_error::deserialize(v).map_err(|e| {
            anyhow::anyhow!(
                "{}: malformed tlearn head: field `{}`: {}",
                path.display(),
                e.path(),
                e.inner()
            )
        })?;
        h.head
            .read_files(path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("{}: reading the head's weights", path.display()))?;
        h.validate()
            .with_context(|| format!("{}: inconsistent tlearn head", path.display()))?;
        if let (Some(p), None) = (&h.platt, &h.calibration) {
            h.calibration = Some(Temperature::from_platt(p));
        }
        h.platt = None;
        h.version = VERSION;
        Ok(h)
    }

    /// Write atomically (`.tmp`, fsync, rename), after the files the head keeps beside it.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.head
            .write_files(path.parent().unwrap_or(Path::new(".")))?;
        let text = serde_json::to_string(self)?;
        tlearn_cache::write_atomic_bytes(path, text.as_bytes())?;
        Ok(())
    }

    /// Every array agrees in shape with the others and every number is finite; errors name
    /// the field. A head that passes cannot make `decision`/`predict_proba` panic.
    pub fn validate(&self) -> std::result::Result<(), HeadError> {
        let c = self.classes.len();
        if c < 2 {
            return Err(HeadError::malformed(
                "classes",
                format!("{c} classes recorded; need at least 2"),
            ));
        }
        if let Some((i, name)) = self
            .classes
            .iter()
            .enumerate()
            .find(|(i, n)| self.classes[..*i].contains(n))
        {
            return Err(HeadError::malformed(
                "classes",
                format!("class {name:?} is listed twice (entry {})", i + 1),
            ));
        }
        if self.transform.input_dim != self.dim {
            return Err(HeadError::malformed(
                "transform.input_dim",
                format!("{} but `dim` is {}", self.transform.input_dim, self.dim),
            ));
        }
        self.transform.validate()?;
        if !self.parts.is_empty() {
            let mut offset = 0;
            for (i, p) in self.parts.iter().enumerate() {
                if p.offset != offset || p.dim == 0 {
                    return Err(HeadError::malformed(
                        format!("parts[{i}]"),
                        format!(
                            "offset {} and dim {} (expected offset {offset}, dim >= 1)",
                            p.offset, p.dim
                        ),
                    ));
                }
                offset += p.dim;
            }
            if offset != self.dim {
                return Err(HeadError::malformed(
                    "parts",
                    format!("dims add up to {offset} but `dim` is {}", self.dim),
                ));
            }
            if self.parts[0]
                .extractor
                .compare(&self.extractor, "", "")
                .is_some()
            {
                return Err(HeadError::malformed(
                    "parts[0].extractor",
                    "differs from `extractor` (the first part's fingerprint)",
                ));
            }
        }
        if let Some(b) = &self.transform.blocks {
            let part_dims: Vec<usize> = self.parts.iter().map(|p| p.dim).collect();
            if self.parts.len() < 2 || b.dims != part_dims {
                return Err(HeadError::malformed(
                    "transform.blocks.dims",
                    format!(
                        "{:?}: per-block normalisation needs one block per part (parts' dims \
                         {part_dims:?})",
                        b.dims
                    ),
                ));
            }
        }
        self.head.validate(c, self.transform.output_dim())?;
        if let Some(p) = &self.platt {
            if p.len() != c {
                return Err(HeadError::malformed(
                    "platt",
                    format!("{} calibrations for {c} classes", p.len()),
                ));
            }
            let ab: Vec<f64> = p.iter().flat_map(|p| [p.a, p.b]).collect();
            crate::error::check_finite("platt", ab.iter())?;
        }
        if let Some(t) = &self.calibration {
            if !(t.slope.is_finite() && t.slope >= 0.0) {
                return Err(HeadError::malformed(
                    "calibration.slope",
                    format!("{} (must be a finite number >= 0)", t.slope),
                ));
            }
        }
        Ok(())
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The cut(s) the head's input columns come from, in column order (one part made from
    /// `extractor` for heads that record none).
    pub fn parts(&self) -> Vec<FeaturePart> {
        if !self.parts.is_empty() {
            return self.parts.clone();
        }
        vec![FeaturePart {
            name: self.extractor.layer.clone(),
            cache: self.split.cache.clone(),
            extractor: self.extractor.clone(),
            dim: self.dim,
            offset: 0,
        }]
    }

    /// True when the head reads more than one cut (a concatenation).
    pub fn is_concatenation(&self) -> bool {
        self.parts.len() > 1
    }

    /// The feature-cache fingerprint this head was trained on.
    pub fn extractor(&self) -> &Fingerprint {
        &self.extractor
    }

    /// Refuse vectors from another extractor, naming the fields that differ.
    pub fn check_extractor(&self, other: &Fingerprint, what: &str) -> Result<()> {
        match self.extractor.compare(other, "head", "cache") {
            None => Ok(()),
            Some(diff) => bail!(
                "{what} was made by a different feature extractor than this head expects: {diff}"
            ),
        }
    }

    /// Decision values `[n, classes]` for raw (untransformed) feature vectors.
    pub fn decision(&self, x: ArrayView2<f32>) -> Result<Array2<f64>> {
        if x.ncols() != self.dim {
            bail!(
                "feature vectors have {} dimensions; this head expects {}",
                x.ncols(),
                self.dim
            );
        }
        let z = self.transform.apply(x)?;
        Ok(self.head.decision(z.view()))
    }

    /// Class probabilities `[n, classes]` (rows sum to 1) for raw feature vectors.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        if let Some((i, _)) = x
            .outer_iter()
            .enumerate()
            .find(|(_, r)| r.iter().any(|v| !v.is_finite()))
        {
            bail!("feature vector {i} contains NaN or infinite values");
        }
        let s = self.decision(x)?;
        Ok(probabilities(&self.head, self.calibration.as_ref(), &s).mapv(|v| v as f32))
    }
}
