//! The `linfa` engine of the RBF SVM (`--engine linfa`): one `linfa-svm` binary C-SVC per
//! class (one-vs-rest), turned into the same saved model as tlearn's own SMO (`RbfOvr`), so
//! split, folds, transforms, calibration, reports and `head.json` are unchanged.
//!
//! - `linfa-svm`: `gaussian_kernel(1/gamma)` (k = exp(−|x − x'|²/eps)), `pos_neg_weights(C, C)`,
//!   solver tolerance 1e-3 (LIBSVM's and tlearn's; linfa's default 1e-7 only adds time), no
//!   shrinking (linfa's default). linfa-svm 0.8.1 can panic inside its SMO (index out of
//!   bounds, seen on Tux Paint codes at C = 10 with shrinking on); the panic is caught and the
//!   fit reported as failed, so CV marks that candidate failed instead of crashing. Its signed
//!   `alpha` (one per training row) and `rho` give the support vectors and coefficients of
//!   `RbfOvr`; iterations and exit reason come from its serde form.
//! - Multi-class: linfa's `composing::MultiClassModel` predicts the argmax of per-class Platt
//!   probabilities (`Svm<F, Pr>`), a rule tlearn does not use (it can flatten a class and
//!   disagrees with what CV scores; see `calibrate`), and it cannot be serialised (boxed trait
//!   objects); the one-vs-rest loop is therefore written here, and the decision values go
//!   through tlearn's calibration like every other head.

use super::RbfOvr;
use crate::error::HeadError;
use crate::fit_info::Convergence;
use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// One binary problem's signed alphas (one per training row), rho and convergence.
type BinaryFit = (Vec<f64>, f64, Convergence);

/// One-vs-rest RBF SVMs by `linfa-svm`.
pub fn fit(
    z: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    c: f64,
    gamma: f64,
) -> Result<RbfOvr, HeadError> {
    let x = z.mapv(|v| v as f64);
    let params = Svm::<f64, bool>::params()
        .gaussian_kernel(1.0 / gamma)
        .pos_neg_weights(c, c)
        .eps(1e-3)
        .check()
        .map_err(|e| HeadError::Solver {
            head: "RBF SVM (linfa-svm)",
            reason: e.to_string(),
        })?;
    let fits: Vec<Result<BinaryFit, HeadError>> = (0..n_classes)
        .into_par_iter()
        .map(|k| {
            let t: Array1<bool> = y.iter().map(|&v| v == k).collect();
            let ds = Dataset::new(x.clone(), t);
            // linfa-svm 0.8.1's SMO can index out of bounds (measured on Tux Paint codes,
            // C = 10, with shrinking on): a failed fit, not a crash.
            let fitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| params.fit(&ds)))
                .map_err(|p| HeadError::Solver {
                    head: "RBF SVM (linfa-svm)",
                    reason: format!(
                        "linfa-svm panicked: {}",
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("unknown panic")
                    ),
                })?;
            let svm = fitted.map_err(|e| HeadError::Solver {
                head: "RBF SVM (linfa-svm)",
                reason: e.to_string(),
            })?;
            let v = serde_json::to_value(&svm).unwrap_or_default();
            let conv = Convergence {
                iterations: v["iterations"].as_u64().unwrap_or(0) as usize,
                converged: v["exit_reason"] == "ReachedThreshold",
            };
            Ok((svm.alpha.clone(), svm.rho, conv))
        })
        .collect();
    let fits = fits.into_iter().collect::<Result<Vec<_>, _>>()?;
    // linfa-svm keeps a support vector when |alpha| > 100 machine epsilons (`nsupport`).
    let keep = |a: f64| a.abs() > 100.0 * f64::EPSILON;
    let sv: Vec<usize> = (0..x.nrows())
        .filter(|&i| fits.iter().any(|(a, _, _)| keep(a[i])))
        .collect();
    let mut coef = Array2::zeros((n_classes, sv.len()));
    for (k, (a, _, _)) in fits.iter().enumerate() {
        for (s, &i) in sv.iter().enumerate() {
            if keep(a[i]) {
                coef[[k, s]] = a[i];
            }
        }
    }
    Ok(RbfOvr {
        gamma,
        support_vectors: z.select(Axis(0), &sv),
        coef,
        rho: fits.iter().map(|f| f.1).collect(),
        convergence: Convergence::all(fits.iter().map(|f| f.2)),
    })
}
