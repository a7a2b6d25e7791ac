//! The heads: `HeadSpec` (a head and its hyper-parameters, serde-tagged) fits a `Head` (the
//! serialisable fitted model) through each head's linfa interface. Multi-class is one-vs-rest
//! for the SVMs (binary solvers) and multinomial (softmax) for logistic regression.
//!
//! Adding a head: one module with its `XxxParams` (`ParamGuard`) → `XxxValidParams` (`Fit`) →
//! model (`PredictInplace` of decision values), one variant in `HeadKind`, `HeadSpec` and `Head`,
//! and one value of the CLI's `--head`.

use crate::calibrate::{softmax_rows, Temperature};
use crate::error::{check_finite, HeadError};
use crate::fit_info::Convergence;
use crate::kernel_svm::{self, RbfSvmParams};
use crate::linear_svm::{LinearSvmModel, LinearSvmParams};
use crate::logistic::{LogisticModel, LogisticParams};
use linfa::traits::{Fit, Predict};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    Logistic,
    LinearSvm,
    RbfSvm,
}

impl HeadKind {
    /// Every head, simplest first.
    pub const ALL: [HeadKind; 3] = [HeadKind::LinearSvm, HeadKind::Logistic, HeadKind::RbfSvm];

    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Logistic => "logistic",
            HeadKind::LinearSvm => "linear-svm",
            HeadKind::RbfSvm => "rbf-svm",
        }
    }
    /// Lower is simpler; used to break CV ties.
    pub fn complexity(&self) -> u8 {
        match self {
            HeadKind::LinearSvm => 0,
            HeadKind::Logistic => 1,
            HeadKind::RbfSvm => 2,
        }
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which solvers fit logistic regression and the RBF SVM: tlearn's own (`logistic`,
/// `kernel_svm`) or linfa's algorithm crates (`linfa_engine`: `linfa-logistic`, `linfa-svm`).
/// The linear SVM has one engine (tlearn's dual coordinate descent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    #[default]
    Tlearn,
    Linfa,
}

impl Engine {
    pub fn is_tlearn(&self) -> bool {
        *self == Engine::Tlearn
    }
}

/// One head with its hyper-parameters: what the CV grid is made of, what `head.json` records
/// as `params` (version-1 `{kind, c, gamma?}` objects read as they are).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HeadSpec {
    /// Multinomial logistic regression with inverse regularisation `c` (`logistic`).
    Logistic {
        c: f64,
        #[serde(default, skip_serializing_if = "Engine::is_tlearn")]
        engine: Engine,
    },
    /// One-vs-rest linear SVM with inverse regularisation `c` and solver tolerance `tol`
    /// (`linear_svm`).
    LinearSvm {
        c: f64,
        #[serde(default = "default_linear_tol")]
        tol: f64,
    },
    /// One-vs-rest RBF SVM, `k(x, x') = exp(−gamma |x − x'|²)` (`kernel_svm`).
    RbfSvm {
        c: f64,
        gamma: f64,
        #[serde(default, skip_serializing_if = "Engine::is_tlearn")]
        engine: Engine,
    },
}

fn default_linear_tol() -> f64 {
    0.01
}

impl HeadSpec {
    pub fn kind(&self) -> HeadKind {
        match self {
            HeadSpec::Logistic { .. } => HeadKind::Logistic,
            HeadSpec::LinearSvm { .. } => HeadKind::LinearSvm,
            HeadSpec::RbfSvm { .. } => HeadKind::RbfSvm,
        }
    }
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub fn c(&self) -> f64 {
        match *self {
            HeadSpec::Logistic { c, .. }
            | HeadSpec::LinearSvm { c, .. }
            | HeadSpec::RbfSvm { c, .. } => c,
        }
    }
    pub fn engine(&self) -> Engine {
        match *self {
            HeadSpec::Logistic { engine, .. } | HeadSpec::RbfSvm { engine, .. } => engine,
            HeadSpec::LinearSvm { .. } => Engine::Tlearn,
        }
    }
    pub fn gamma(&self) -> Option<f64> {
        match *self {
            HeadSpec::RbfSvm { gamma, .. } => Some(gamma),
            _ => None,
        }
    }

    /// Fit on transformed rows `z` with labels `y` in `0..n_classes`, through the head's
    /// linfa interface (`ParamGuard` → `Fit`); `seed` orders the linear SVM's coordinates.
    pub fn fit(
        &self,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        seed: u64,
    ) -> Result<Head, HeadError> {
        let ds = DatasetBase::new(z, ArrayView1::from(y));
        Ok(match *self {
            HeadSpec::Logistic {
                c,
                engine: Engine::Linfa,
            } => Head::Logistic(crate::linfa_engine::fit_logistic(z, y, n_classes, c)?),
            HeadSpec::RbfSvm {
                c,
                gamma,
                engine: Engine::Linfa,
            } => Head::RbfSvm(crate::linfa_engine::fit_rbf(z, y, n_classes, c, gamma)?),
            HeadSpec::Logistic { c, .. } => Head::Logistic(
                LogisticParams::new()
                    .c(c)
                    .n_classes(n_classes)
                    .check()?
                    .fit(&ds)?,
            ),
            HeadSpec::LinearSvm { c, tol } => Head::LinearSvm(
                LinearSvmParams::new()
                    .c(c)
                    .tol(tol)
                    .seed(seed)
                    .n_classes(n_classes)
                    .check()?
                    .fit(&ds)?,
            ),
            HeadSpec::RbfSvm { c, gamma, .. } => Head::RbfSvm(
                RbfSvmParams::new()
                    .c(c)
                    .gamma(gamma)
                    .n_classes(n_classes)
                    .check()?
                    .fit(&ds)?,
            ),
        })
    }
}

impl std::fmt::Display for HeadSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.gamma() {
            Some(g) => write!(f, "{} C={} gamma={:.3e}", self.kind(), self.c(), g)?,
            None => write!(f, "{} C={}", self.kind(), self.c())?,
        }
        if !self.engine().is_tlearn() {
            f.write_str(" (linfa)")?;
        }
        Ok(())
    }
}

/// A fitted head without calibration: produces decision values `[n, classes]`. Serialised with
/// a `kind` tag and the model's fields (the version-1 layout).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Head {
    /// Multinomial logistic regression (own L-BFGS, see `logistic`): scores = x·Wᵀ + b, probabilities = softmax(scores).
    Logistic(LogisticModel),
    /// One-vs-rest linear SVMs: score_c = w_c·x + b_c.
    LinearSvm(LinearSvmModel),
    /// One-vs-rest RBF SVMs (own SMO, see `kernel_svm`) with shared support vectors:
    /// score_c = Σ_s coef[c, s] exp(−gamma |x − sv_s|²) − rho_c.
    RbfSvm(kernel_svm::RbfOvr),
}

impl Head {
    /// How the solver stopped on the fit that made this head (not recorded for loaded heads;
    /// see `SavedHead::fit`).
    pub fn convergence(&self) -> Convergence {
        match self {
            Head::Logistic(m) => m.convergence,
            Head::LinearSvm(m) => m.convergence,
            Head::RbfSvm(m) => m.convergence,
        }
    }

    pub fn n_classes(&self) -> usize {
        match self {
            Head::Logistic(LogisticModel { weights, .. })
            | Head::LinearSvm(LinearSvmModel { weights, .. }) => weights.nrows(),
            Head::RbfSvm(m) => m.n_classes(),
        }
    }

    /// Expected input dimension, if the head records it.
    pub fn input_dim(&self) -> Option<usize> {
        match self {
            Head::Logistic(LogisticModel { weights, .. })
            | Head::LinearSvm(LinearSvmModel { weights, .. }) => Some(weights.ncols()),
            Head::RbfSvm(m) => Some(m.support_vectors.ncols()),
        }
    }

    /// Check a loaded head: array shapes agree with each other, with `n_classes` and with the
    /// input dimension `dim`; every number is finite. Errors name the field (`head.bias`, ...).
    pub fn validate(&self, n_classes: usize, dim: usize) -> Result<(), HeadError> {
        match self {
            Head::Logistic(LogisticModel { weights, bias, .. })
            | Head::LinearSvm(LinearSvmModel { weights, bias, .. }) => {
                if weights.nrows() != n_classes {
                    return Err(HeadError::malformed(
                        "head.weights",
                        format!("{} rows for {n_classes} classes", weights.nrows()),
                    ));
                }
                if weights.ncols() != dim {
                    return Err(HeadError::malformed(
                        "head.weights",
                        format!(
                            "{} columns but the transform outputs {dim} dimensions",
                            weights.ncols()
                        ),
                    ));
                }
                if bias.len() != n_classes {
                    return Err(HeadError::malformed(
                        "head.bias",
                        format!("{} entries for {n_classes} classes", bias.len()),
                    ));
                }
                check_finite("head.weights", weights.iter())?;
                check_finite("head.bias", bias.iter())?;
            }
            Head::RbfSvm(m) => {
                let n_sv = m.support_vectors.nrows();
                if !(m.gamma.is_finite() && m.gamma > 0.0) {
                    return Err(HeadError::malformed(
                        "head.gamma",
                        format!("{} (must be a positive number)", m.gamma),
                    ));
                }
                if m.support_vectors.ncols() != dim {
                    return Err(HeadError::malformed(
                        "head.support_vectors",
                        format!(
                            "{} columns but the transform outputs {dim} dimensions",
                            m.support_vectors.ncols()
                        ),
                    ));
                }
                if m.coef.nrows() != n_classes {
                    return Err(HeadError::malformed(
                        "head.coef",
                        format!("{} rows for {n_classes} classes", m.coef.nrows()),
                    ));
                }
                if m.coef.ncols() != n_sv {
                    return Err(HeadError::malformed(
                        "head.coef",
                        format!(
                            "{} columns but head.support_vectors has {n_sv} rows",
                            m.coef.ncols()
                        ),
                    ));
                }
                if m.rho.len() != n_classes {
                    return Err(HeadError::malformed(
                        "head.rho",
                        format!("{} entries for {n_classes} classes", m.rho.len()),
                    ));
                }
                check_finite("head.support_vectors", m.support_vectors.iter())?;
                check_finite("head.coef", m.coef.iter())?;
                check_finite("head.rho", m.rho.iter())?;
            }
        }
        Ok(())
    }

    /// Decision values `[n, classes]`.
    pub fn decision(&self, z: ArrayView2<f32>) -> Array2<f64> {
        match self {
            Head::Logistic(m) => m.predict(&z),
            Head::LinearSvm(m) => m.predict(&z),
            Head::RbfSvm(m) => m.predict(&z),
        }
    }
}

/// Turn decision values into probabilities whose ranking is the ranking of the decision values
/// (see `calibrate`): softmax for logistic regression, softmax(t · score) with the fitted shared
/// slope for the SVMs (slope 1 when no calibration was fitted).
pub fn probabilities(
    head: &Head,
    calibration: Option<&Temperature>,
    scores: &Array2<f64>,
) -> Array2<f64> {
    match (head, calibration) {
        (Head::Logistic(_), _) | (_, None) => softmax_rows(scores, 1.0),
        (_, Some(t)) => t.apply(scores),
    }
}
