//! The saved model: one JSON file (`head.json`).
//!
//! Format `tlearn-head`, version 1. Top-level fields:
//! - `format`: `"tlearn-head"`, `version`: `1`, `tlearn_version`, `created` (unix seconds)
//! - `classes`: class names, in the order of the probability columns
//! - `extractor`: the feature cache's extractor fingerprint (backbone name + sha256, cut layer,
//!   pooling, preprocessing, augmentation; `tlearn_cache::Fingerprint`), as in the cache's
//!   `meta.json`, compared by value
//! - `dim`: expected feature dimension
//! - `transform`: `{scaling: "standard"|"l2"|"none", input_dim, mean?, inv_std?, pca?}`; arrays
//!   are ndarray's serde form `{"v":1,"dim":[..],"data":[..]}`
//! - `params`: `{kind: "logistic"|"linear-svm"|"rbf-svm", c, gamma?}`
//! - `head`: `{kind, weights [classes, d], bias [classes]}` for the linear heads, or
//!   `{kind: "rbf-svm", gamma, support_vectors [n_sv, d], coef [classes, n_sv], rho [classes]}`
//!   with score_c(x) = Σ_s coef[c,s]·exp(−gamma·|x − sv_s|²) − rho[c]
//! - `platt`: for SVMs, one `{a, b}` per class: P(class | score) = 1 / (1 + exp(a·score + b)),
//!   renormalised across classes; fitted on out-of-fold CV decision values
//! - `cv`: the chosen candidate's CV accuracy (mean, std, per fold)
//! - `split`: `{cache, seed, test_size, folds, train_rows, held_out: [paths]}`

use crate::calibrate::Platt;
use crate::head::{probabilities, Head, HeadParams};
use crate::transform::Transform;
use anyhow::{bail, Context, Result};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tlearn_cache::Fingerprint;

pub const FORMAT: &str = "tlearn-head";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvSummary {
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    pub fold_accuracy: Vec<f64>,
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
    pub params: HeadParams,
    pub head: Head,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platt: Option<Vec<Platt>>,
    pub cv: CvSummary,
    pub split: SplitRecord,
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
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            other => bail!(
                "{} is not a tlearn head (format {:?}, expected {FORMAT:?})",
                path.display(),
                other
            ),
        }
        let version = v.get("version").and_then(|f| f.as_u64());
        if version != Some(VERSION as u64) {
            bail!(
                "{}: head format version {:?} is not supported (this tlearn reads version {VERSION})",
                path.display(),
                version
            );
        }
        let h: SavedHead = serde_json::from_value(v)
            .with_context(|| format!("{}: malformed tlearn head", path.display()))?;
        h.validate()
            .with_context(|| format!("{}: inconsistent tlearn head", path.display()))?;
        Ok(h)
    }

    /// Write atomically (`.tmp`, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self)?;
        tlearn_cache::write_atomic_bytes(path, text.as_bytes())?;
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let c = self.classes.len();
        if c < 2 {
            bail!("{} classes recorded; need at least 2", c);
        }
        if self.head.n_classes() != c {
            bail!(
                "head has {} outputs but {} classes are listed",
                self.head.n_classes(),
                c
            );
        }
        if self.transform.input_dim != self.dim {
            bail!(
                "transform expects {} dims but dim is {}",
                self.transform.input_dim,
                self.dim
            );
        }
        if let Some(d) = self.head.input_dim() {
            if d != self.transform.output_dim() {
                bail!(
                    "head expects {d} inputs but the transform outputs {}",
                    self.transform.output_dim()
                );
            }
        }
        if let Some(p) = &self.platt {
            if p.len() != c {
                bail!("{} Platt calibrations for {} classes", p.len(), c);
            }
        }
        Ok(())
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
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
        Ok(probabilities(&self.head, self.platt.as_deref(), &s).mapv(|v| v as f32))
    }
}
