//! The RBF SVM's hyper-parameters and solver settings, checked before any fit (linfa's
//! `ParamGuard`): `RbfSvmParams::new().c(1.0).gamma(1e-3)` → `.check()` → `RbfSvmValidParams`.

use crate::error::{check_positive, HeadError};
use linfa::ParamGuard;

/// Checked hyper-parameters and solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RbfSvmValidParams {
    pub(crate) c: f64,
    pub(crate) gamma: Option<f64>,
    pub(crate) eps: f64,
    pub(crate) shrinking: bool,
    pub(crate) n_classes: Option<usize>,
}

/// Unchecked hyper-parameters (linfa's `ParamGuard` pattern):
/// `RbfSvmParams::new().c(1.0).gamma(1e-3)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RbfSvmParams(pub(crate) RbfSvmValidParams);

impl Default for RbfSvmParams {
    fn default() -> Self {
        Self::new()
    }
}

impl RbfSvmParams {
    /// C = 1, gamma = 1 / dimension, stopping tolerance 1e-3, shrinking on (LIBSVM's).
    pub fn new() -> Self {
        RbfSvmParams(RbfSvmValidParams {
            c: 1.0,
            gamma: None,
            eps: 1e-3,
            shrinking: true,
            n_classes: None,
        })
    }
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }
    /// Kernel width: `k(x, x') = exp(-gamma |x - x'|²)`.
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.0.gamma = Some(gamma);
        self
    }
    /// SMO stopping tolerance on the maximal KKT violation.
    pub fn eps(mut self, eps: f64) -> Self {
        self.0.eps = eps;
        self
    }
    /// LIBSVM's shrinking heuristic (`-h`): same optimum, fewer rows touched per iteration.
    pub fn shrinking(mut self, on: bool) -> Self {
        self.0.shrinking = on;
        self
    }
    /// Number of classes (default: largest label + 1).
    pub fn n_classes(mut self, k: usize) -> Self {
        self.0.n_classes = Some(k);
        self
    }
}

impl ParamGuard for RbfSvmParams {
    type Checked = RbfSvmValidParams;
    type Error = HeadError;
    fn check_ref(&self) -> Result<&RbfSvmValidParams, HeadError> {
        let p = &self.0;
        check_positive(&[
            ("C", p.c),
            ("gamma", p.gamma.unwrap_or(1.0)),
            ("eps", p.eps),
        ])?;
        Ok(p)
    }
    fn check(self) -> Result<RbfSvmValidParams, HeadError> {
        self.check_ref()?;
        Ok(self.0)
    }
}
