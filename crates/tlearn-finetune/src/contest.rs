//! Fine-tuning as a candidate of `train --head auto`: the layers after a cut and a new
//! classifier, fitted on each fold of the frozen heads' cross-validation (the same training
//! images in the same folds, read from the spatial cache of those images) and scored on the
//! fold's validation images, then paired fold by fold with the frozen head CV chose.
//!
//! The fine-tuned network is kept only when it beats the frozen head by more than one standard
//! error of the paired per-fold difference: it costs a few minutes of training where the frozen
//! heads cost seconds, and more to run, so a tie goes to the simpler head (as CS231n advises for
//! data that do not call for fine-tuning).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Result};
use tlearn_cache::FeatureCache;
use tlearn_heads::metrics;
use tlearn_heads::model_file::CvSummary;
use tlearn_heads::train::cross_validation::mean_std;
use tlearn_heads::train::scenario::paired;
use tlearn_heads::train::{CvFile, FinetuneContest};

use crate::block::TopBlock;
use crate::pipeline::{check_cache, SplitRows};
use crate::train::{decision, fit, Epoch, FinetuneParams};

/// Training images (the training part, before its folds) from which `--head auto` lets
/// fine-tuning compete: with fewer, each fold's inner early-stopping split holds under a
/// hundred images and its score is too noisy to stop on.
pub const MIN_TRAINING_IMAGES: usize = 1000;

/// The rule [`compete`] decides by, in words (recorded in `cv.json`).
pub const RULE: &str = "the fine-tuned network is kept when it beats the frozen head by more \
                        than one standard error of the paired per-fold difference";

/// The outcome: the record for `cv.json`, and the spatial cache's rows of the frozen head's
/// split (for the final fit when fine-tuning won).
pub struct Contest {
    pub record: FinetuneContest,
    pub rows: SplitRows,
}

impl Contest {
    /// Record the contest in `cv` (`cv.json`'s `finetune`), and say in the scenario which head
    /// the run acted on and why.
    pub fn record_in(&self, cv: &mut CvFile) {
        let r = &self.record;
        if let Some(cuts) = cv.cuts.as_mut() {
            cuts.scenario.text.push_str(&format!(
                ". Fine-tuning the layers after {} '{}' was cross-validated on the same folds: \
                 {:+.4} ± {:.4} against the frozen head, so {}",
                r.backbone,
                r.cut,
                r.difference,
                r.standard_error,
                if r.chosen {
                    "the fine-tuned network is the head"
                } else {
                    "the frozen head is kept (fine-tuning must win by more than one standard error)"
                }
            ));
        }
        cv.finetune = Some(r.clone());
    }

    /// The CV score to record in a fine-tuned head kept by this contest.
    pub fn cv_summary(&self) -> CvSummary {
        let f = &self.record.fold_accuracy;
        let (mean, std) = mean_std(f);
        CvSummary {
            mean_accuracy: mean,
            std_accuracy: std,
            fold_accuracy: f.clone(),
            grid_edge: vec![],
        }
    }
}

/// The rows of `maps` holding the images `rows` of `frozen` (matched by path, checked by
/// content hash); errors name both caches.
fn matching_rows(frozen: &FeatureCache, maps: &FeatureCache, rows: &[usize]) -> Result<Vec<usize>> {
    let by_path: HashMap<&str, usize> = maps
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for &r in rows {
        let path = &frozen.paths[r];
        match by_path.get(path.as_str()) {
            None => missing.push(path.as_str()),
            Some(&m) if maps.sha256[m] != frozen.sha256[r] => bail!(
                "image {path} differs between {} and {} (content hash): extract both caches \
                 from the same folder",
                frozen.dir.display(),
                maps.dir.display()
            ),
            Some(&m) => out.push(m),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} image(s) of the frozen heads' split in {} are not in the spatial cache {} (e.g. \
             {:?}): extract both caches from the same folder",
            missing.len(),
            frozen.dir.display(),
            maps.dir.display(),
            &missing[..missing.len().min(3)]
        );
    }
    Ok(out)
}

/// Cross-validate fine-tuning `block` on the folds of `cv` (the frozen heads' `cv.json` of
/// `frozen`'s rows) with `maps` (the spatial cache of the same images at `block`'s cut), pair it
/// with the frozen head CV chose and decide by [`RULE`]. `progress(fold, epoch)` hears every
/// epoch of every fold's fit.
pub fn compete(
    cv: &CvFile,
    frozen: &FeatureCache,
    maps: &FeatureCache,
    block: &TopBlock,
    params: &FinetuneParams,
    progress: &mut dyn FnMut(usize, &Epoch),
) -> Result<Contest> {
    check_cache(maps, block)?;
    maps.check_trainable()?;
    if maps.classes() != frozen.classes() {
        bail!(
            "the spatial cache {} has classes {:?}, the frozen heads' cache {} has {:?}: extract \
             both from the same folder",
            maps.dir.display(),
            maps.classes(),
            frozen.dir.display(),
            frozen.classes()
        );
    }
    let report = &cv.report;
    let folds = report.folds;
    let fold_of = &report.split.fold_of_train_row;
    let chosen = report.candidates.get(report.chosen).ok_or_else(|| {
        anyhow::anyhow!("cv.json names candidate {}, which it lacks", report.chosen)
    })?;
    if folds < 2
        || chosen.fold_accuracy.len() != folds
        || fold_of.len() != report.split.train_rows.len()
    {
        bail!(
            "the frozen heads' CV has {} folds and {} fold scores for {} training rows: nothing \
             to pair fine-tuning with",
            folds,
            chosen.fold_accuracy.len(),
            fold_of.len()
        );
    }
    let train = matching_rows(frozen, maps, &report.split.train_rows)?;
    let held_out = matching_rows(frozen, maps, &report.split.test_rows)?;
    let k = maps.classes().len();
    let t0 = Instant::now();
    let mut fold_accuracy = Vec::with_capacity(folds);
    for f in 0..folds {
        let (fit_rows, valid_rows): (Vec<usize>, Vec<usize>) =
            (0..train.len()).partition(|&i| fold_of[i] != f);
        let x: Vec<&[f32]> = fit_rows.iter().map(|&i| maps.row(train[i])).collect();
        let y: Vec<usize> = fit_rows.iter().map(|&i| maps.y[train[i]]).collect();
        let groups: Vec<String> = fit_rows
            .iter()
            .map(|&i| maps.sha256[train[i]].clone())
            .collect();
        let fitted = fit(block, &x, &y, &groups, k, params, &mut |e| progress(f, e))?;
        let xv: Vec<&[f32]> = valid_rows.iter().map(|&i| maps.row(train[i])).collect();
        let scores = decision(&fitted.block, &fitted.cls_w, &fitted.cls_b, &xv)?;
        let right = valid_rows
            .iter()
            .zip(scores.rows())
            .filter(|(&i, s)| metrics::argmax_f32(s.iter().copied()) == maps.y[train[i]])
            .count();
        fold_accuracy.push(right as f64 / valid_rows.len().max(1) as f64);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let (mean_accuracy, _) = mean_std(&fold_accuracy);
    let e = paired(&fold_accuracy, &chosen.fold_accuracy, "frozen")
        .ok_or_else(|| anyhow::anyhow!("the folds do not pair"))?;
    let won = e.difference > 0.0 && e.difference > e.standard_error;
    Ok(Contest {
        record: FinetuneContest {
            cache: maps.dir.display().to_string(),
            backbone: block.backbone.clone(),
            cut: block.cut.clone(),
            fold_accuracy,
            mean_accuracy,
            difference: e.difference,
            standard_error: e.standard_error,
            rule: RULE.into(),
            chosen: won,
            seconds,
        },
        rows: SplitRows {
            train,
            held_out,
            seed: report.seed,
            test_size: report.test_size,
            folds,
        },
    })
}
