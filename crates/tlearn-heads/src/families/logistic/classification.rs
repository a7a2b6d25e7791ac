//! The fitted multinomial logistic regression and its linfa interface: `LogisticValidParams`
//! fits it (`Fit` on a `DatasetBase` of codes and class indices, `FitWith` from the model of a
//! smaller C) and it predicts decision values `[n, classes]` (`PredictInplace`).

use super::hyperparams::LogisticValidParams;
use super::solver_lbfgs;
use crate::error::HeadError;
use crate::fit_info::{classes_of, Convergence};
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, FitWith, PredictInplace};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayBase, Data, Ix2, Zip};
use serde::{Deserialize, Serialize};

/// A fitted multinomial logistic regression: scores = x·Wᵀ + b, probabilities = softmax.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogisticModel {
    /// `[classes, d]`
    pub weights: Array2<f32>,
    /// `[classes]`
    pub bias: Array1<f32>,
    /// How the solver stopped (kept in head.json's `fit`, not here).
    #[serde(skip, default = "not_recorded")]
    pub convergence: Convergence,
}

pub(crate) fn not_recorded() -> Convergence {
    Convergence {
        iterations: 0,
        converged: true,
    }
}

impl<D, T> Fit<ArrayBase<D, Ix2>, T, HeadError> for LogisticValidParams
where
    D: Data<Elem = f32>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = LogisticModel;
    fn fit(&self, ds: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<LogisticModel, HeadError> {
        let (x, y, k) = classes_of("logistic regression", ds, self.n_classes)?;
        let (weights, bias, convergence) = solver_lbfgs::fit(x, &y, k, self, None)?;
        Ok(LogisticModel {
            weights,
            bias,
            convergence,
        })
    }
}

/// `x · Wᵀ + b` as f64, the decision values of the linear heads.
pub(crate) fn linear_decision<D: Data<Elem = f32>>(
    x: &ArrayBase<D, Ix2>,
    weights: &Array2<f32>,
    bias: &Array1<f32>,
    y: &mut Array2<f64>,
) {
    let s = x.dot(&weights.t()) + bias;
    Zip::from(y).and(&s).for_each(|o, &v| *o = v as f64);
}

impl<D: Data<Elem = f32>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for LogisticModel {
    /// Decision values `[n, classes]`.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        linear_decision(x, &self.weights, &self.bias, y);
    }
    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), self.weights.nrows()))
    }
}

impl<'a, D, T> FitWith<'a, ArrayBase<D, Ix2>, T, HeadError> for LogisticValidParams
where
    D: Data<Elem = f32> + 'a,
    T: AsSingleTargets<Elem = usize> + 'a,
{
    /// The model of the previous (smaller) C on the same rows; one of another shape is ignored.
    type ObjectIn = Option<&'a LogisticModel>;
    type ObjectOut = LogisticModel;

    /// Cross-validation's warm start along a C path (as scikit-learn's
    /// `logistic_regression_path`): fit starting from `start` instead of from zero. Same
    /// objective and stopping test as the cold fit; only the number of iterations changes.
    fn fit_with(
        &self,
        start: Option<&'a LogisticModel>,
        ds: &'a DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<LogisticModel, HeadError> {
        let (x, y, k) = classes_of("logistic regression", ds, self.n_classes)?;
        let init = start
            .filter(|m| m.weights.dim() == (k, x.ncols()) && m.bias.len() == k)
            .map(|m| {
                let d = x.ncols();
                let mut theta = vec![0.0; d * k + k];
                for j in 0..d {
                    for cls in 0..k {
                        theta[j * k + cls] = m.weights[[cls, j]] as f64;
                    }
                }
                for cls in 0..k {
                    theta[d * k + cls] = m.bias[cls] as f64;
                }
                theta
            });
        let (weights, bias, convergence) = solver_lbfgs::fit(x, &y, k, self, init)?;
        Ok(LogisticModel {
            weights,
            bias,
            convergence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::logistic::LogisticParams;
    use linfa::ParamGuard;
    use ndarray::{array, ArrayView2};

    fn fit_warm(
        z: ArrayView2<f32>,
        y: &[usize],
        c: f64,
        start: Option<&LogisticModel>,
    ) -> Result<LogisticModel, HeadError> {
        let p = LogisticParams::new().c(c).n_classes(3).check()?;
        p.fit_with(start, &DatasetBase::new(z, ndarray::ArrayView1::from(y)))
    }

    /// A warm start reaches the cold fit's optimum (same decision values), and a start at the
    /// optimum itself stops at once. (Fewer iterations along a real C path is measured, not
    /// promised: on Fashion-MNIST codes 57/30/14 against 88/76/42 at C = 0.01/0.1/1.)
    #[test]
    fn warm_start_reaches_the_cold_optimum() {
        // Overlapping 3-class data in 4 dimensions.
        let n = 90;
        let z = Array2::from_shape_fn((n, 4), |(i, j)| {
            let cls = (i % 3) as f32;
            cls * if j == 0 { 1.0 } else { 0.3 } + ((i * 7 + j * 5) % 13) as f32 * 0.15
        });
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let cold = fit_warm(z.view(), &y, 10.0, None).unwrap();
        let prev = fit_warm(z.view(), &y, 1.0, None).unwrap();
        let warm = fit_warm(z.view(), &y, 10.0, Some(&prev)).unwrap();
        assert!(cold.convergence.converged && warm.convergence.converged);
        let (sc, sw): (Array2<f64>, Array2<f64>) = (
            linfa::traits::Predict::predict(&cold, &z),
            linfa::traits::Predict::predict(&warm, &z),
        );
        let worst = sc
            .iter()
            .zip(sw.iter())
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 0.05, "decision values differ by {worst}");
        let again = fit_warm(z.view(), &y, 10.0, Some(&cold)).unwrap();
        assert!(
            again.convergence.iterations <= 1,
            "{}",
            again.convergence.iterations
        );
        // A start of the wrong shape is ignored (cold fit), not an error.
        let other = fit_warm(z.slice(ndarray::s![.., ..2]), &y, 10.0, Some(&cold)).unwrap();
        assert_eq!(other.weights.dim(), (3, 2));
    }

    #[test]
    fn learns_separable_classes_and_converges() {
        let z = array![
            [0.0f32, 3.0],
            [0.2, 2.8],
            [3.0, 0.0],
            [2.9, 0.1],
            [-3.0, -3.0],
            [-2.8, -3.1]
        ];
        let y = [0usize, 0, 1, 1, 2, 2];
        let ds = DatasetBase::new(z.clone(), ndarray::Array1::from(y.to_vec()));
        let m = LogisticParams::new().tol(1e-6).fit(&ds).unwrap();
        assert!(m.convergence.converged && m.convergence.iterations < 1000);
        let s: Array2<f64> = linfa::traits::Predict::predict(&m, &z);
        for (row, &t) in s.outer_iter().zip(&y) {
            assert_eq!(crate::train::argmax(row.as_slice().unwrap()), t);
        }
    }
}
