//! The fitted dense network and its linfa interface: `MlpValidParams` fits it (`Fit` on a
//! `DatasetBase` of codes and class indices) and it predicts decision values `[n, classes]`,
//! the logits before the softmax (`PredictInplace`).

use super::hyperparams::MlpValidParams;
use super::solver_adam;
use crate::error::{check_finite, HeadError};
use crate::families::logistic::classification::not_recorded;
use crate::fit_info::{classes_of, Convergence};
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, PredictInplace};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayBase, Data, Ix2, Zip};
use serde::{Deserialize, Serialize};

/// A fitted network: `logits = relu(x · W1ᵀ + b1) · W2ᵀ + b2`, probabilities = softmax.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MlpModel {
    /// `[hidden, d]`
    pub hidden_weights: Array2<f32>,
    /// `[hidden]`
    pub hidden_bias: Array1<f32>,
    /// `[classes, hidden]`
    pub output_weights: Array2<f32>,
    /// `[classes]`
    pub output_bias: Array1<f32>,
    /// How training stopped: epochs run, and whether early stopping ended it (kept in
    /// head.json's `fit`, not here).
    #[serde(skip, default = "not_recorded")]
    pub convergence: Convergence,
}

impl MlpModel {
    /// A loaded model: `hidden_weights` `[H, dim]`, `hidden_bias` `[H]`, `output_weights`
    /// `[n_classes, H]`, `output_bias` `[n_classes]`, every number finite; errors name the
    /// field (`head.output_weights`).
    pub fn check(&self, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        let h = self.hidden_weights.nrows();
        let shape = |field: &str, got: Vec<usize>, want: Vec<usize>, what: &str| {
            if got == want {
                Ok(())
            } else {
                Err(HeadError::malformed(
                    format!("head.{field}"),
                    format!("shape {got:?}, expected {want:?} ({what})"),
                ))
            }
        };
        if h == 0 {
            return Err(HeadError::malformed("head.hidden_weights", "no hidden units"));
        }
        shape(
            "hidden_weights",
            self.hidden_weights.shape().to_vec(),
            vec![h, dim],
            "hidden units × the transform's output dimension",
        )?;
        shape(
            "hidden_bias",
            self.hidden_bias.shape().to_vec(),
            vec![h],
            "one per hidden unit",
        )?;
        shape(
            "output_weights",
            self.output_weights.shape().to_vec(),
            vec![n_classes, h],
            "classes × hidden units",
        )?;
        shape(
            "output_bias",
            self.output_bias.shape().to_vec(),
            vec![n_classes],
            "one per class",
        )?;
        check_finite("head.hidden_weights", self.hidden_weights.iter())?;
        check_finite("head.hidden_bias", self.hidden_bias.iter())?;
        check_finite("head.output_weights", self.output_weights.iter())?;
        check_finite("head.output_bias", self.output_bias.iter())?;
        Ok(())
    }
}

impl<D, T> Fit<ArrayBase<D, Ix2>, T, HeadError> for MlpValidParams
where
    D: Data<Elem = f32>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = MlpModel;
    fn fit(&self, ds: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<MlpModel, HeadError> {
        let (x, y, k) = classes_of("dense network", ds, self.n_classes)?;
        let (w, convergence) = solver_adam::fit(x, &y, k, self)?;
        Ok(MlpModel {
            hidden_weights: w.w1,
            hidden_bias: w.b1,
            output_weights: w.w2,
            output_bias: w.b2,
            convergence,
        })
    }
}

impl<D: Data<Elem = f32>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for MlpModel {
    /// Decision values `[n, classes]`: the logits, in float32 as the ONNX export computes them.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        let z = solver_adam::logits(
            x.view(),
            &self.hidden_weights,
            &self.hidden_bias,
            &self.output_weights,
            &self.output_bias,
        );
        Zip::from(y).and(&z).for_each(|o, &v| *o = v as f64);
    }
    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), self.output_weights.nrows()))
    }
}
