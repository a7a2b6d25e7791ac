//! The logistic regression family: multinomial (softmax) logistic regression with an L2
//! penalty, fitted by tlearn's L-BFGS (`solver_lbfgs`) or by `linfa-logistic`
//! (`linfa_logistic`, `--engine linfa`). Laid out as linfa-svm: `hyperparams` (`ParamGuard`),
//! `classification` (`Fit`, `FitWith`, `PredictInplace`), the solvers.

pub mod classification;
pub mod hyperparams;
pub mod linfa_logistic;
pub mod solver_lbfgs;

pub use classification::LogisticModel;
pub use hyperparams::{LogisticParams, LogisticValidParams};

use crate::error::HeadError;
use crate::families::{check_linear, linear_layers};
use crate::fit_info::Convergence;
use crate::head::{Engine, Fold, GridData, HeadFamily, HyperParam, Layer, SharedGrid};
use linfa::traits::{Fit, FitWith, Predict};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// The family (registered as `logistic`).
pub struct Logistic;

/// A grid point: inverse regularisation `c` (scikit-learn's `C`) and the solver engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticSpec {
    pub c: f64,
    #[serde(default, skip_serializing_if = "Engine::is_tlearn")]
    pub engine: Engine,
}

impl std::fmt::Display for LogisticSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C={}{}", self.c, self.engine.suffix())
    }
}

impl LogisticSpec {
    fn params(&self, n_classes: usize) -> Result<LogisticValidParams, HeadError> {
        LogisticParams::new().c(self.c).n_classes(n_classes).check()
    }
}

impl HeadFamily for Logistic {
    type Spec = LogisticSpec;
    type Model = LogisticModel;
    /// Nothing beyond the shared C grid and engine.
    type Grid = ();
    /// The previous C's model on this fold (tlearn's solver): the start of the next fit.
    type FoldState = Option<LogisticModel>;

    const ABOUT: &'static str = "Multinomial logistic regression (L-BFGS); softmax probabilities";
    const CALIBRATED: bool = true;

    fn grid(_: &(), shared: SharedGrid, _: &GridData) -> anyhow::Result<Vec<LogisticSpec>> {
        Ok(shared
            .c
            .iter()
            .map(|&c| LogisticSpec {
                c,
                engine: shared.engine,
            })
            .collect())
    }

    fn hyper_params(s: &LogisticSpec) -> Vec<HyperParam> {
        vec![HyperParam::plain("C", s.c)]
    }

    fn with_hyper_param(s: &LogisticSpec, name: &str, value: f64) -> LogisticSpec {
        match name {
            "C" => LogisticSpec { c: value, ..*s },
            _ => *s,
        }
    }

    fn fit(
        s: &LogisticSpec,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        _seed: u64,
    ) -> Result<LogisticModel, HeadError> {
        match s.engine {
            Engine::Linfa => linfa_logistic::fit(z, y, n_classes, s.c),
            Engine::Tlearn => {
                let ds = DatasetBase::new(z, ArrayView1::from(y));
                s.params(n_classes)?.fit(&ds)
            }
        }
    }

    /// tlearn's solver is warm-started along C from the previous C's model, as scikit-learn's
    /// `logistic_regression_path`; linfa-logistic fits from zero.
    fn fit_fold(
        s: &LogisticSpec,
        fold: &Fold,
        previous: &mut Option<LogisticModel>,
        n_classes: usize,
        seed: u64,
    ) -> Result<(Array2<f64>, Convergence), HeadError> {
        let m = match s.engine {
            Engine::Linfa => Self::fit(s, fold.z_train.view(), fold.y_train, n_classes, seed)?,
            Engine::Tlearn => {
                let ds = DatasetBase::new(fold.z_train.view(), ArrayView1::from(fold.y_train));
                let m = s.params(n_classes)?.fit_with(previous.as_ref(), &ds)?;
                *previous = Some(m.clone());
                m
            }
        };
        Ok((m.predict(fold.z_valid), m.convergence))
    }

    fn decision(m: &LogisticModel, z: ArrayView2<f32>) -> Array2<f64> {
        m.predict(&z)
    }
    fn convergence(m: &LogisticModel) -> Convergence {
        m.convergence
    }
    fn n_classes(m: &LogisticModel) -> usize {
        m.weights.nrows()
    }
    fn input_dim(m: &LogisticModel) -> usize {
        m.weights.ncols()
    }
    fn validate(m: &LogisticModel, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        check_linear(&m.weights, &m.bias, n_classes, dim)
    }
    fn layers(m: &LogisticModel) -> Vec<Layer<'_>> {
        linear_layers(&m.weights, &m.bias)
    }
}
