//! Each solver against its optimum, on the real UCI digits (standardised): the optimality
//! (KKT) conditions of the problem it claims to solve, not only "the classes separate".
//! - logistic regression (L-BFGS): the gradient of scikit-learn's objective vanishes;
//! - linear SVM (dual coordinate descent): the gradient of the primal squared-hinge objective
//!   (LIBLINEAR / `LinearSVC`, bias as a regularised constant feature) vanishes;
//! - RBF SVM (SMO): the dual KKT conditions hold for every training row and class.

mod common;

use common::*;
use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};
use tlearn_heads::families::linear_svm::LinearSvmParams;
use tlearn_heads::families::logistic::LogisticParams;
use tlearn_heads::families::rbf_svm::RbfSvmParams;
use tlearn_heads::transform::{Scaling, Transform};

fn standardised_digits() -> (Array2<f32>, Vec<usize>) {
    let (x, labels) = digits();
    let y = labels
        .iter()
        .map(|l| l.trim_start_matches("class").parse().unwrap())
        .collect();
    let t = Transform::fit(x.view(), Scaling::Standard, None).unwrap();
    (t.apply(x.view()).unwrap(), y)
}

#[test]
fn logistic_lbfgs_reaches_a_stationary_point_of_the_objective() {
    let (z, y) = standardised_digits();
    let (n, d, k, c) = (z.nrows(), z.ncols(), 10, 1.0);
    // linfa's interface: checked parameters, `Fit` on a data set, `Predict` of decision values.
    let ds = Dataset::new(z.clone(), Array1::from(y.clone()));
    let m = LogisticParams::new().c(c).tol(1e-4).fit(&ds).unwrap();
    let (w, b, iters) = (&m.weights, &m.bias, m.convergence.iterations);
    assert!(m.convergence.converged);
    let s: Array2<f64> = m.predict(&z);
    assert_eq!(s.dim(), (n, k));
    // Gradient of (1/n) Σ [logsumexp(W x + b) − (W x + b)_y] + |W|² / (2 C n).
    let z64 = z.mapv(|v| v as f64);
    let (w64, b64) = (w.mapv(|v| v as f64), b.mapv(|v| v as f64));
    let mut r = z64.dot(&w64.t()) + &b64; // [n, k]
    let mut loss = 0.0;
    for (mut row, &yi) in r.axis_iter_mut(Axis(0)).zip(&y) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
        loss -= row[yi].ln();
        row[yi] -= 1.0;
    }
    let gw = r.t().dot(&z64) / n as f64 + &w64 / (c * n as f64);
    let gb = r.sum_axis(Axis(0)) / n as f64;
    let gmax = gw
        .iter()
        .chain(gb.iter())
        .fold(0.0f64, |a, v| a.max(v.abs()));
    let objective = loss / n as f64 + w64.iter().map(|v| v * v).sum::<f64>() / (2.0 * c * n as f64);
    eprintln!("logistic: {iters} iterations, objective {objective:.6}, max |gradient| {gmax:.2e} ({d} features)");
    assert!(
        gmax < 2e-4,
        "max |gradient| {gmax:.3e} at the returned weights"
    );
}

#[test]
fn linear_svm_dual_cd_reaches_the_primal_optimum() {
    let (z, y) = standardised_digits();
    let d = z.ncols();
    let data = z.as_standard_layout().to_owned();
    let x = data.as_slice().unwrap();
    for (class, c) in [(3usize, 0.1f64), (8, 1.0)] {
        let yb: Vec<bool> = y.iter().map(|&v| v == class).collect();
        let p = LinearSvmParams::new()
            .c(c)
            .tol(1e-4)
            .max_iter(10_000)
            .seed(1)
            .check()
            .unwrap();
        let m = tlearn_heads::families::linear_svm::train_binary(x, d, &yb, &p);
        check_primal_optimum(&format!("class {class}"), x, d, &yb, c, &m);
    }
}

/// Cross-validation's warm start along C (each C starts from the previous C's dual solution)
/// reaches the same primal optimum as a fit from zero, in fewer passes over the path.
#[test]
fn linear_svm_warm_start_along_c_reaches_the_primal_optimum() {
    use tlearn_heads::families::linear_svm::train_binary_from;
    let (z, y) = standardised_digits();
    let d = z.ncols();
    let data = z.as_standard_layout().to_owned();
    let x = data.as_slice().unwrap();
    let yb: Vec<bool> = y.iter().map(|&v| v == 8).collect();
    let (mut warm, mut warm_passes, mut cold_passes) = (None::<Vec<f64>>, 0, 0);
    for c in [0.001, 0.01, 0.1, 1.0] {
        let p = LinearSvmParams::new()
            .c(c)
            .tol(1e-4)
            .max_iter(10_000)
            .seed(1)
            .check()
            .unwrap();
        let (m, alpha) = train_binary_from(x, d, &yb, &p, warm.as_deref());
        check_primal_optimum(&format!("warm C={c}"), x, d, &yb, c, &m);
        let cold = train_binary_from(x, d, &yb, &p, None).0;
        warm_passes += m.iterations;
        cold_passes += cold.iterations;
        warm = Some(alpha);
    }
    eprintln!("linear SVM passes along the C path: warm {warm_passes}, cold {cold_passes}");
    assert!(warm_passes < cold_passes);
}

/// The gradient of the primal squared-hinge objective (LIBLINEAR / `LinearSVC`, bias as a
/// regularised constant feature) vanishes at `m`.
fn check_primal_optimum(
    what: &str,
    x: &[f32],
    d: usize,
    yb: &[bool],
    c: f64,
    m: &tlearn_heads::families::linear_svm::BinaryLinear,
) {
    let n = yb.len();
    assert!(
        m.converged,
        "{what}: not converged in {} passes",
        m.iterations
    );
    // Primal: ½|w̃|² + C Σ max(0, 1 − y w̃·x̃)², x̃ = (x, 1). Gradient: w̃ − 2C Σ ξ_i y_i x̃_i.
    let mut g: Vec<f64> = m.w.iter().map(|&v| v as f64).chain([m.b as f64]).collect();
    let mut primal = 0.5 * g.iter().map(|v| v * v).sum::<f64>();
    for i in 0..n {
        let r = &x[i * d..(i + 1) * d];
        let f: f64 = r
            .iter()
            .zip(&m.w)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum::<f64>()
            + m.b as f64;
        let yi = if yb[i] { 1.0 } else { -1.0 };
        let xi = (1.0 - yi * f).max(0.0);
        primal += c * xi * xi;
        for j in 0..d {
            g[j] -= 2.0 * c * xi * yi * r[j] as f64;
        }
        g[d] -= 2.0 * c * xi * yi;
    }
    let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let wnorm = m.w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    eprintln!(
        "linear SVM {what} C={c}: {} passes, primal {primal:.5}, |gradient| {gnorm:.2e}, |w| {wnorm:.3}",
        m.iterations
    );
    assert!(
        gnorm < 1e-2 * wnorm.max(1.0),
        "{what}: primal gradient {gnorm:.3e} against |w| {wnorm:.3}"
    );
}

#[test]
fn rbf_smo_satisfies_the_dual_kkt_conditions() {
    let (z, y) = standardised_digits();
    let (c, gamma) = (1.0, 1.0 / 64.0);
    let ds = Dataset::new(z.clone(), Array1::from(y.clone()));
    let m = RbfSvmParams::new().c(c).gamma(gamma).fit(&ds).unwrap();
    assert!(m.convergence.converged);
    check_kkt("tlearn SMO", &z, &y, &m, c);
}

/// The `linfa` engine's RBF SVM (linfa-svm, converted to tlearn's `RbfOvr`) solves the same
/// problem: the converted coefficients and offsets satisfy the same KKT conditions.
#[test]
fn linfa_svm_engine_satisfies_the_dual_kkt_conditions() {
    let (z, y) = standardised_digits();
    let (c, gamma) = (1.0, 1.0 / 64.0);
    let m = tlearn_heads::families::rbf_svm::linfa_svm::fit(z.view(), &y, 10, c, gamma).unwrap();
    assert!(m.convergence.converged, "{:?}", m.convergence);
    check_kkt("linfa-svm", &z, &y, &m, c);
}

fn check_kkt(
    what: &str,
    z: &Array2<f32>,
    y: &[usize],
    m: &tlearn_heads::families::rbf_svm::RbfOvr,
    c: f64,
) {
    let f = m.decision(z.view()); // [n, classes]
                                  // Map training rows to their support-vector column (support vectors are training rows).
    let sv_of: Vec<Option<usize>> = z
        .outer_iter()
        .map(|r| m.support_vectors.outer_iter().position(|s| s == r))
        .collect();
    let tol = 2e-3;
    let mut worst = 0.0f64;
    for k in 0..10 {
        let coef = m.coef.row(k);
        // Σ y_i α_i = 0 and 0 ≤ α ≤ C.
        assert!(coef.sum().abs() < 1e-6, "class {k}: Σ y α = {}", coef.sum());
        for (i, &yi) in y.iter().enumerate() {
            let ys = if yi == k { 1.0 } else { -1.0 };
            let alpha = sv_of[i].map(|s| coef[s] * ys).unwrap_or(0.0);
            assert!(
                (-1e-12..=c + 1e-12).contains(&alpha),
                "class {k} row {i}: α = {alpha}"
            );
            let margin = ys * f[[i, k]];
            // α = 0 ⇒ y f ≥ 1; 0 < α < C ⇒ y f = 1; α = C ⇒ y f ≤ 1 (within the stopping tolerance).
            let violation = if alpha <= 0.0 {
                (1.0 - margin).max(0.0)
            } else if alpha >= c {
                (margin - 1.0).max(0.0)
            } else {
                (margin - 1.0).abs()
            };
            worst = worst.max(violation);
        }
    }
    eprintln!(
        "RBF {what}: {} support vectors, worst KKT violation {worst:.2e}",
        m.support_vectors.nrows()
    );
    assert!(worst < tol, "worst KKT violation {worst:.3e}");
}

/// The SMO's shrinking heuristic and its warm start along C (cross-validation's path: each C
/// starts from the previous C's solution scaled up) reach the optimum of the plain solver
/// (no shrinking, from zero): on the real digits, for each C of a path, both satisfy the dual
/// KKT conditions and their decision values agree to the stopping tolerance's order (so at
/// most a near-tie in a thousand rows can flip).
#[test]
fn rbf_smo_shrinking_and_warm_start_reach_the_plain_optimum() {
    use tlearn_heads::families::rbf_svm::{fit_on_kernel, rbf_kernel};
    let (z, y) = standardised_digits();
    let gamma = 1.0 / 64.0;
    let x = z.mapv(|v| v as f64);
    let k = rbf_kernel(x.view(), x.view(), gamma);
    let ds = Dataset::new(z.clone(), Array1::from(y.clone()));
    let mut warm = None;
    let mut warm_iterations = 0;
    let mut cold_iterations = 0;
    for c in [0.01, 0.1, 1.0, 10.0, 100.0] {
        let plain = RbfSvmParams::new()
            .c(c)
            .gamma(gamma)
            .shrinking(false)
            .fit(&ds)
            .unwrap();
        let shrunk = RbfSvmParams::new().c(c).gamma(gamma).fit(&ds).unwrap();
        let (path, _, solution) =
            fit_on_kernel(&k, z.view(), &y, 10, c, gamma, warm.as_ref()).unwrap();
        let cold = fit_on_kernel(&k, z.view(), &y, 10, c, gamma, None)
            .unwrap()
            .0;
        warm = Some(solution);
        for (what, m) in [("shrinking", &shrunk), ("warm start", &path)] {
            assert!(m.convergence.converged, "{what} at C = {c}");
            check_kkt(what, &z, &y, m, c);
            let (a, b) = (plain.decision(z.view()), m.decision(z.view()));
            let worst = (&a - &b).iter().fold(0.0f64, |w, v| w.max(v.abs()));
            assert!(
                worst < 5e-3,
                "{what} at C = {c}: decision values differ by {worst:.2e}"
            );
            let same = a
                .outer_iter()
                .zip(b.outer_iter())
                .filter(|(r, s)| argmax(r) == argmax(s))
                .count();
            // Two optima within the stopping tolerance may order a near-tie differently.
            assert!(
                z.nrows() - same <= z.nrows() / 1000,
                "{what} at C = {c}: {} predictions changed",
                z.nrows() - same
            );
        }
        warm_iterations += path.convergence.iterations;
        cold_iterations += cold.convergence.iterations;
    }
    eprintln!("SMO iterations along the C path (largest class): warm {warm_iterations}, cold {cold_iterations}");
    assert!(warm_iterations < cold_iterations);
}

fn argmax(r: &ndarray::ArrayView1<f64>) -> usize {
    (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()
}
