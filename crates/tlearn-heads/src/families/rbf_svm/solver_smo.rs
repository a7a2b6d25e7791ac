//! One-vs-rest RBF-kernel SVMs (C-SVC) solved by SMO with LIBSVM's second-order working-set
//! selection (Fan, Chen & Lin 2005) and its shrinking heuristic, on a Gram matrix computed once
//! per training set and shared by all classes. Cross-validation walks each gamma's C values in
//! ascending order and starts each fit from the previous C's dual solution
//! ([`fit_on_kernel`]'s warm start).
//!
//! Why not linfa-svm: it recomputes the n×n kernel element by element for every binary problem
//! (74% of the time in `KernelMethod::distance` by `perf`), ten times per fold for ten classes,
//! which made 5-fold CV of one (C, gamma) on 1,438 digits take ~5 s against scikit-learn's
//! fraction of a second. Here the Gram matrix comes from one matrix product.
//! The kernel matrix is dense (8·n² bytes), so this head is for small training sets.

//!
//! linfa's interface: `RbfSvmParams` (unchecked, `ParamGuard`) → `RbfSvmValidParams` (`Fit` on
//! a `DatasetBase` of codes and class indices) → `RbfOvr` (`PredictInplace`: decision values
//! `[n, classes]`).

use crate::error::{check_positive, HeadError};
use crate::fit_info::{classes_of, Convergence};
use crate::logistic::not_recorded;
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, PredictInplace};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array1, Array2, ArrayBase, ArrayView2, Axis, Data, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Checked hyper-parameters and solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RbfSvmValidParams {
    c: f64,
    gamma: Option<f64>,
    eps: f64,
    shrinking: bool,
    n_classes: Option<usize>,
}

/// Unchecked hyper-parameters (linfa's `ParamGuard` pattern):
/// `RbfSvmParams::new().c(1.0).gamma(1e-3)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RbfSvmParams(RbfSvmValidParams);

impl Default for RbfSvmParams {
    fn default() -> Self {
        Self::new()
    }
}

impl RbfSvmParams {
    /// C = 1, gamma = 1 / dimension, stopping tolerance 1e-3, shrinking on (LIBSVM's).
    pub fn new() -> Self {
        RbfSvmParams(RbfSvmValidParams {
            c: 1.0,
            gamma: None,
            eps: 1e-3,
            shrinking: true,
            n_classes: None,
        })
    }
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }
    /// Kernel width: `k(x, x') = exp(-gamma |x - x'|²)`.
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.0.gamma = Some(gamma);
        self
    }
    /// SMO stopping tolerance on the maximal KKT violation.
    pub fn eps(mut self, eps: f64) -> Self {
        self.0.eps = eps;
        self
    }
    /// LIBSVM's shrinking heuristic (`-h`): same optimum, fewer rows touched per iteration.
    pub fn shrinking(mut self, on: bool) -> Self {
        self.0.shrinking = on;
        self
    }
    /// Number of classes (default: largest label + 1).
    pub fn n_classes(mut self, k: usize) -> Self {
        self.0.n_classes = Some(k);
        self
    }
}

impl ParamGuard for RbfSvmParams {
    type Checked = RbfSvmValidParams;
    type Error = HeadError;
    fn check_ref(&self) -> Result<&RbfSvmValidParams, HeadError> {
        let p = &self.0;
        check_positive(&[
            ("C", p.c),
            ("gamma", p.gamma.unwrap_or(1.0)),
            ("eps", p.eps),
        ])?;
        Ok(p)
    }
    fn check(self) -> Result<RbfSvmValidParams, HeadError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

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

/// Above this many training rows the n×n kernel matrix gets too large.
pub const MAX_ROWS: usize = 12_000;

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

/// `exp(−gamma |a_i − b_j|²)` for all pairs, `[a.rows, b.rows]`.
pub fn rbf_kernel(a: ArrayView2<f64>, b: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    let mut k = sq_distances(a, b);
    exp_in_place(&mut k, gamma);
    k
}

fn exp_in_place(d2: &mut Array2<f64>, gamma: f64) {
    d2.par_mapv_inplace(|v| (-gamma * v).exp());
}

struct Solution {
    alpha: Vec<f64>,
    rho: f64,
    iterations: usize,
    converged: bool,
}

/// `G_t = y_t Σ_s y_s α_s K_ts − 1` for the rows `rows` (the gradient of ½αᵀQα − eᵀα), over the
/// non-zero α only.
fn gradient_rows(k: &Array2<f64>, ys: &[f64], alpha: &[f64], rows: &[usize], g: &mut [f64]) {
    let nz: Vec<(usize, f64)> = alpha
        .iter()
        .enumerate()
        .filter(|(_, &a)| a > 0.0)
        .map(|(s, &a)| (s, ys[s] * a))
        .collect();
    for &t in rows {
        let kt = k.row(t);
        let kt = kt.as_slice().expect("standard layout");
        let mut acc = 0.0;
        for &(s, ya) in &nz {
            acc += ya * kt[s];
        }
        g[t] = ys[t] * acc - 1.0;
    }
}

/// Binary C-SVC on a precomputed kernel `k` with labels `y` (true = +1), LIBSVM's SMO with its
/// shrinking heuristic (`-h 1`): rows bounded at 0 or C whose gradient says they will stay
/// there leave the active set, so selection and gradient updates touch fewer rows; before
/// stopping, the gradient of the shrunk rows is rebuilt and optimality is checked on all rows.
/// `init`: the solution at a smaller C on the same kernel and labels, and C / C_prev. Both it
/// and it scaled by C / C_prev are feasible at C (0 ≤ α ≤ C, Σ y α = 0); SMO starts from the
/// one with the lower dual objective (the scaled one where the smaller C under-fitted and most
/// α sat at the bound, the unscaled one on a plateau where no α did) instead of from zero. The
/// stopping test is the same, so the optimum reached is the same within `eps`.
fn smo(
    k: &Array2<f64>,
    y: &[bool],
    c: f64,
    eps: f64,
    shrinking: bool,
    init: Option<(&[f64], f64)>,
) -> Solution {
    let n = y.len();
    let ys: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { -1.0 }).collect();
    let mut alpha = vec![0.0f64; n];
    let mut g = vec![-1.0f64; n]; // gradient of ½αᵀQα − eᵀα
    if let Some((prev, scale)) = init.filter(|(a, _)| a.len() == n) {
        let all: Vec<usize> = (0..n).collect();
        let mut best = 0.0; // the objective at α = 0
        for s in [1.0, scale] {
            let a: Vec<f64> = prev.iter().map(|v| (v * s).clamp(0.0, c)).collect();
            let mut ga = vec![0.0; n];
            gradient_rows(k, &ys, &a, &all, &mut ga);
            // ½αᵀQα − eᵀα = ½ Σ α_t (G_t − 1)
            let obj: f64 = 0.5 * a.iter().zip(&ga).map(|(a, g)| a * (g - 1.0)).sum::<f64>();
            if obj < best {
                best = obj;
                alpha = a;
                g = ga;
            }
        }
    }
    let tau = 1e-12;
    let max_iter = (100 * n).max(10_000_000);
    let diag: Vec<f64> = (0..n).map(|t| k[[t, t]]).collect();
    let upper = |a: f64| a >= c;
    let lower = |a: f64| a <= 0.0;
    // perm[..active] are the rows still in the problem.
    let mut perm: Vec<usize> = (0..n).collect();
    let mut active = n;
    let mut unshrunk = false;
    let shrink_every = n.min(1000);
    let mut counter = shrink_every + 1;
    let mut iterations = 0;
    let mut converged = false;
    // Rebuild the gradient of the shrunk rows and make every row active again.
    let reactivate = |perm: &[usize], active: &mut usize, alpha: &[f64], g: &mut [f64]| {
        if *active < n {
            gradient_rows(k, &ys, alpha, &perm[*active..], g);
            *active = n;
        }
    };
    // Working-set selection over the active rows: (i, j), or None when optimal within eps.
    let select = |perm: &[usize], active: usize, alpha: &[f64], g: &[f64]| {
        // i: maximal violating −y_t G_t over I_up.
        let mut gmax = f64::NEG_INFINITY;
        let mut i = usize::MAX;
        for &t in &perm[..active] {
            let in_up = if ys[t] > 0.0 {
                !upper(alpha[t])
            } else {
                !lower(alpha[t])
            };
            if in_up && -ys[t] * g[t] >= gmax {
                gmax = -ys[t] * g[t];
                i = t;
            }
        }
        if i == usize::MAX {
            return None;
        }
        // j by the second-order gain.
        let ki = k.row(i);
        let ki = ki.as_slice().expect("standard layout");
        let kii = ki[i];
        let mut gmax2 = f64::NEG_INFINITY;
        let mut j = usize::MAX;
        let mut best = f64::INFINITY;
        for &t in &perm[..active] {
            let in_low = if ys[t] > 0.0 {
                !lower(alpha[t])
            } else {
                !upper(alpha[t])
            };
            if !in_low {
                continue;
            }
            let v = ys[t] * g[t];
            if v >= gmax2 {
                gmax2 = v;
            }
            let grad_diff = gmax + v;
            if grad_diff > 0.0 {
                let mut quad = kii + diag[t] - 2.0 * ki[t];
                if quad <= 0.0 {
                    quad = tau;
                }
                let obj = -(grad_diff * grad_diff) / quad;
                if obj <= best {
                    best = obj;
                    j = t;
                }
            }
        }
        if gmax + gmax2 < eps || j == usize::MAX {
            None
        } else {
            Some((i, j))
        }
    };
    while iterations < max_iter {
        if shrinking {
            counter -= 1;
            if counter == 0 {
                counter = shrink_every;
                // LIBSVM's do_shrinking: the largest violations on each side...
                let (mut gm1, mut gm2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
                for &t in &perm[..active] {
                    if ys[t] > 0.0 {
                        if !upper(alpha[t]) {
                            gm1 = gm1.max(-g[t]);
                        }
                        if !lower(alpha[t]) {
                            gm2 = gm2.max(g[t]);
                        }
                    } else {
                        if !upper(alpha[t]) {
                            gm2 = gm2.max(-g[t]);
                        }
                        if !lower(alpha[t]) {
                            gm1 = gm1.max(g[t]);
                        }
                    }
                }
                // ...once close to the optimum, one full gradient rebuild...
                if !unshrunk && gm1 + gm2 <= eps * 10.0 {
                    unshrunk = true;
                    reactivate(&perm, &mut active, &alpha, &mut g);
                }
                // ...then rows at a bound that the gradient pushes further out leave.
                let be_shrunk = |t: usize| {
                    if upper(alpha[t]) {
                        -g[t] > if ys[t] > 0.0 { gm1 } else { gm2 }
                    } else if lower(alpha[t]) {
                        g[t] > if ys[t] > 0.0 { gm2 } else { gm1 }
                    } else {
                        false
                    }
                };
                let mut s = 0;
                while s < active {
                    if be_shrunk(perm[s]) {
                        active -= 1;
                        perm.swap(s, active);
                    } else {
                        s += 1;
                    }
                }
            }
        }
        let (i, j) = match select(&perm, active, &alpha, &g) {
            Some(ij) => ij,
            None if active == n => {
                converged = true;
                break;
            }
            None => {
                // Optimal on the active rows: check on all of them.
                reactivate(&perm, &mut active, &alpha, &mut g);
                match select(&perm, active, &alpha, &g) {
                    Some(ij) => {
                        counter = 1; // shrink again at the next iteration
                        ij
                    }
                    None => {
                        converged = true;
                        break;
                    }
                }
            }
        };
        iterations += 1;
        let ki = k.row(i);
        let ki = ki.as_slice().expect("standard layout");
        let kj = k.row(j);
        let kj = kj.as_slice().expect("standard layout");
        let kii = ki[i];
        let (yi, yj) = (ys[i], ys[j]);
        let qij = yi * yj * ki[j];
        let (oi, oj) = (alpha[i], alpha[j]);
        if yi != yj {
            let mut quad = kii + kj[j] + 2.0 * qij;
            if quad <= 0.0 {
                quad = tau;
            }
            let delta = (-g[i] - g[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let mut quad = kii + kj[j] - 2.0 * qij;
            if quad <= 0.0 {
                quad = tau;
            }
            let delta = (g[i] - g[j]) / quad;
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > c {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = sum - c;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > c {
                if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = sum - c;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let (di, dj) = (alpha[i] - oi, alpha[j] - oj);
        // G_t += Q_ti Δα_i + Q_tj Δα_j with Q_ts = y_t y_s K_ts, on the active rows.
        let (ci, cj) = (yi * di, yj * dj);
        for &t in &perm[..active] {
            g[t] += ys[t] * (ci * ki[t] + cj * kj[t]);
        }
    }
    // Stopped by max_iter with rows shrunk: their gradient is stale.
    reactivate(&perm, &mut active, &alpha, &mut g);
    // rho: mean of y G over free variables, else the middle of the feasible interval.
    let (mut ub, mut lb, mut sum, mut nfree) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..n {
        let yg = ys[t] * g[t];
        if upper(alpha[t]) {
            if ys[t] < 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else if lower(alpha[t]) {
            if ys[t] > 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else {
            nfree += 1;
            sum += yg;
        }
    }
    let rho = if nfree > 0 {
        sum / nfree as f64
    } else {
        (ub + lb) / 2.0
    };
    Solution {
        alpha,
        rho,
        iterations,
        converged,
    }
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

/// Squared Euclidean distances `|a_i − b_j|²` for all pairs, `[a.rows, b.rows]` (clamped at 0),
/// the part of the RBF kernel that does not depend on gamma.
pub fn sq_distances(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    let na: Array1<f64> = a.rows().into_iter().map(|r| r.dot(&r)).collect();
    let nb: Array1<f64> = b.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut k = a.dot(&b.t());
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(na.as_slice().expect("contiguous").par_iter())
        .for_each(|(mut row, &ai)| {
            for (v, &bj) in row.iter_mut().zip(nb.iter()) {
                *v = (ai + bj - 2.0 * *v).max(0.0);
            }
        });
    k
}

/// `exp(−gamma · d2)` elementwise: a kernel from precomputed squared distances.
pub fn kernel_from_sq(d2: &Array2<f64>, gamma: f64) -> Array2<f64> {
    let mut k = d2.clone();
    exp_in_place(&mut k, gamma);
    k
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
    use ndarray::array;

    #[test]
    fn kernel_matches_definition() {
        let a = array![[0.0, 1.0], [2.0, -1.0]];
        let b = array![[1.0, 1.0]];
        let k = rbf_kernel(a.view(), b.view(), 0.5);
        assert!((k[[0, 0]] - (-0.5f64).exp()).abs() < 1e-12);
        assert!((k[[1, 0]] - (-0.5f64 * 5.0).exp()).abs() < 1e-12);
    }

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
