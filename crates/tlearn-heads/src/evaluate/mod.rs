//! Held-out evaluation of a saved head: [`evaluate`] scores it on the rows it records as held
//! out (or every row of another cache), with the same prediction rule CV scored; the
//! [`Evaluation`] object does what `tlearn eval` needs first (load the head, find its part(s)
//! among the caches named, join them) and keeps what the reports read.

mod assemble;

pub use assemble::assemble_for_head;

use crate::cache::FeatureCache;
use crate::calibrate::Temperature;
use crate::head::{prediction_rule, HeadSpec};
use crate::metrics::{self, Metrics};
use crate::model_file::{CvSummary, SavedHead};
use crate::transform::Scaling;
use anyhow::{bail, Result};
use ndarray::Axis;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Misclassified {
    pub path: String,
    pub truth: String,
    pub predicted: String,
    /// Probability given to the predicted class.
    pub p_predicted: f32,
    /// Probability given to the true class.
    pub p_truth: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The cache folder scored on; a concatenation's part folders joined by " + ".
    pub cache: String,
    /// "held-out" (the rows recorded in the head) or "all".
    pub rows: String,
    pub params: HeadSpec,
    /// How the final fit's solver stopped (absent for version-1 heads).
    pub fit: Option<crate::fit_info::Convergence>,
    pub scaling: Scaling,
    /// The fitted transform in words (e.g. "signed sqrt → standard").
    pub transform: String,
    pub pca_components: Option<usize>,
    pub cv: CvSummary,
    /// The rule that turned scores into the predicted class (the one CV scored).
    pub prediction_rule: String,
    pub calibration: Option<Temperature>,
    pub metrics: Metrics,
    pub misclassified: Vec<Misclassified>,
}

/// Evaluate a saved head on the held-out rows it records (or on every row with `all`).
pub fn evaluate(head: &SavedHead, cache: &FeatureCache, all: bool) -> Result<EvalReport> {
    head.check_extractor(
        &cache.meta.extractor,
        &format!("feature cache {}", cache.dir.display()),
    )?;
    if cache.meta.dim != head.dim {
        bail!(
            "feature cache {} has dim {} but the head expects {}",
            cache.dir.display(),
            cache.meta.dim,
            head.dim
        );
    }
    // Map the cache's classes to the head's by name.
    let mut class_map = Vec::with_capacity(cache.classes().len());
    for c in cache.classes() {
        match head.classes().iter().position(|h| h == c) {
            Some(k) => class_map.push(k),
            None => bail!(
                "feature cache {} has class {:?}, which the head was not trained on (its classes: {:?})",
                cache.dir.display(),
                c,
                head.classes()
            ),
        }
    }
    let rows: Vec<usize> = if all {
        (0..cache.rows()).collect()
    } else {
        let by_path: HashMap<&str, usize> = cache
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        let mut rows = Vec::with_capacity(head.split.held_out.len());
        let mut missing = Vec::new();
        for p in &head.split.held_out {
            match by_path.get(p.as_str()) {
                Some(&i) => rows.push(i),
                None => missing.push(p.as_str()),
            }
        }
        if !missing.is_empty() {
            bail!(
                "{} held-out image(s) recorded in the head are not in feature cache {} (e.g. {:?}); \
                 evaluate on the cache the head was trained on ({}), or use --all for a separate test cache",
                missing.len(),
                cache.dir.display(),
                &missing[..missing.len().min(3)],
                head.split.cache
            );
        }
        rows
    };
    if rows.is_empty() {
        bail!(
            "nothing to evaluate: 0 rows selected from {}",
            cache.dir.display()
        );
    }
    let x = cache.x.select(Axis(0), &rows);
    let y: Vec<usize> = rows.iter().map(|&i| class_map[cache.y[i]]).collect();
    let proba = head.predict_proba(x.view())?;
    let m = metrics::compute(head.classes(), &y, proba.view());
    let mut misclassified = Vec::new();
    for (j, &i) in rows.iter().enumerate() {
        let p = proba.row(j);
        let pred = metrics::argmax_f32(p.iter().copied());
        if pred != y[j] {
            misclassified.push(Misclassified {
                path: cache.paths[i].clone(),
                truth: head.classes()[y[j]].clone(),
                predicted: head.classes()[pred].clone(),
                p_predicted: p[pred],
                p_truth: p[y[j]],
            });
        }
    }
    misclassified.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(EvalReport {
        cache: cache.dir.display().to_string(),
        rows: if all { "all" } else { "held-out" }.into(),
        params: head.params.clone(),
        fit: head.fit,
        scaling: head.transform.scaling,
        transform: head.transform.describe(),
        pca_components: head.transform.pca.as_ref().map(|p| p.components.nrows()),
        cv: head.cv.clone(),
        prediction_rule: prediction_rule(head.params.kind()).into(),
        calibration: head.calibration.clone(),
        metrics: m,
        misclassified,
    })
}

/// A head evaluated on caches: what `tlearn eval` prints and its reports draw.
pub struct Evaluation {
    /// Where the head was loaded from (its `cv.json` lies beside it).
    pub head_path: PathBuf,
    pub head: SavedHead,
    /// The cache the head was scored on (its parts joined, for a concatenation).
    pub cache: FeatureCache,
    pub report: EvalReport,
}

impl Evaluation {
    /// Load the head at `head_path`, find its part(s) among the caches `cache_paths` name
    /// (feature caches or cut sets; a second backbone's as a second path) and evaluate it on
    /// its held-out rows, or on every row with `all`.
    pub fn run(head_path: &Path, cache_paths: &[PathBuf], all: bool) -> Result<Evaluation> {
        let head = SavedHead::load(head_path)?;
        let mut named = Vec::new();
        for p in cache_paths {
            named.extend(tlearn_cache::resolve(p)?);
        }
        let cache = assemble_for_head(&head, &named)?;
        let mut report = evaluate(&head, &cache, all)?;
        // A concatenation's joined cache has no folder of its own: name every part's.
        if head.parts().len() > 1 {
            report.cache = head
                .parts()
                .iter()
                .filter_map(|p| assemble::find_part(p, &named))
                .map(|n| n.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ");
        }
        Ok(Evaluation {
            head_path: head_path.to_path_buf(),
            head,
            cache,
            report,
        })
    }
}
