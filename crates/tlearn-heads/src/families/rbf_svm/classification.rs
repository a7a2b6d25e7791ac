//! The fitted one-vs-rest RBF SVMs and their linfa interface: `RbfSvmValidParams` fits them
//! (`Fit` on a `DatasetBase` of codes and class indices; [`fit_on_kernel`] on a kernel already
//! computed, warm-started from a smaller C) and they predict decision values `[n, classes]`
//! (`PredictInplace`). One Gram matrix serves every class's binary problem.

use super::hyperparams::{RbfSvmParams, RbfSvmValidParams};
use super::kernel::rbf_kernel;
use super::solver_smo::{smo, Solution};
use super::MAX_ROWS;
use crate::error::{check_positive, HeadError};
use crate::families::logistic::classification::not_recorded;
use crate::fit_info::{classes_of, Convergence};
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, PredictInplace};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayBase, ArrayView2, Axis, Data, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

impl<D, T> Fit<ArrayBase<D, Ix2>, T, HeadError> for RbfSvmValidParams
where
    D: Data<Elem = f32>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = RbfOvr;
    fn fit(&self, ds: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<RbfOvr, HeadError> {
        let (x, y, k) = classes_of("RBF SVM", ds, self.n_classes)?;
        let gamma = self.gamma.unwrap_or(1.0 / x.ncols().max(1) as f64);
        fit_ovr(x, &y, k, self.c, gamma, self.eps, self.shrinking)
    }
}

impl<D: Data<Elem = f32>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for RbfOvr {
    /// Decision values `[n, classes]`.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        y.assign(&self.decision(x.view()));
    }
    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), self.n_classes()))
    }
}

/// Fitted one-vs-rest RBF SVMs: score_k(x) = Σ_s coef[k, s] · exp(−gamma |x − sv_s|²) − rho_k.
/// Support vectors are shared between the classes (union over the binary problems).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RbfOvr {
    pub gamma: f64,
    pub support_vectors: Array2<f32>,
    /// `[classes, n_sv]`: y_i α_i of each support vector in each binary problem.
    pub coef: Array2<f64>,
    pub rho: Array1<f64>,
    /// How the solvers stopped (kept in head.json's `fit`, not here).
    #[serde(skip, default = "not_recorded")]
    pub convergence: Convergence,
}

fn fit_ovr(
    z: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    c: f64,
    gamma: f64,
    eps: f64,
    shrinking: bool,
) -> Result<RbfOvr, HeadError> {
    check_rows(z.nrows())?;
    let x = z.mapv(|v| v as f64);
    let k = rbf_kernel(x.view(), x.view(), gamma);
    Ok(fit_ovr_on_kernel(&k, z, y, n_classes, c, gamma, eps, shrinking, None).0)
}

fn check_rows(n: usize) -> Result<(), HeadError> {
    if n > MAX_ROWS {
        return Err(HeadError::BadTrainingData {
            head: "rbf-svm",
            reason: format!(
                "{} training rows would need a {:.1} GB kernel matrix; \
                 use --head linear-svm or logistic for more than {} rows",
                n,
                8.0 * (n as f64).powi(2) / 1e9,
                MAX_ROWS
            ),
        });
    }
    Ok(())
}

/// The dual solution of every one-vs-rest problem of one fit (α per class, per training row)
/// and its C: the warm start of the next, larger C on the same kernel.
#[derive(Debug, Clone)]
pub struct RbfWarm {
    pub c: f64,
    pub alpha: Vec<Vec<f64>>,
}

/// Cross-validation's fast path: fit on training rows `z` whose kernel matrix `k` (for this
/// `gamma`) is already computed, so one kernel serves every C of a gamma. Returns the head, the
/// training-row index of each support vector (the columns of `coef`) and the dual solution.
///
/// `warm`: the solution at a smaller C on the same kernel and rows, the start of SMO (see
/// `smo`: it, or it scaled by C / C_prev, whichever has the lower dual objective) instead of
/// zero; the stopping test is the same, so the optimum reached is the same within tolerance.
pub fn fit_on_kernel(
    k: &Array2<f64>,
    z: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    c: f64,
    gamma: f64,
    warm: Option<&RbfWarm>,
) -> Result<(RbfOvr, Vec<usize>, RbfWarm), HeadError> {
    check_rows(z.nrows())?;
    check_positive(&[("C", c), ("gamma", gamma)])?;
    let p = RbfSvmParams::new().0;
    let (m, sv, alpha) = fit_ovr_on_kernel(
        k,
        z,
        y,
        n_classes,
        c,
        gamma,
        p.eps,
        p.shrinking,
        warm.filter(|w| w.c <= c && w.alpha.len() == n_classes),
    );
    Ok((m, sv, RbfWarm { c, alpha }))
}

#[allow(clippy::too_many_arguments)]
fn fit_ovr_on_kernel(
    k: &Array2<f64>,
    z: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    c: f64,
    gamma: f64,
    eps: f64,
    shrinking: bool,
    warm: Option<&RbfWarm>,
) -> (RbfOvr, Vec<usize>, Vec<Vec<f64>>) {
    let n = z.nrows();
    let sols: Vec<Solution> = (0..n_classes)
        .into_par_iter()
        .map(|cls| {
            let t: Vec<bool> = y.iter().map(|&v| v == cls).collect();
            let init = warm.map(|w| (w.alpha[cls].as_slice(), c / w.c));
            smo(k, &t, c, eps, shrinking, init)
        })
        .collect();
    // Union of support vectors.
    let sv: Vec<usize> = (0..n)
        .filter(|&i| sols.iter().any(|s| s.alpha[i] > 0.0))
        .collect();
    let mut coef = Array2::zeros((n_classes, sv.len()));
    for (cls, s) in sols.iter().enumerate() {
        for (p, &i) in sv.iter().enumerate() {
            let yi = if y[i] == cls { 1.0 } else { -1.0 };
            coef[[cls, p]] = yi * s.alpha[i];
        }
    }
    let model = RbfOvr {
        gamma,
        support_vectors: z.select(Axis(0), &sv),
        coef,
        rho: sols.iter().map(|s| s.rho).collect(),
        convergence: Convergence::all(sols.iter().map(|s| Convergence {
            iterations: s.iterations,
            converged: s.converged,
        })),
    };
    let alpha = sols.into_iter().map(|s| s.alpha).collect();
    (model, sv, alpha)
}

impl RbfOvr {
    pub fn n_classes(&self) -> usize {
        self.coef.nrows()
    }

    /// Decision values from precomputed squared distances `d2` `[n, training rows]` between the
    /// rows to score and the training rows, `sv` the support vectors' training-row indices
    /// (as `fit_on_kernel` returns them).
    pub fn decision_from_sq(&self, d2: &Array2<f64>, sv: &[usize]) -> Array2<f64> {
        let mut k = d2.select(Axis(1), sv);
        k.mapv_inplace(|v| (-self.gamma * v).exp());
        k.dot(&self.coef.t()) - &self.rho
    }

    /// Decision values `[n, classes]`.
    pub fn decision(&self, z: ArrayView2<f32>) -> Array2<f64> {
        let x = z.mapv(|v| v as f64);
        let sv = self.support_vectors.mapv(|v| v as f64);
        let k = rbf_kernel(x.view(), sv.view(), self.gamma);
        k.dot(&self.coef.t()) - &self.rho
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::rbf_svm::RbfSvmParams;

    #[test]
    fn separates_a_ring_from_its_centre() {
        // Class 1: points near the origin; class 0: a ring of radius 3. Not linearly separable.
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..40 {
            let t = i as f32 * 0.157;
            rows.push([3.0 * t.cos(), 3.0 * t.sin()]);
            y.push(0);
            rows.push([0.5 * (t * 3.0).cos(), 0.5 * (t * 5.0).sin()]);
            y.push(1);
        }
        let z = Array2::from_shape_fn((80, 2), |(i, j)| rows[i][j]);
        let ds = DatasetBase::new(z.clone(), Array1::from(y.clone()));
        let m = RbfSvmParams::new().c(10.0).gamma(0.5).fit(&ds).unwrap();
        assert!(m.convergence.converged);
        let s = m.decision(z.view());
        let correct = s
            .outer_iter()
            .zip(&y)
            .filter(|(r, &t)| (if r[1] > r[0] { 1 } else { 0 }) == t)
            .count();
        assert_eq!(correct, 80);
        assert!(m.support_vectors.nrows() < 80);
        // Dual feasibility: 0 <= alpha <= C and Σ y α = 0 for each binary problem.
        for row in m.coef.outer_iter() {
            assert!(row.iter().all(|v| v.abs() <= 10.0 + 1e-9));
            assert!(row.sum().abs() < 1e-6);
        }
    }
}
