//! The fitted one-vs-rest linear SVM and its linfa interface: `LinearSvmValidParams` fits it
//! (`Fit` on a `DatasetBase` of codes and class indices, `FitWith` from a smaller C's dual
//! solution) and it predicts decision values `[n, classes]` (`PredictInplace`).

use super::hyperparams::LinearSvmValidParams;
use super::solver_dcd::{train_binary_from, BinaryLinear};
use crate::error::HeadError;
use crate::families::logistic::classification::{linear_decision, not_recorded};
use crate::fit_info::{classes_of, Convergence};
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, FitWith, PredictInplace};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayBase, ArrayView2, Data, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Fitted one-vs-rest linear SVMs: score_c = w_c·x + b_c.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinearSvmModel {
    /// `[classes, d]`
    pub weights: Array2<f32>,
    /// `[classes]`
    pub bias: Array1<f32>,
    /// How the solvers stopped (kept in head.json's `fit`, not here).
    #[serde(skip, default = "not_recorded")]
    pub convergence: Convergence,
}

impl<D, T> Fit<ArrayBase<D, Ix2>, T, HeadError> for LinearSvmValidParams
where
    D: Data<Elem = f32>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = LinearSvmModel;
    fn fit(&self, ds: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<LinearSvmModel, HeadError> {
        let (x, y, k) = classes_of("linear SVM", ds, self.n_classes)?;
        let (weights, bias, models) = train_ovr(x, &y, k, self);
        Ok(LinearSvmModel {
            weights,
            bias,
            convergence: Convergence::all(models.iter().map(|m| Convergence {
                iterations: m.iterations,
                converged: m.converged,
            })),
        })
    }
}

impl<D: Data<Elem = f32>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for LinearSvmModel {
    /// Decision values `[n, classes]`.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        linear_decision(x, &self.weights, &self.bias, y);
    }
    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), self.weights.nrows()))
    }
}

/// The dual solutions of one one-vs-rest fit (α per class, per training row) and its C: the
/// warm start of the next, larger C on the same rows.
#[derive(Debug, Clone)]
pub struct LinearWarm {
    pub c: f64,
    pub alpha: Vec<Vec<f64>>,
}

impl<'a, D, T> FitWith<'a, ArrayBase<D, Ix2>, T, HeadError> for LinearSvmValidParams
where
    D: Data<Elem = f32> + 'a,
    T: AsSingleTargets<Elem = usize> + 'a,
{
    /// The dual solution of a smaller C on the same rows (ignored otherwise).
    type ObjectIn = Option<&'a LinearWarm>;
    /// The model and its dual solution, the start of the next C.
    type ObjectOut = (LinearSvmModel, LinearWarm);

    /// Cross-validation's path along C: fit with C = `self.c` starting from `warm`, as
    /// LIBLINEAR's parameter search does.
    fn fit_with(
        &self,
        warm: Option<&'a LinearWarm>,
        ds: &'a DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<(LinearSvmModel, LinearWarm), HeadError> {
        let (x, y, k) = classes_of("linear SVM", ds, self.n_classes)?;
        let warm = warm.filter(|w| w.c <= self.c && w.alpha.len() == k);
        let (weights, bias, models, alpha) = train_ovr_from(x, &y, k, self, warm);
        Ok((
            LinearSvmModel {
                weights,
                bias,
                convergence: Convergence::all(models.iter().map(|m| Convergence {
                    iterations: m.iterations,
                    converged: m.converged,
                })),
            },
            LinearWarm { c: self.c, alpha },
        ))
    }
}

/// One-vs-rest linear SVM: returns weights `[classes, d]` and biases `[classes]`.
/// Classes are trained in parallel.
fn train_ovr(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    p: &LinearSvmValidParams,
) -> (Array2<f32>, Array1<f32>, Vec<BinaryLinear>) {
    let (w, b, models, _) = train_ovr_from(x, y, n_classes, p, None);
    (w, b, models)
}

type OvrFit = (Array2<f32>, Array1<f32>, Vec<BinaryLinear>, Vec<Vec<f64>>);

fn train_ovr_from(
    x: ArrayView2<f32>,
    y: &[usize],
    n_classes: usize,
    p: &LinearSvmValidParams,
    warm: Option<&LinearWarm>,
) -> OvrFit {
    let xs = x.as_standard_layout();
    let data = xs.as_slice().expect("standard layout");
    let d = x.ncols();
    let (models, alpha): (Vec<BinaryLinear>, Vec<Vec<f64>>) = (0..n_classes)
        .into_par_iter()
        .map(|c| {
            let yc: Vec<bool> = y.iter().map(|&v| v == c).collect();
            let mut pc = *p;
            pc.seed = p.seed.wrapping_add(c as u64);
            train_binary_from(data, d, &yc, &pc, warm.map(|w| w.alpha[c].as_slice()))
        })
        .unzip();
    let mut w = Array2::zeros((n_classes, d));
    let mut b = Array1::zeros(n_classes);
    for (c, m) in models.iter().enumerate() {
        w.row_mut(c).assign(&Array1::from(m.w.clone()));
        b[c] = m.b;
    }
    (w, b, models, alpha)
}
