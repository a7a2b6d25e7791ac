//! The `linfa` engine of logistic regression (`--engine linfa`): `linfa-logistic`'s
//! multinomial fit, turned into the same saved model as tlearn's own solver (`LogisticModel`),
//! so split, folds, transforms, reports and `head.json` are unchanged.
//!
//! `linfa-logistic` minimises Σ_i loss_i + (alpha/2)|W|²; alpha = 1/C is scikit-learn's
//! `C · Σ loss + ½|W|²`. It does not report its iteration count; convergence is judged here
//! with the criterion of tlearn's solver: the largest gradient entry of the 1/n-scaled
//! objective at the returned weights is at most 1e-4.

use super::LogisticModel;
use crate::error::HeadError;
use crate::fit_info::Convergence;
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Multinomial logistic regression by `linfa-logistic`.
pub fn fit(
    z: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    c: f64,
) -> Result<LogisticModel, HeadError> {
    let x = z.mapv(|v| v as f64);
    let ds = Dataset::new(x.clone(), Array1::from(y.to_vec()));
    let m = MultiLogisticRegression::default()
        .alpha(1.0 / c)
        .max_iterations(1000)
        .fit(&ds)
        .map_err(|e| HeadError::Solver {
            head: "logistic regression (linfa-logistic)",
            reason: e.to_string(),
        })?;
    // linfa's columns follow its sorted class list; map them to 0..n_classes.
    let d = x.ncols();
    let mut weights = Array2::<f32>::zeros((n_classes, d));
    let mut bias = Array1::<f32>::zeros(n_classes);
    for (col, &class) in m.classes().iter().enumerate() {
        weights
            .row_mut(class)
            .assign(&m.params().column(col).mapv(|v| v as f32));
        bias[class] = m.intercept()[col] as f32;
    }
    // Classes absent from the training rows keep zero weights and a very low bias.
    for k in 0..n_classes {
        if !m.classes().contains(&k) {
            bias[k] = -1e4;
        }
    }
    let gmax = logistic_gradient_max(&x, y, &weights, &bias, c);
    Ok(LogisticModel {
        weights,
        bias,
        convergence: Convergence {
            iterations: 0,
            converged: gmax <= 1e-4,
        },
    })
}

/// Largest |gradient| entry of (1/n) Σ softmax loss + |W|²/(2Cn) (the intercept unpenalised).
fn logistic_gradient_max(
    x: &Array2<f64>,
    y: &[usize],
    w: &Array2<f32>,
    b: &Array1<f32>,
    c: f64,
) -> f64 {
    let n = x.nrows() as f64;
    let w64 = w.mapv(|v| v as f64);
    let mut p = x.dot(&w64.t()) + &b.mapv(|v| v as f64);
    for (mut row, &yi) in p.axis_iter_mut(Axis(0)).zip(y) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
        row[yi] -= 1.0;
    }
    let gw = p.t().dot(x) / n + &w64 / (c * n);
    let gb = p.sum_axis(Axis(0)) / n;
    gw.iter().chain(gb.iter()).fold(0.0, |a, v| a.max(v.abs()))
}
