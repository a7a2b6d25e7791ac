//! The dense network family (`--head mlp`), the Keras tutorials' head done as scikit-learn's
//! `MLPClassifier` does it: codes → Dense(H, ReLU) → dropout → Dense(classes) → softmax, trained
//! by mini-batch Adam with weight decay and early stopping on an inner validation split, seeded
//! and deterministic. The hidden width H and the weight decay are in the CV grid. Laid out as
//! linfa-svm: `hyperparams` (`ParamGuard`), `classification` (the model, `Fit`,
//! `PredictInplace`), the solver (`solver_adam`).
//!
//! Hand-written on ndarray rather than on candle-nn or burn: the network is two matrix products
//! each way, the same `dot` the other heads use, and the training loop is about 150 lines. Measured
//! on Tux Paint codes (121 and 216 × 1,280 rows, H = 256, batch 200, Adam, 100 epochs, one
//! core), this loop runs 4 to 7 times faster than candle-nn 0.11.1's `Linear` + `AdamW` on its
//! CPU backend (alternating pairs over two runs) (see `bench/RESULTS.md`, "Dense head"), and candle would add a second tensor type,
//! its own random-number stream (no bit-for-bit seed control from the fit's seed) and about 150
//! crates to the build (bench/candle-mlp's lock file).

pub mod classification;
pub mod hyperparams;
pub mod solver_adam;

pub use classification::MlpModel;
pub use hyperparams::{MlpParams, MlpValidParams};

use crate::error::HeadError;
use crate::fit_info::Convergence;
use crate::head::{GridData, HeadFamily, HyperParam, Layer, SharedGrid};
use linfa::traits::{Fit, Predict};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// The default hidden widths of the grid.
pub const DEFAULT_HIDDEN: [usize; 2] = [64, 256];
/// The default weight decays of the grid (scikit-learn's `alpha`).
pub const DEFAULT_WEIGHT_DECAY: [f64; 3] = [1e-4, 1e-2, 1.0];

/// The family (registered as `mlp`).
pub struct Mlp;

/// A grid point: the hidden width, the weight decay, and the training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpSpec {
    pub hidden: usize,
    pub weight_decay: f64,
    pub dropout: f64,
    pub learning_rate: f64,
    pub max_epochs: usize,
    pub batch_size: usize,
}

impl std::fmt::Display for MlpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H={} decay={:.0e}", self.hidden, self.weight_decay)?;
        if self.dropout > 0.0 {
            write!(f, " dropout={}", self.dropout)?;
        }
        Ok(())
    }
}

impl MlpSpec {
    fn params(&self, n_classes: usize, seed: u64) -> Result<MlpValidParams, HeadError> {
        MlpParams::new()
            .hidden(self.hidden)
            .weight_decay(self.weight_decay)
            .dropout(self.dropout)
            .learning_rate(self.learning_rate)
            .max_epochs(self.max_epochs)
            .batch_size(self.batch_size)
            .seed(seed)
            .n_classes(n_classes)
            .check()
    }
}

/// The family's grid settings (`--hidden-grid`, `--weight-decay-grid`, `--dropout`,
/// `--max-epochs`); the rest as [`MlpParams::new`].
#[derive(Debug, Clone)]
pub struct MlpGrid {
    pub hidden: Vec<usize>,
    pub weight_decay: Vec<f64>,
    pub dropout: f64,
    pub max_epochs: usize,
}

impl Default for MlpGrid {
    fn default() -> Self {
        MlpGrid {
            hidden: DEFAULT_HIDDEN.to_vec(),
            weight_decay: DEFAULT_WEIGHT_DECAY.to_vec(),
            dropout: 0.0,
            max_epochs: MlpParams::new().0.max_epochs,
        }
    }
}

impl HeadFamily for Mlp {
    type Spec = MlpSpec;
    type Model = MlpModel;
    type Grid = MlpGrid;
    /// No warm start: each grid point trains from its own seeded initial weights.
    type FoldState = ();

    const ABOUT: &'static str =
        "Dense network: Dense(H, ReLU), dropout, Dense(classes), softmax (Adam, early stopping)";
    const CALIBRATED: bool = true;
    const WARM_STARTS: bool = false;

    /// Width by width, each along its weight-decay path in ascending order.
    fn grid(own: &MlpGrid, _: SharedGrid, _: &GridData) -> anyhow::Result<Vec<MlpSpec>> {
        let mut hidden = own.hidden.clone();
        hidden.sort_unstable();
        hidden.dedup();
        let mut decay = own.weight_decay.clone();
        decay.sort_by(f64::total_cmp);
        decay.dedup();
        let base = MlpParams::new().0;
        Ok(hidden
            .iter()
            .flat_map(|&h| {
                decay.iter().map(move |&weight_decay| MlpSpec {
                    hidden: h,
                    weight_decay,
                    dropout: own.dropout,
                    learning_rate: base.learning_rate,
                    max_epochs: own.max_epochs,
                    batch_size: base.batch_size,
                })
            })
            .collect())
    }

    fn hyper_params(s: &MlpSpec) -> Vec<HyperParam> {
        vec![
            HyperParam::scientific("weight_decay", s.weight_decay),
            HyperParam::plain("hidden", s.hidden as f64),
        ]
    }

    fn with_hyper_param(s: &MlpSpec, name: &str, value: f64) -> MlpSpec {
        match name {
            "weight_decay" => MlpSpec {
                weight_decay: value,
                ..*s
            },
            "hidden" => MlpSpec {
                hidden: value.round().max(1.0) as usize,
                ..*s
            },
            _ => *s,
        }
    }

    fn fit(
        s: &MlpSpec,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        seed: u64,
    ) -> Result<MlpModel, HeadError> {
        let ds = DatasetBase::new(z, ArrayView1::from(y));
        s.params(n_classes, seed)?.fit(&ds)
    }

    fn decision(m: &MlpModel, z: ArrayView2<f32>) -> Array2<f64> {
        m.predict(&z)
    }
    fn convergence(m: &MlpModel) -> Convergence {
        m.convergence
    }
    fn n_classes(m: &MlpModel) -> usize {
        m.output_weights.nrows()
    }
    fn input_dim(m: &MlpModel) -> usize {
        m.hidden_weights.ncols()
    }
    fn validate(m: &MlpModel, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        m.check(n_classes, dim)
    }
    fn layers(m: &MlpModel) -> Vec<Layer<'_>> {
        vec![
            Layer::Affine {
                weights: m.hidden_weights.view(),
                bias: m.hidden_bias.view(),
            },
            Layer::Relu,
            Layer::Affine {
                weights: m.output_weights.view(),
                bias: m.output_bias.view(),
            },
        ]
    }
}
