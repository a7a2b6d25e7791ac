//! Model selection: k-fold cross-validation over a grid of heads and hyper-parameters.
//! The transform (standardisation, PCA) is refitted on each training fold only.

use crate::fit_info::Convergence;
use crate::head::{Engine, HeadKind, HeadSpec};
use crate::transform::{Scaling, Transform};
use anyhow::{bail, Result};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// One row of the CV curve.
#[derive(Debug, Clone, Serialize)]
pub struct CvResult {
    #[serde(flatten)]
    pub params: HeadSpec,
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
    /// Out-of-fold decision values for every training row `[n_train, classes]`; used to fit the
    /// Platt calibration of the chosen SVM without another round of fits.
    #[serde(skip)]
    pub oof_scores: Option<Array2<f64>>,
}

/// The grid: every head kind with every C, and every gamma for RBF; `engine` picks the
/// solvers of logistic regression and the RBF SVM.
pub fn grid(
    kinds: &[HeadKind],
    c_grid: &[f64],
    gamma_grid: &[f64],
    linear_tol: f64,
    engine: Engine,
) -> Vec<HeadSpec> {
    let mut out = Vec::new();
    for &kind in kinds {
        for &c in c_grid {
            match kind {
                HeadKind::RbfSvm => out.extend(gamma_grid.iter().map(|&gamma| HeadSpec::RbfSvm {
                    c,
                    gamma,
                    engine,
                })),
                HeadKind::LinearSvm => out.push(HeadSpec::LinearSvm { c, tol: linear_tol }),
                HeadKind::Logistic => out.push(HeadSpec::Logistic { c, engine }),
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

struct FoldData {
    z_train: Array2<f32>,
    y_train: Vec<usize>,
    z_valid: Array2<f32>,
    valid_pos: Vec<usize>,
}

/// Cross-validate every candidate. `fold_of[i]` is the fold of training row i.
#[allow(clippy::too_many_arguments)]
pub fn cross_validate(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    fold_of: &[usize],
    k: usize,
    candidates: &[HeadSpec],
    scaling: Scaling,
    pca: Option<usize>,
    seed: u64,
    mut progress: impl FnMut(&CvResult),
) -> Result<Vec<CvResult>> {
    let folds: Vec<FoldData> = (0..k)
        .into_par_iter()
        .map(|f| -> Result<FoldData> {
            let tr: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] != f).collect();
            let va: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] == f).collect();
            let xt = x.select(Axis(0), &tr);
            let t = Transform::fit(xt.view(), scaling, pca)?;
            Ok(FoldData {
                z_train: t.apply(xt.view())?,
                y_train: tr.iter().map(|&i| y[i]).collect(),
                z_valid: t.apply(x.select(Axis(0), &va).view())?,
                valid_pos: va,
            })
        })
        .collect::<Result<_>>()?;

    let mut results = Vec::with_capacity(candidates.len());
    for p in candidates {
        let start = Instant::now();
        let fits: Vec<Result<FoldFit>> = folds
            .par_iter()
            .map(|fd| {
                let h = p.fit(fd.z_train.view(), &fd.y_train, n_classes, seed)?;
                Ok((
                    fd.valid_pos.clone(),
                    h.decision(fd.z_valid.view()),
                    h.convergence(),
                ))
            })
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
            params: *p,
            convergence: error.is_none().then(|| Convergence::all(conv)),
            fold_accuracy: if error.is_none() { accs } else { vec![] },
            mean_accuracy: mean,
            std_accuracy: std,
            seconds,
            oof_scores: if error.is_none() { Some(oof) } else { None },
            error,
        };
        progress(&res);
        results.push(res);
    }
    Ok(results)
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
/// linear SVM before logistic before RBF, then smaller C, then smaller gamma.
pub fn choose(results: &[CvResult]) -> Result<usize> {
    let ok: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].error.is_none())
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
                ra.params.c(),
                ra.params.gamma(),
            )
                .partial_cmp(&(
                    rb.params.kind().complexity(),
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
            params: grid(&[kind], &[c], &[1.0], 0.01, Engine::Tlearn)[0],
            convergence: None,
            fold_accuracy: vec![acc],
            mean_accuracy: acc,
            std_accuracy: 0.0,
            seconds: 0.0,
            error: None,
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
