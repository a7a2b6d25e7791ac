//! Logistic regression's hyper-parameters and solver settings, checked before any fit (linfa's
//! `ParamGuard`): `LogisticParams::new().c(1.0)` → `.check()` → `LogisticValidParams`.

use crate::error::{check_max_iter, check_positive, HeadError};
use linfa::ParamGuard;

/// Checked hyper-parameters and solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticValidParams {
    pub(crate) c: f64,
    pub(crate) max_iter: usize,
    pub(crate) tol: f64,
    pub(crate) n_classes: Option<usize>,
}

/// Unchecked hyper-parameters (linfa's `ParamGuard` pattern): `LogisticParams::new().c(1.0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticParams(LogisticValidParams);

impl Default for LogisticParams {
    fn default() -> Self {
        Self::new()
    }
}

impl LogisticParams {
    /// C = 1, at most 1000 L-BFGS iterations, gradient tolerance 1e-4 (scikit-learn's).
    pub fn new() -> Self {
        LogisticParams(LogisticValidParams {
            c: 1.0,
            max_iter: 1000,
            tol: 1e-4,
            n_classes: None,
        })
    }
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }
    pub fn max_iter(mut self, n: usize) -> Self {
        self.0.max_iter = n;
        self
    }
    /// Stop when the largest absolute gradient entry falls below this (scikit-learn's `tol`
    /// for lbfgs, on the 1/n-scaled objective).
    pub fn tol(mut self, tol: f64) -> Self {
        self.0.tol = tol;
        self
    }
    /// Number of classes (default: largest label + 1), for folds that lack the last class.
    pub fn n_classes(mut self, k: usize) -> Self {
        self.0.n_classes = Some(k);
        self
    }
}

impl ParamGuard for LogisticParams {
    type Checked = LogisticValidParams;
    type Error = HeadError;
    fn check_ref(&self) -> Result<&LogisticValidParams, HeadError> {
        let p = &self.0;
        check_positive(&[("C", p.c), ("tol", p.tol)])?;
        check_max_iter(p.max_iter)?;
        Ok(p)
    }
    fn check(self) -> Result<LogisticValidParams, HeadError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hyper_parameters_are_refused_by_the_guard() {
        let e = LogisticParams::new()
            .c(-1.0)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("C = -1"), "{e}");
        assert!(LogisticParams::new().tol(0.0).check().is_err());
    }
}
