//! The dense network's hyper-parameters and solver settings, checked before any fit (linfa's
//! `ParamGuard`): `MlpParams::new().hidden(256).weight_decay(1e-2)` → `.check()` →
//! `MlpValidParams`.

use crate::error::{check_max_iter, check_positive, HeadError};
use linfa::ParamGuard;

/// Checked hyper-parameters and solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpValidParams {
    pub(crate) hidden: usize,
    pub(crate) weight_decay: f64,
    pub(crate) dropout: f64,
    pub(crate) learning_rate: f64,
    pub(crate) max_epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) patience: usize,
    pub(crate) validation_fraction: f64,
    pub(crate) seed: u64,
    pub(crate) n_classes: Option<usize>,
}

/// Unchecked hyper-parameters (linfa's `ParamGuard` pattern): `MlpParams::new().hidden(256)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpParams(pub(crate) MlpValidParams);

impl Default for MlpParams {
    fn default() -> Self {
        Self::new()
    }
}

impl MlpParams {
    /// 256 hidden units, weight decay 1e-4, no dropout, Adam at 1e-3, at most 200 epochs of
    /// mini-batches of 32 rows (Keras' default), early stopping after 10 epochs without a
    /// validation loss 1% below the best on 10% of the rows, seed 0.
    pub fn new() -> Self {
        MlpParams(MlpValidParams {
            hidden: 256,
            weight_decay: 1e-4,
            dropout: 0.0,
            learning_rate: 1e-3,
            max_epochs: 200,
            batch_size: 32,
            patience: 10,
            validation_fraction: 0.1,
            seed: 0,
            n_classes: None,
        })
    }
    /// Width of the hidden ReLU layer.
    pub fn hidden(mut self, h: usize) -> Self {
        self.0.hidden = h;
        self
    }
    /// L2 penalty on the two weight matrices (not the biases), scikit-learn's `alpha` of
    /// `MLPClassifier`: each step follows (Σ_batch ∇loss + weight_decay · W) / batch rows.
    pub fn weight_decay(mut self, a: f64) -> Self {
        self.0.weight_decay = a;
        self
    }
    /// Fraction of the hidden units zeroed at each training step (inverted dropout); 0: none.
    pub fn dropout(mut self, p: f64) -> Self {
        self.0.dropout = p;
        self
    }
    /// Adam's step size.
    pub fn learning_rate(mut self, lr: f64) -> Self {
        self.0.learning_rate = lr;
        self
    }
    /// At most this many passes over the training rows.
    pub fn max_epochs(mut self, n: usize) -> Self {
        self.0.max_epochs = n;
        self
    }
    /// Rows per Adam step (the whole set when it has fewer).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.0.batch_size = n;
        self
    }
    /// Stop after this many epochs without a lower validation loss; the best epoch's weights
    /// are kept.
    pub fn patience(mut self, n: usize) -> Self {
        self.0.patience = n;
        self
    }
    /// Fraction of each class held out of the fit to decide when to stop (0: no early
    /// stopping; every epoch runs and the last weights are kept).
    pub fn validation_fraction(mut self, f: f64) -> Self {
        self.0.validation_fraction = f;
        self
    }
    /// Seed of the initial weights, the inner validation split, the batch order and dropout.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Number of classes (default: largest label + 1), for folds that lack the last class.
    pub fn n_classes(mut self, k: usize) -> Self {
        self.0.n_classes = Some(k);
        self
    }
}

impl ParamGuard for MlpParams {
    type Checked = MlpValidParams;
    type Error = HeadError;
    fn check_ref(&self) -> Result<&MlpValidParams, HeadError> {
        let p = &self.0;
        check_positive(&[
            ("hidden", p.hidden as f64),
            ("learning_rate", p.learning_rate),
            ("batch_size", p.batch_size as f64),
        ])?;
        if !(p.weight_decay.is_finite() && p.weight_decay >= 0.0) {
            return Err(HeadError::InvalidParam {
                name: "weight_decay",
                value: p.weight_decay,
                reason: "must be a number >= 0",
            });
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(HeadError::InvalidParam {
                name: "dropout",
                value: p.dropout,
                reason: "must be in [0, 1)",
            });
        }
        if !(0.0..0.5).contains(&p.validation_fraction) {
            return Err(HeadError::InvalidParam {
                name: "validation_fraction",
                value: p.validation_fraction,
                reason: "must be in [0, 0.5)",
            });
        }
        check_max_iter(p.max_epochs)?;
        Ok(p)
    }
    fn check(self) -> Result<MlpValidParams, HeadError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hyper_parameters_are_refused_by_the_guard() {
        let e = MlpParams::new().hidden(0).check().unwrap_err().to_string();
        assert!(e.contains("hidden = 0"), "{e}");
        let e = MlpParams::new().dropout(1.0).check().unwrap_err().to_string();
        assert!(e.contains("dropout = 1"), "{e}");
        let e = MlpParams::new()
            .weight_decay(-1.0)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight_decay = -1"), "{e}");
        assert!(MlpParams::new().max_epochs(0).check().is_err());
        assert!(MlpParams::new().learning_rate(0.0).check().is_err());
        assert!(MlpParams::new().weight_decay(0.0).check().is_ok());
    }
}
