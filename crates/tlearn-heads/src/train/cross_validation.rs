//! Model selection: k-fold cross-validation over a grid of transforms × heads ×
//! hyper-parameters. Each transform is fitted on each training fold only.
//!
//! Where the time goes, and what is shared. Measured with the default grid on 4,200 × 1,280
//! Fashion-MNIST codes (5 folds, one transform, every point fitted, on a 2-core machine under
//! heavy load from other builds, so read the ratios): the slow points are the large C values
//! (linear SVM: 14.5 s at C = 0.001 against about 30 s for each C ≥ 1, which all score the
//! same 0.826 against 0.866 at the best C) and the too-large gamma (RBF at 10 × `scale`: 30-36 s
//! per C at 0.50-0.60 accuracy). Hence:
//! - the early-stopping rule along C below (the skipped points are exactly the slow,
//!   declining ones);
//! - the transform of a fold is fitted once and reused by every head and C value of that
//!   transform;
//! - the RBF SVM's kernel is the costly part of its fits (a `[n, n]` matrix product per fit).
//!   Per fold and transform the squared distances `|x_i − x_j|²` (training × training and
//!   validation × training) are computed once; each gamma's kernel is then one `exp` pass, shared
//!   by every C of that gamma, and the validation scores reuse the distances too;
//! - the SMO of the RBF SVM shrinks (LIBSVM's heuristic: rows bounded at 0 or C that will stay
//!   there leave the active set) and is warm-started along C from the previous C's dual
//!   solution; the linear SVM's dual coordinate descent likewise starts from the previous C's
//!   dual solution (LIBLINEAR's parameter search does the same);
//! - logistic regression is warm-started along C (each fold's fit at C starts from its fit at
//!   the previous C), as scikit-learn's `logistic_regression_path` does: logistic fits took
//!   11-18 s per C at C ≤ 0.1 from zero on 2,100 × 1,280 Fashion-MNIST codes under the same
//!   load;
//! - folds run in parallel (rayon), and the classes of a one-vs-rest fit in parallel inside.
//!
//! Not yet fast: `pca-whiten`'s full eigendecomposition (linfa-linalg's unblocked symmetric
//! `eigh` of the 1,280 × 1,280 covariance, once per fold and once on the training part). With
//! every other cost above cut, it dominates `--transform auto` on Fashion-MNIST (2,100 × 1,280,
//! seed 0, the loaded machine): 1,349 s of CV of which the 168 grid points' fits took 500 s,
//! the rest fitting the transforms. A blocked eigensolver (faer) or a randomised SVD is the next
//! step for the scikit-learn time comparison of `make bench`.

use crate::fit_info::Convergence;
use crate::head::{Engine, Head, HeadKind, HeadSpec};
use crate::kernel_svm;
use crate::transform::{Transform, TransformSpec};
use anyhow::{bail, Result};
use linfa::ParamGuard;
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// One row of the CV curve.
#[derive(Debug, Clone, Serialize)]
pub struct CvResult {
    /// The feature transform this candidate was cross-validated with.
    pub transform: TransformSpec,
    #[serde(flatten)]
    pub params: HeadSpec,
    /// Trained on one row per kept augmentation view of each training-fold image (validation
    /// images scored on their averaged rows); absent: one averaged row per image.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub view_rows: bool,
    /// How the solver stopped, over all folds (largest iteration count; converged only if
    /// every fold did). `None` if a fit failed.
    pub convergence: Option<Convergence>,
    /// Accuracy on each validation fold (empty if the fit failed).
    pub fold_accuracy: Vec<f64>,
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    /// Wall time of all k fits and predictions for this candidate.
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Not fitted: the C path stopped early (see [`cross_validate`]'s `patience`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Out-of-fold decision values for every training row `[n_train, classes]`; used to fit the
    /// Platt calibration of the chosen SVM without another round of fits.
    #[serde(skip)]
    pub oof_scores: Option<Array2<f64>>,
}

impl CvResult {
    /// Fitted on every fold without error: a candidate `choose` can pick.
    pub fn scored(&self) -> bool {
        self.error.is_none() && !self.skipped
    }
}

/// One grid point: a transform and a head with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub transform: TransformSpec,
    pub params: HeadSpec,
}

/// The grid: every head kind with every C, and every gamma for RBF; `engine` picks the
/// solvers of logistic regression and the RBF SVM. RBF points come gamma by gamma (all C of
/// one gamma together), the order in which cross-validation reuses one kernel per gamma.
pub fn grid(
    kinds: &[HeadKind],
    c_grid: &[f64],
    gamma_grid: &[f64],
    linear_tol: f64,
    engine: Engine,
) -> Vec<HeadSpec> {
    let mut out = Vec::new();
    for &kind in kinds {
        match kind {
            HeadKind::RbfSvm => {
                for &gamma in gamma_grid {
                    out.extend(
                        c_grid
                            .iter()
                            .map(|&c| HeadSpec::RbfSvm { c, gamma, engine }),
                    )
                }
            }
            HeadKind::LinearSvm => out.extend(
                c_grid
                    .iter()
                    .map(|&c| HeadSpec::LinearSvm { c, tol: linear_tol }),
            ),
            HeadKind::Logistic => {
                out.extend(c_grid.iter().map(|&c| HeadSpec::Logistic { c, engine }))
            }
        }
    }
    out
}

/// The heads `--head auto` cross-validates for `n_train` training rows, and why any is left
/// out: the RBF SVM's dense kernel matrix is too large above `kernel_svm::MAX_ROWS` rows.
pub fn auto_heads(n_train: usize) -> (Vec<HeadKind>, Option<String>) {
    if n_train > crate::kernel_svm::MAX_ROWS {
        (
            vec![HeadKind::LinearSvm, HeadKind::Logistic],
            Some(format!(
                "{n_train} training rows: skipping rbf-svm in auto (dense kernel too large)"
            )),
        )
    } else {
        (HeadKind::ALL.to_vec(), None)
    }
}

/// Validation rows, their decision values and how the fit converged.
type FoldFit = (Vec<usize>, Array2<f64>, Convergence);

/// One fold under one transform: transformed rows, and the RBF distances once needed.
struct FoldData {
    z_train: Array2<f32>,
    y_train: Vec<usize>,
    z_valid: Array2<f32>,
    valid_pos: Vec<usize>,
    /// `|x_i − x_j|²` training × training and validation × training (RBF with tlearn's SMO).
    sq: Option<(Array2<f64>, Array2<f64>)>,
    /// The kernel of the last gamma used, shared by the C values of that gamma.
    kernel: Option<(f64, Array2<f64>)>,
    /// The last logistic model fitted on this fold (tlearn's solver): the warm start of the
    /// next C.
    logistic: Option<crate::logistic::LogisticModel>,
    /// The last RBF dual solution on this fold and its gamma: the warm start of the next C of
    /// that gamma.
    rbf_warm: Option<(f64, kernel_svm::RbfWarm)>,
    /// The last linear SVM dual solution on this fold: the warm start of the next C.
    linear_warm: Option<crate::linear_svm::LinearWarm>,
}

impl FoldData {
    /// Fit `p` on this fold and score its validation rows.
    fn fit_score(&mut self, p: &HeadSpec, n_classes: usize, seed: u64) -> Result<FoldFit> {
        if let HeadSpec::RbfSvm {
            c,
            gamma,
            engine: Engine::Tlearn,
        } = *p
        {
            if self.sq.is_none() {
                let zt = self.z_train.mapv(|v| v as f64);
                let zv = self.z_valid.mapv(|v| v as f64);
                self.sq = Some((
                    kernel_svm::sq_distances(zt.view(), zt.view()),
                    kernel_svm::sq_distances(zv.view(), zt.view()),
                ));
            }
            let (d_train, d_valid) = self.sq.as_ref().expect("just set");
            if self.kernel.as_ref().map(|k| k.0) != Some(gamma) {
                self.kernel = None; // free the old kernel before making the next one
                self.kernel = Some((gamma, kernel_svm::kernel_from_sq(d_train, gamma)));
            }
            let k = &self.kernel.as_ref().expect("just set").1;
            let warm = self
                .rbf_warm
                .as_ref()
                .filter(|w| w.0 == gamma)
                .map(|w| &w.1);
            let (m, sv, solution) = kernel_svm::fit_on_kernel(
                k,
                self.z_train.view(),
                &self.y_train,
                n_classes,
                c,
                gamma,
                warm,
            )?;
            self.rbf_warm = Some((gamma, solution));
            let conv = m.convergence;
            return Ok((
                self.valid_pos.clone(),
                m.decision_from_sq(d_valid, &sv),
                conv,
            ));
        }
        if let HeadSpec::Logistic {
            c,
            engine: Engine::Tlearn,
        } = *p
        {
            let m = crate::logistic::fit_warm(
                self.z_train.view(),
                &self.y_train,
                n_classes,
                c,
                self.logistic.as_ref(),
            )?;
            let out = (
                self.valid_pos.clone(),
                Head::Logistic(m.clone()).decision(self.z_valid.view()),
                m.convergence,
            );
            self.logistic = Some(m);
            return Ok(out);
        }
        if let HeadSpec::LinearSvm { c, tol } = *p {
            let params = crate::linear_svm::LinearSvmParams::new()
                .c(c)
                .tol(tol)
                .seed(seed)
                .n_classes(n_classes)
                .check()?;
            let (m, solution) = crate::linear_svm::fit_warm(
                self.z_train.view(),
                &self.y_train,
                n_classes,
                &params,
                self.linear_warm.as_ref(),
            )?;
            self.linear_warm = Some(solution);
            let conv = m.convergence;
            return Ok((
                self.valid_pos.clone(),
                Head::LinearSvm(m).decision(self.z_valid.view()),
                conv,
            ));
        }
        let h: Head = p.fit(self.z_train.view(), &self.y_train, n_classes, seed)?;
        Ok((
            self.valid_pos.clone(),
            h.decision(self.z_valid.view()),
            h.convergence(),
        ))
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
                sq: None,
                kernel: None,
                logistic: None,
                rbf_warm: None,
                linear_warm: None,
            })
        })
        .collect()
}

/// Cross-validate every candidate. `fold_of[i]` is the fold of training row i. Candidates of
/// one transform share its per-fold fits (give them together, as `pipeline` does). With
/// `views` (`[rows, views, dim]`, aligned with `x`) every view of a training-fold image is a
/// training row ([`crate::view_rows`]) and validation images are scored on their rows of `x`
/// (the averaged views).
///
/// The early-stopping rule (`patience` > 0): a *C path* is the candidates that differ only in
/// C (same transform, head, engine and gamma), met in the order given (ascending C from
/// `grid`). Once `patience` consecutive C values of a path have scored more than
/// [`DECLINE`] below the best mean CV accuracy on that path, its remaining (larger) C values
/// are not fitted and are reported as skipped. CV accuracy is unimodal in C in practice
/// (under- then over-fitting, or a plateau once the margin is hard), and the large C values are
/// the slow fits (SMO and dual coordinate descent need many more iterations as C grows). Only
/// a real decline counts: the flat under-fitting start of an RBF path at small C (measured on
/// Fashion-MNIST: 0.797, 0.802, 0.800, 0.800 for C = 0.001 … 1, then 0.870 at C = 100) must not
/// stop it. `--c-patience 0` evaluates every point.
#[allow(clippy::too_many_arguments)]
pub fn cross_validate(
    x: ArrayView2<f32>,
    views: Option<ArrayView3<f32>>,
    y: &[usize],
    n_classes: usize,
    fold_of: &[usize],
    k: usize,
    candidates: &[Candidate],
    seed: u64,
    patience: usize,
    mut progress: impl FnMut(&CvResult),
) -> Result<Vec<CvResult>> {
    let mut results: Vec<CvResult> = Vec::with_capacity(candidates.len());
    let mut folds: Vec<FoldData> = Vec::new();
    let mut folds_for: Option<TransformSpec> = None;
    for cand in candidates {
        if patience > 0 && path_stalled(&results, cand, patience) {
            let res = CvResult {
                transform: cand.transform,
                params: cand.params,
                view_rows: views.is_some(),
                convergence: None,
                fold_accuracy: vec![],
                mean_accuracy: f64::NAN,
                std_accuracy: f64::NAN,
                seconds: 0.0,
                error: None,
                skipped: true,
                oof_scores: None,
            };
            progress(&res);
            results.push(res);
            continue;
        }
        if folds_for != Some(cand.transform) {
            folds.clear(); // free the previous transform's folds first
            folds = fold_data(x, views, y, fold_of, k, cand.transform)?;
            folds_for = Some(cand.transform);
        }
        let p = &cand.params;
        let start = Instant::now();
        let fits: Vec<Result<FoldFit>> = folds
            .par_iter_mut()
            .map(|fd| fd.fit_score(p, n_classes, seed))
            .collect();
        let seconds = start.elapsed().as_secs_f64();
        let mut oof = Array2::zeros((y.len(), n_classes));
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
        let res = CvResult {
            transform: cand.transform,
            params: *p,
            view_rows: views.is_some(),
            convergence: error.is_none().then(|| Convergence::all(conv)),
            fold_accuracy: if error.is_none() { accs } else { vec![] },
            mean_accuracy: mean,
            std_accuracy: std,
            seconds,
            oof_scores: if error.is_none() { Some(oof) } else { None },
            error,
            skipped: false,
        };
        progress(&res);
        results.push(res);
    }
    Ok(results)
}

/// The C values (at the chosen gamma) and gamma values (at the chosen C) tried for the chosen
/// candidate's head and transform, ascending, over the successful results.
fn neighbourhood(results: &[CvResult], chosen: usize) -> (Vec<f64>, Vec<f64>) {
    let r = &results[chosen];
    let same = |o: &&CvResult| {
        o.scored()
            && o.transform == r.transform
            && o.params.kind() == r.params.kind()
            && o.params.engine() == r.params.engine()
    };
    let mut cs: Vec<f64> = results
        .iter()
        .filter(same)
        .filter(|o| o.params.gamma() == r.params.gamma())
        .map(|o| o.params.c())
        .collect();
    let mut gs: Vec<f64> = results
        .iter()
        .filter(same)
        .filter(|o| o.params.c() == r.params.c())
        .filter_map(|o| o.params.gamma())
        .collect();
    for v in [&mut cs, &mut gs] {
        v.sort_by(|a, b| a.total_cmp(b));
        v.dedup();
    }
    (cs, gs)
}

/// Where `v` sits in the ascending grid `g` of at least two values: the next log-step beyond the
/// edge it is on (`Some(true, next)` at the top, `Some(false, next)` at the bottom), else None.
fn beyond_edge(g: &[f64], v: f64) -> Option<(bool, f64)> {
    if g.len() < 2 {
        return None;
    }
    let n = g.len();
    if v == g[n - 1] {
        Some((true, v * (g[n - 1] / g[n - 2])))
    } else if v == g[0] {
        Some((false, v / (g[1] / g[0])))
    } else {
        None
    }
}

/// The grid-extension rule: when the chosen candidate's C (or the RBF SVM's gamma) is the
/// largest or smallest value tried for its head and transform, the candidates one log-step
/// beyond that edge (same ratio as the last step of the grid; both beyond-edge values together
/// when C and gamma are both at an edge). Empty when the pick is inside the grid, or its grid
/// has a single value (nothing was searched).
pub fn extend_at_edge(results: &[CvResult], chosen: usize) -> Vec<Candidate> {
    let r = &results[chosen];
    let (cs, gs) = neighbourhood(results, chosen);
    let new_c = beyond_edge(&cs, r.params.c()).map(|e| e.1);
    let new_g = r
        .params
        .gamma()
        .and_then(|g| beyond_edge(&gs, g))
        .map(|e| e.1);
    let with = |c: Option<f64>, g: Option<f64>| -> HeadSpec {
        let mut p = r.params;
        match &mut p {
            HeadSpec::Logistic { c: pc, .. } | HeadSpec::LinearSvm { c: pc, .. } => {
                *pc = c.unwrap_or(*pc)
            }
            HeadSpec::RbfSvm {
                c: pc, gamma: pg, ..
            } => {
                *pc = c.unwrap_or(*pc);
                *pg = g.unwrap_or(*pg);
            }
        }
        p
    };
    let mut out = Vec::new();
    if new_g.is_some() {
        out.push(with(None, new_g));
    }
    if new_c.is_some() {
        out.push(with(new_c, None));
    }
    if new_c.is_some() && new_g.is_some() {
        out.push(with(new_c, new_g));
    }
    out.into_iter()
        .filter(|p| {
            !results
                .iter()
                .any(|o| o.transform == r.transform && o.params == *p)
        })
        .map(|params| Candidate {
            transform: r.transform,
            params,
        })
        .collect()
}

/// Notes for a chosen C or gamma at an edge of the grid searched, e.g. "C at top of grid
/// (1000)", for the CV table, cv.json and the report.
pub fn edge_notes(results: &[CvResult], chosen: usize) -> Vec<String> {
    let r = &results[chosen];
    let (cs, gs) = neighbourhood(results, chosen);
    let mut notes = Vec::new();
    let side = |top: bool| if top { "top" } else { "bottom" };
    if let Some((top, _)) = beyond_edge(&cs, r.params.c()) {
        notes.push(format!("C at {} of grid ({})", side(top), r.params.c()));
    }
    if let Some(g) = r.params.gamma() {
        if let Some((top, _)) = beyond_edge(&gs, g) {
            notes.push(format!("gamma at {} of grid ({g:.3e})", side(top)));
        }
    }
    notes
}

/// How far below its path's best a C value must score to count as a decline (half a point of
/// accuracy; about the CV noise of a few hundred validation rows).
pub const DECLINE: f64 = 0.005;

/// Whether `cand`'s C path (the earlier results with the same transform, head, engine and
/// gamma) has seen `patience` consecutive fitted C values decline below its best, or has been
/// stopped.
fn path_stalled(results: &[CvResult], cand: &Candidate, patience: usize) -> bool {
    let p = &cand.params;
    let mut best = f64::NEG_INFINITY;
    let mut since = 0;
    for r in results.iter().filter(|r| {
        r.transform == cand.transform
            && r.params.kind() == p.kind()
            && r.params.engine() == p.engine()
            && r.params.gamma() == p.gamma()
    }) {
        if r.skipped {
            return true;
        }
        if r.error.is_some() {
            continue;
        }
        if r.mean_accuracy > best {
            best = r.mean_accuracy;
            since = 0;
        } else if r.mean_accuracy < best - DECLINE {
            since += 1;
        } else {
            since = 0;
        }
    }
    since >= patience
}

pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Pick the best candidate by mean CV accuracy; ties (within 1e-9) go to the simpler model:
/// linear SVM before logistic before RBF, then the simpler transform (standard first), then
/// smaller C, then smaller gamma.
pub fn choose(results: &[CvResult]) -> Result<usize> {
    let ok: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].scored())
        .collect();
    if ok.is_empty() {
        let errs: Vec<String> = results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.params)))
            .collect();
        bail!("every candidate failed:\n  {}", errs.join("\n  "));
    }
    let best = ok
        .into_iter()
        .min_by(|&a, &b| {
            let (ra, rb) = (&results[a], &results[b]);
            let d = rb.mean_accuracy - ra.mean_accuracy;
            if d.abs() > 1e-9 {
                return d.partial_cmp(&0.0).unwrap_or(std::cmp::Ordering::Equal);
            }
            (
                ra.params.kind().complexity(),
                ra.transform.kind.complexity(),
                ra.params.c(),
                ra.params.gamma(),
            )
                .partial_cmp(&(
                    rb.params.kind().complexity(),
                    rb.transform.kind.complexity(),
                    rb.params.c(),
                    rb.params.gamma(),
                ))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("non-empty");
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: HeadKind, c: f64, acc: f64) -> CvResult {
        CvResult {
            transform: TransformSpec::new(crate::transform::TransformKind::Standard, None),
            params: grid(&[kind], &[c], &[1.0], 0.01, Engine::Tlearn)[0],
            view_rows: false,
            convergence: None,
            fold_accuracy: vec![acc],
            mean_accuracy: acc,
            std_accuracy: 0.0,
            seconds: 0.0,
            error: None,
            skipped: false,
            oof_scores: None,
        }
    }

    #[test]
    fn best_score_wins_and_ties_go_to_simpler() {
        let r = vec![
            res(HeadKind::RbfSvm, 1.0, 0.9),
            res(HeadKind::Logistic, 10.0, 0.9),
            res(HeadKind::Logistic, 0.1, 0.9),
            res(HeadKind::LinearSvm, 1.0, 0.8),
        ];
        assert_eq!(choose(&r).unwrap(), 2);
        let mut r2 = r.clone();
        r2[3].mean_accuracy = 0.95;
        assert_eq!(choose(&r2).unwrap(), 3);
    }

    #[test]
    fn all_failed_is_an_error() {
        let mut r = res(HeadKind::Logistic, 1.0, 0.0);
        r.error = Some("boom".into());
        let e = choose(&[r]).unwrap_err().to_string();
        assert!(e.contains("boom"));
    }

    #[test]
    fn auto_skips_rbf_on_large_sets_only() {
        assert_eq!(auto_heads(1000).0, HeadKind::ALL.to_vec());
        let (k, note) = auto_heads(50_000);
        assert!(!k.contains(&HeadKind::RbfSvm) && note.unwrap().contains("rbf-svm"));
    }

    #[test]
    fn grid_expands_gamma_for_rbf_only() {
        let g = grid(
            &[HeadKind::Logistic, HeadKind::RbfSvm],
            &[0.1, 1.0],
            &[0.01, 0.1, 1.0],
            0.01,
            Engine::Tlearn,
        );
        assert_eq!(g.len(), 2 + 6);
    }
}
