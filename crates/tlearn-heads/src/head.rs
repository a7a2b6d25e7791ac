//! The heads: one serialisable structure per head kind, fitted on transformed vectors.
//! Multi-class is one-vs-rest for the SVMs (binary solvers) and multinomial (softmax) for
//! logistic regression.

use crate::calibrate::{softmax_rows, Temperature};
use crate::error::{check_finite, check_finite32, HeadError};
use crate::kernel_svm;
use crate::linear_svm::{self, LinearSvmParams};
use crate::logistic;
use anyhow::{bail, Result};
use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    Logistic,
    LinearSvm,
    RbfSvm,
}

impl HeadKind {
    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Logistic => "logistic",
            HeadKind::LinearSvm => "linear-svm",
            HeadKind::RbfSvm => "rbf-svm",
        }
    }
    /// Lower is simpler; used to break CV ties.
    pub fn complexity(&self) -> u8 {
        match self {
            HeadKind::LinearSvm => 0,
            HeadKind::Logistic => 1,
            HeadKind::RbfSvm => 2,
        }
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hyper-parameters of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadParams {
    pub kind: HeadKind,
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub c: f64,
    /// RBF kernel width: `k(x, x') = exp(-gamma |x - x'|²)` (RBF only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
}

/// A fitted head without calibration: produces decision values `[n, classes]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Head {
    /// Multinomial logistic regression (own L-BFGS, see `logistic`): scores = x·Wᵀ + b, probabilities = softmax(scores).
    Logistic {
        weights: Array2<f32>,
        bias: Array1<f32>,
    },
    /// One-vs-rest linear SVMs: score_c = w_c·x + b_c.
    LinearSvm {
        weights: Array2<f32>,
        bias: Array1<f32>,
    },
    /// One-vs-rest RBF SVMs (own SMO, see `kernel_svm`) with shared support vectors:
    /// score_c = Σ_s coef[c, s] exp(−gamma |x − sv_s|²) − rho_c.
    RbfSvm(kernel_svm::RbfOvr),
}

/// Settings shared by all fits.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub seed: u64,
    pub linear_tol: f64,
    pub logistic_max_iter: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            seed: 0,
            linear_tol: 0.01,
            logistic_max_iter: 1000,
        }
    }
}

impl Head {
    /// Fit on transformed rows `z` with labels `y` in `0..n_classes`.
    pub fn fit(
        p: &HeadParams,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        opt: &FitOptions,
    ) -> Result<Head> {
        if !(p.c.is_finite() && p.c > 0.0) {
            bail!("C must be a positive number, got {}", p.c);
        }
        if z.nrows() != y.len() || z.nrows() == 0 {
            bail!("cannot fit a head on {} rows", z.nrows());
        }
        Ok(match p.kind {
            HeadKind::LinearSvm => {
                let sp = LinearSvmParams {
                    c: p.c,
                    tol: opt.linear_tol,
                    max_iter: 1000,
                    seed: opt.seed,
                };
                let (weights, bias, _) = linear_svm::train_ovr(z, y, n_classes, &sp);
                Head::LinearSvm { weights, bias }
            }
            HeadKind::Logistic => {
                let lp = logistic::LogisticParams {
                    c: p.c,
                    max_iter: opt.logistic_max_iter,
                    tol: 1e-4,
                };
                let (weights, bias, _) = logistic::fit(z, y, n_classes, &lp)?;
                Head::Logistic { weights, bias }
            }
            HeadKind::RbfSvm => {
                let gamma = p.gamma.unwrap_or(1.0 / z.ncols() as f64);
                Head::RbfSvm(kernel_svm::fit_ovr(z, y, n_classes, p.c, gamma)?)
            }
        })
    }

    pub fn n_classes(&self) -> usize {
        match self {
            Head::Logistic { weights, .. } | Head::LinearSvm { weights, .. } => weights.nrows(),
            Head::RbfSvm(m) => m.n_classes(),
        }
    }

    /// Expected input dimension, if the head records it.
    pub fn input_dim(&self) -> Option<usize> {
        match self {
            Head::Logistic { weights, .. } | Head::LinearSvm { weights, .. } => {
                Some(weights.ncols())
            }
            Head::RbfSvm(m) => Some(m.support_vectors.ncols()),
        }
    }

    /// Check a loaded head: array shapes agree with each other, with `n_classes` and with the
    /// input dimension `dim`; every number is finite. Errors name the field (`head.bias`, ...).
    pub fn validate(&self, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        match self {
            Head::Logistic { weights, bias } | Head::LinearSvm { weights, bias } => {
                if weights.nrows() != n_classes {
                    return Err(HeadError::malformed(
                        "head.weights",
                        format!("{} rows for {n_classes} classes", weights.nrows()),
                    ));
                }
                if weights.ncols() != dim {
                    return Err(HeadError::malformed(
                        "head.weights",
                        format!(
                            "{} columns but the transform outputs {dim} dimensions",
                            weights.ncols()
                        ),
                    ));
                }
                if bias.len() != n_classes {
                    return Err(HeadError::malformed(
                        "head.bias",
                        format!("{} entries for {n_classes} classes", bias.len()),
                    ));
                }
                check_finite32("head.weights", weights.iter())?;
                check_finite32("head.bias", bias.iter())?;
            }
            Head::RbfSvm(m) => {
                let n_sv = m.support_vectors.nrows();
                if !(m.gamma.is_finite() && m.gamma > 0.0) {
                    return Err(HeadError::malformed(
                        "head.gamma",
                        format!("{} (must be a positive number)", m.gamma),
                    ));
                }
                if m.support_vectors.ncols() != dim {
                    return Err(HeadError::malformed(
                        "head.support_vectors",
                        format!(
                            "{} columns but the transform outputs {dim} dimensions",
                            m.support_vectors.ncols()
                        ),
                    ));
                }
                if m.coef.nrows() != n_classes {
                    return Err(HeadError::malformed(
                        "head.coef",
                        format!("{} rows for {n_classes} classes", m.coef.nrows()),
                    ));
                }
                if m.coef.ncols() != n_sv {
                    return Err(HeadError::malformed(
                        "head.coef",
                        format!(
                            "{} columns but head.support_vectors has {n_sv} rows",
                            m.coef.ncols()
                        ),
                    ));
                }
                if m.rho.len() != n_classes {
                    return Err(HeadError::malformed(
                        "head.rho",
                        format!("{} entries for {n_classes} classes", m.rho.len()),
                    ));
                }
                check_finite32("head.support_vectors", m.support_vectors.iter())?;
                check_finite("head.coef", m.coef.iter())?;
                check_finite("head.rho", m.rho.iter())?;
            }
        }
        Ok(())
    }

    /// Decision values `[n, classes]`.
    pub fn decision(&self, z: ArrayView2<f32>) -> Array2<f64> {
        match self {
            Head::Logistic { weights, bias } | Head::LinearSvm { weights, bias } => {
                (z.dot(&weights.t()) + bias).mapv(|v| v as f64)
            }
            Head::RbfSvm(m) => m.decision(z),
        }
    }
}

/// Turn decision values into probabilities whose ranking is the ranking of the decision values
/// (see `calibrate`): softmax for logistic regression, softmax(t · score) with the fitted shared
/// slope for the SVMs (slope 1 when no calibration was fitted).
pub fn probabilities(
    head: &Head,
    calibration: Option<&Temperature>,
    scores: &Array2<f64>,
) -> Array2<f64> {
    match (head, calibration) {
        (Head::Logistic { .. }, _) | (_, None) => softmax_rows(scores, 1.0),
        (_, Some(t)) => t.apply(scores),
    }
}
