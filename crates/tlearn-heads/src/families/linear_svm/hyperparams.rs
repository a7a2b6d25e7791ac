//! The linear SVM's hyper-parameters and solver settings, checked before any fit (linfa's
//! `ParamGuard`): `LinearSvmParams::new().c(0.1)` → `.check()` → `LinearSvmValidParams`.

use crate::error::{check_max_iter, check_positive, HeadError};
use linfa::ParamGuard;

/// Checked hyper-parameters and solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSvmValidParams {
    pub(crate) c: f64,
    pub(crate) tol: f64,
    pub(crate) max_iter: usize,
    pub(crate) seed: u64,
    pub(crate) n_classes: Option<usize>,
}

/// Unchecked hyper-parameters (linfa's `ParamGuard` pattern): `LinearSvmParams::new().c(0.1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSvmParams(LinearSvmValidParams);

impl Default for LinearSvmParams {
    fn default() -> Self {
        Self::new()
    }
}

impl LinearSvmParams {
    /// C = 1, tolerance 0.01, at most 1000 passes, seed 0.
    pub fn new() -> Self {
        LinearSvmParams(LinearSvmValidParams {
            c: 1.0,
            tol: 0.01,
            max_iter: 1000,
            seed: 0,
            n_classes: None,
        })
    }
    /// Inverse regularisation strength.
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }
    /// Stopping tolerance on the projected-gradient gap (LIBLINEAR's `-e`).
    pub fn tol(mut self, tol: f64) -> Self {
        self.0.tol = tol;
        self
    }
    /// Maximum passes over the data.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.0.max_iter = n;
        self
    }
    /// Seed of the coordinate order.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Number of classes (default: largest label + 1).
    pub fn n_classes(mut self, k: usize) -> Self {
        self.0.n_classes = Some(k);
        self
    }
}

impl ParamGuard for LinearSvmParams {
    type Checked = LinearSvmValidParams;
    type Error = HeadError;
    fn check_ref(&self) -> Result<&LinearSvmValidParams, HeadError> {
        let p = &self.0;
        check_positive(&[("C", p.c), ("tol", p.tol)])?;
        check_max_iter(p.max_iter)?;
        Ok(p)
    }
    fn check(self) -> Result<LinearSvmValidParams, HeadError> {
        self.check_ref()?;
        Ok(self.0)
    }
}
