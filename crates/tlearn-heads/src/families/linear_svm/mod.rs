//! The linear SVM family: one-vs-rest squared-hinge SVMs (LIBLINEAR's `-s 1`) trained by dual
//! coordinate descent. Laid out as linfa-svm: `hyperparams` (`ParamGuard`), `classification`
//! (`Fit`, `FitWith`, `PredictInplace`), `solver_dcd` (the binary solver).

pub mod classification;
pub mod hyperparams;
pub mod solver_dcd;

pub use classification::{LinearSvmModel, LinearWarm};
pub use hyperparams::{LinearSvmParams, LinearSvmValidParams};
pub use solver_dcd::{train_binary, train_binary_from, BinaryLinear};

use crate::error::HeadError;
use crate::families::{check_linear, linear_layers};
use crate::fit_info::Convergence;
use crate::head::{Fold, GridData, HeadFamily, HyperParam, Layer, SharedGrid};
use linfa::traits::{Fit, FitWith, Predict};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// The family (registered as `linear-svm`).
pub struct LinearSvm;

/// A grid point: inverse regularisation `c` and the solver's stopping tolerance `tol`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSvmSpec {
    pub c: f64,
    #[serde(default = "default_tol")]
    pub tol: f64,
}

fn default_tol() -> f64 {
    0.01
}

impl std::fmt::Display for LinearSvmSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C={}", self.c)
    }
}

/// The family's grid settings: the solver tolerance (`--linear-tol`).
#[derive(Debug, Clone, Copy)]
pub struct LinearSvmGrid {
    pub tol: f64,
}

impl Default for LinearSvmGrid {
    fn default() -> Self {
        LinearSvmGrid { tol: default_tol() }
    }
}

impl LinearSvmSpec {
    fn params(&self, n_classes: usize, seed: u64) -> Result<LinearSvmValidParams, HeadError> {
        LinearSvmParams::new()
            .c(self.c)
            .tol(self.tol)
            .seed(seed)
            .n_classes(n_classes)
            .check()
    }
}

impl HeadFamily for LinearSvm {
    type Spec = LinearSvmSpec;
    type Model = LinearSvmModel;
    type Grid = LinearSvmGrid;
    /// The previous C's dual solution on this fold.
    type FoldState = Option<LinearWarm>;

    const ABOUT: &'static str =
        "One-vs-rest linear SVM (dual coordinate descent, squared hinge); calibrated probabilities";
    const CALIBRATED: bool = false;

    fn grid(
        own: &LinearSvmGrid,
        shared: SharedGrid,
        _: &GridData,
    ) -> anyhow::Result<Vec<LinearSvmSpec>> {
        Ok(shared
            .c
            .iter()
            .map(|&c| LinearSvmSpec { c, tol: own.tol })
            .collect())
    }

    fn hyper_params(s: &LinearSvmSpec) -> Vec<HyperParam> {
        vec![HyperParam::plain("C", s.c)]
    }

    fn with_hyper_param(s: &LinearSvmSpec, name: &str, value: f64) -> LinearSvmSpec {
        match name {
            "C" => LinearSvmSpec { c: value, ..*s },
            _ => *s,
        }
    }

    fn fit(
        s: &LinearSvmSpec,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        seed: u64,
    ) -> Result<LinearSvmModel, HeadError> {
        let ds = DatasetBase::new(z, ArrayView1::from(y));
        s.params(n_classes, seed)?.fit(&ds)
    }

    /// Warm-started along C from the previous C's dual solution (LIBLINEAR's parameter search).
    fn fit_fold(
        s: &LinearSvmSpec,
        fold: &Fold,
        warm: &mut Option<LinearWarm>,
        n_classes: usize,
        seed: u64,
    ) -> Result<(Array2<f64>, Convergence), HeadError> {
        let ds = DatasetBase::new(fold.z_train.view(), ArrayView1::from(fold.y_train));
        let (m, solution) = s.params(n_classes, seed)?.fit_with(warm.as_ref(), &ds)?;
        *warm = Some(solution);
        Ok((m.predict(fold.z_valid), m.convergence))
    }

    fn decision(m: &LinearSvmModel, z: ArrayView2<f32>) -> Array2<f64> {
        m.predict(&z)
    }
    fn convergence(m: &LinearSvmModel) -> Convergence {
        m.convergence
    }
    fn n_classes(m: &LinearSvmModel) -> usize {
        m.weights.nrows()
    }
    fn input_dim(m: &LinearSvmModel) -> usize {
        m.weights.ncols()
    }
    fn validate(m: &LinearSvmModel, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        check_linear(&m.weights, &m.bias, n_classes, dim)
    }
    fn layers(m: &LinearSvmModel) -> Vec<Layer<'_>> {
        linear_layers(&m.weights, &m.bias)
    }
}
