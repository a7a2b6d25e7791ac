//! The bottom of the training stack: k-fold cross-validation of a list of candidates on the
//! training part. Each transform is fitted on each training fold only; a fold's transformed
//! rows are made once per transform and shared by every candidate of that transform, and each
//! fold carries each family's warm-start state from one grid point to the next
//! (`head::FoldStates`).
//!
//! Where the time goes, and what is shared. Measured with the default grid on 4,200 × 1,280
//! Fashion-MNIST codes (5 folds, one transform, every point fitted, on 2 cores whose speed varied
//! between runs, so read the ratios): the slow points are the large C values
//! (linear SVM: 14.5 s at C = 0.001 against about 30 s for each C ≥ 1, which all score the
//! same 0.826 against 0.866 at the best C) and the too-large gamma (RBF at 10 × `scale`: 30-36 s
//! per C at 0.50-0.60 accuracy). Hence:
//! - the early-stopping rule along C ([`cross_validate`]'s `patience`; the skipped points are
//!   exactly the slow, declining ones);
//! - the transform of a fold is fitted once and reused by every head and C value of that
//!   transform;
//! - the RBF SVM's kernel distances are computed once per fold and transform, each gamma's
//!   kernel shared by every C of that gamma (`families::rbf_svm`);
//! - the SMO of the RBF SVM shrinks (LIBSVM's heuristic) and is warm-started along C from the
//!   previous C's dual solution; the linear SVM's dual coordinate descent likewise starts from
//!   the previous C's dual solution (LIBLINEAR's parameter search does the same);
//! - logistic regression is warm-started along C (each fold's fit at C starts from its fit at
//!   the previous C), as scikit-learn's `logistic_regression_path` does: logistic fits took
//!   11-18 s per C at C ≤ 0.1 from zero on 2,100 × 1,280 Fashion-MNIST codes in the same
//!   runs;
//! - folds run in parallel (rayon), and the classes of a one-vs-rest fit in parallel inside.
//!
//! Not yet fast: `pca-whiten`'s full eigendecomposition (linfa-linalg's unblocked symmetric
//! `eigh` of the 1,280 × 1,280 covariance, once per fold and once on the training part). With
//! every other cost above cut, it dominates `--transform auto` on Fashion-MNIST (2,100 × 1,280,
//! seed 0): 1,349 s of CV of which the 168 grid points' fits took 500 s,
//! the rest fitting the transforms. A blocked eigensolver (faer) or a randomised SVD is the next
//! step for the scikit-learn time comparison of `make bench`.

use crate::fit_info::Convergence;
use crate::head::{Fold, FoldStates, HeadSpec};
use crate::train::cv_file::CvResult;
use crate::train::grid::{always_fitted, path_stalled, Candidate};
use crate::transform::{Transform, TransformSpec};
use anyhow::Result;
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use std::time::Instant;

/// Validation rows, their decision values and how the fit converged.
type FoldFit = (Vec<usize>, Array2<f64>, Convergence);

/// One fold under one transform: transformed rows, and each family's state between grid points.
struct FoldData {
    z_train: Array2<f32>,
    y_train: Vec<usize>,
    z_valid: Array2<f32>,
    valid_pos: Vec<usize>,
    states: FoldStates,
}

impl FoldData {
    /// Fit `p` on this fold and score its validation rows.
    fn fit_score(&mut self, p: &HeadSpec, n_classes: usize, seed: u64) -> Result<FoldFit> {
        let fold = Fold {
            z_train: &self.z_train,
            y_train: &self.y_train,
            z_valid: &self.z_valid,
        };
        let (scores, conv) = p.fit_fold(&fold, &mut self.states, n_classes, seed)?;
        Ok((self.valid_pos.clone(), scores, conv))
    }
}

impl FoldData {
    /// [`FoldData::fit_score`] for a family without warm starts: from a fresh state, so that
    /// several points can be fitted on one fold at once.
    fn fit_score_alone(&self, p: &HeadSpec, n_classes: usize, seed: u64) -> Result<FoldFit> {
        let fold = Fold {
            z_train: &self.z_train,
            y_train: &self.y_train,
            z_valid: &self.z_valid,
        };
        let (scores, conv) = p.fit_fold(&fold, &mut FoldStates::default(), n_classes, seed)?;
        Ok((self.valid_pos.clone(), scores, conv))
    }
}

/// Fold `f`'s training and validation images (indices of the training part), ascending.
pub fn fold_rows(fold_of: &[usize], f: usize) -> (Vec<usize>, Vec<usize>) {
    (0..fold_of.len()).partition(|&i| fold_of[i] != f)
}

fn fold_data(
    x: ArrayView2<f32>,
    views: Option<ArrayView3<f32>>,
    y: &[usize],
    fold_of: &[usize],
    k: usize,
    spec: TransformSpec,
) -> Result<Vec<FoldData>> {
    (0..k)
        .into_par_iter()
        .map(|f| -> Result<FoldData> {
            let (tr, va) = fold_rows(fold_of, f);
            // Training rows expanded to their views after the split into folds: a view always
            // sits on its image's side.
            let (xt, y_train) = crate::view_rows::training_rows(x, views, &tr, y);
            let t = Transform::fit_spec(xt.view(), spec)?;
            Ok(FoldData {
                z_train: t.apply(xt.view())?,
                y_train,
                z_valid: t.apply(x.select(Axis(0), &va).view())?,
                valid_pos: va,
                states: FoldStates::default(),
            })
        })
        .collect()
}

/// The rows a cross-validation runs on: the training part `x` with classes `y`, the fold of
/// each row, and (`views`, `[rows, views, dim]` aligned with `x`) the kept augmentation views:
/// with views every view of a training-fold image is a training row ([`crate::view_rows`]) and
/// validation images are scored on their rows of `x` (the averaged views).
#[derive(Clone, Copy)]
pub struct CvRows<'a> {
    pub x: ArrayView2<'a, f32>,
    pub views: Option<ArrayView3<'a, f32>>,
    pub y: &'a [usize],
    pub n_classes: usize,
    pub fold_of: &'a [usize],
    pub folds: usize,
}

/// Cross-validate every candidate. Candidates of one transform share its per-fold fits (give
/// them together, as the grid is made).
///
/// The early-stopping rule (`patience` > 0): once `patience` consecutive values of a path
/// (ascending C from the grid; see `grid`) have scored more than [`grid::DECLINE`] below the
/// best mean CV accuracy on that path, its remaining (larger) values are not fitted and are
/// reported as skipped. CV accuracy is unimodal in C in practice (under- then over-fitting, or
/// a plateau once the margin is hard), and the large C values are the slow fits (SMO and dual
/// coordinate descent need many more iterations as C grows). Only a real decline counts: the
/// flat under-fitting start of an RBF path at small C (measured on Fashion-MNIST: 0.797, 0.802,
/// 0.800, 0.800 for C = 0.001 … 1, then 0.870 at C = 100) must not stop it. `--c-patience 0`
/// evaluates every point.
///
/// [`grid::DECLINE`]: crate::train::grid::DECLINE
pub fn cross_validate(
    rows: CvRows,
    candidates: &[Candidate],
    seed: u64,
    patience: usize,
    mut progress: impl FnMut(&CvResult),
) -> Result<Vec<CvResult>> {
    let mut results: Vec<CvResult> = Vec::with_capacity(candidates.len());
    let mut folds: Vec<FoldData> = Vec::new();
    let mut folds_for: Option<TransformSpec> = None;
    let mut i = 0;
    while i < candidates.len() {
        let cand = &candidates[i];
        if patience > 0 && path_stalled(&results, cand, patience) {
            let res = CvResult::skipped(cand, rows.views.is_some());
            progress(&res);
            results.push(res);
            i += 1;
            continue;
        }
        if folds_for != Some(cand.transform) {
            folds.clear(); // free the previous transform's folds first
            folds = fold_data(
                rows.x,
                rows.views,
                rows.y,
                rows.fold_of,
                rows.folds,
                cand.transform,
            )?;
            folds_for = Some(cand.transform);
        }
        // Points of a family without warm starts that early stopping cannot skip are fitted
        // side by side: every (point, fold) pair in parallel, so no core waits for the last
        // fold of a point (5 folds on 2 cores).
        let mut end = i + 1;
        if !cand.params.kind().warm_starts() {
            while end < candidates.len()
                && candidates[end].transform == cand.transform
                && candidates[end].params.kind() == cand.params.kind()
                && always_fitted(&candidates[..end], &candidates[end], patience)
            {
                end += 1;
            }
        }
        if end == i + 1 {
            let start = Instant::now();
            let fits: Vec<Result<FoldFit>> = folds
                .par_iter_mut()
                .map(|fd| fd.fit_score(&cand.params, rows.n_classes, seed))
                .collect();
            let res = score(cand, rows, fits, start.elapsed().as_secs_f64());
            progress(&res);
            results.push(res);
        } else {
            let start = Instant::now();
            let k = folds.len();
            let folds_ref = &folds;
            let mut fits: Vec<Result<FoldFit>> = (0..(end - i) * k)
                .into_par_iter()
                .map(|j| {
                    folds_ref[j % k].fit_score_alone(
                        &candidates[i + j / k].params,
                        rows.n_classes,
                        seed,
                    )
                })
                .collect();
            // The points ran together: each is given its share of the wall time.
            let seconds = start.elapsed().as_secs_f64() / (end - i) as f64;
            for c in &candidates[i..end] {
                let rest = fits.split_off(k);
                let res = score(c, rows, std::mem::replace(&mut fits, rest), seconds);
                progress(&res);
                results.push(res);
            }
        }
        i = end;
    }
    Ok(results)
}

/// A candidate's CV result from its folds' fits: accuracy per fold and the out-of-fold
/// decision values, or the first error.
fn score(cand: &Candidate, rows: CvRows, fits: Vec<Result<FoldFit>>, seconds: f64) -> CvResult {
    let y = rows.y;
    let mut oof = Array2::zeros((y.len(), rows.n_classes));
    let mut accs = Vec::new();
    let mut error = None;
    let mut conv = Vec::new();
    for r in fits {
        match r {
            Ok((pos, s, c)) => {
                conv.push(c);
                let mut correct = 0;
                for (row, &i) in s.axis_iter(Axis(0)).zip(&pos) {
                    if argmax(row.as_slice().unwrap_or(&row.to_vec())) == y[i] {
                        correct += 1;
                    }
                    oof.row_mut(i).assign(&row);
                }
                accs.push(correct as f64 / pos.len().max(1) as f64);
            }
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let (mean, std) = if error.is_none() {
        mean_std(&accs)
    } else {
        (f64::NAN, f64::NAN)
    };
    CvResult {
        transform: cand.transform,
        params: cand.params.clone(),
        view_rows: rows.views.is_some(),
        convergence: error.is_none().then(|| Convergence::all(conv)),
        fold_accuracy: if error.is_none() { accs } else { vec![] },
        mean_accuracy: mean,
        std_accuracy: std,
        seconds,
        oof_scores: if error.is_none() { Some(oof) } else { None },
        error,
        skipped: false,
    }
}

/// The index of the largest value (the first on ties): the predicted class.
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Mean and (population) standard deviation of per-fold accuracies, as CV reports them.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}
