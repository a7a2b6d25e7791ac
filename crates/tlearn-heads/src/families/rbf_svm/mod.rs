//! The RBF SVM family: one-vs-rest RBF-kernel SVMs (C-SVC), solved by tlearn's SMO on one
//! Gram matrix shared by the classes (`solver_smo`, `kernel`) or by `linfa-svm`
//! (`linfa_svm`, `--engine linfa`). Laid out as linfa-svm: `hyperparams` (`ParamGuard`),
//! `classification` (`Fit`, `PredictInplace`, the fit on a precomputed kernel), `solver_smo`.
//!
//! In cross-validation the kernel is the costly part of a fit (an `[n, n]` matrix product).
//! Per fold and transform the squared distances `|x_i − x_j|²` (training × training and
//! validation × training) are computed once ([`RbfFoldState`]); each gamma's kernel is then one
//! `exp` pass shared by every C of that gamma, the validation scores reuse the distances, and
//! each C starts from the previous C's dual solution.

pub mod classification;
pub mod hyperparams;
pub mod kernel;
pub mod linfa_svm;
pub mod solver_smo;

pub use classification::{fit_on_kernel, RbfOvr, RbfWarm};
pub use hyperparams::{RbfSvmParams, RbfSvmValidParams};
pub use kernel::{kernel_from_sq, rbf_kernel, sq_distances};

use crate::error::{check_finite, HeadError};
use crate::fit_info::Convergence;
use crate::head::{Engine, Fold, GridData, HeadFamily, HyperParam, Layer, RowLimit, SharedGrid};
use linfa::traits::Fit;
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// Above this many training rows the n×n kernel matrix gets too large.
pub const MAX_ROWS: usize = 12_000;

/// The default gamma grid, in multiples of scikit-learn's `gamma="scale"` (see [`RbfSvmGrid`]).
pub const DEFAULT_GAMMA_MULTIPLES: [f64; 4] = [0.01, 0.1, 1.0, 10.0];

/// The family (registered as `rbf-svm`).
pub struct RbfSvm;

/// A grid point: `k(x, x') = exp(−gamma |x − x'|²)`, inverse regularisation `c`, the engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RbfSvmSpec {
    pub c: f64,
    pub gamma: f64,
    #[serde(default, skip_serializing_if = "Engine::is_tlearn")]
    pub engine: Engine,
}

impl std::fmt::Display for RbfSvmSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "C={} gamma={:.3e}{}",
            self.c,
            self.gamma,
            self.engine.suffix()
        )
    }
}

/// The family's grid settings: absolute gamma values (`--gamma-grid`); `None` =
/// [`DEFAULT_GAMMA_MULTIPLES`] × scikit-learn's `gamma="scale"` (1 / (dimension × variance) of
/// each transform's output on the training part; 1 / dimension for standardised codes).
#[derive(Debug, Clone, Default)]
pub struct RbfSvmGrid {
    pub gamma: Option<Vec<f64>>,
}

/// What a CV fold keeps between grid points (tlearn's SMO).
#[derive(Default)]
pub struct RbfFoldState {
    /// `|x_i − x_j|²` training × training and validation × training.
    sq: Option<(Array2<f64>, Array2<f64>)>,
    /// The kernel of the last gamma used, shared by the C values of that gamma.
    kernel: Option<(f64, Array2<f64>)>,
    /// The last dual solution and its gamma: the warm start of the next C of that gamma.
    warm: Option<(f64, RbfWarm)>,
}

impl HeadFamily for RbfSvm {
    type Spec = RbfSvmSpec;
    type Model = RbfOvr;
    type Grid = RbfSvmGrid;
    type FoldState = RbfFoldState;

    const ABOUT: &'static str =
        "One-vs-rest RBF-kernel SVM (SMO on a dense kernel); for small sets (<= 12,000 rows)";
    const CALIBRATED: bool = false;
    const ROW_LIMIT: Option<RowLimit> = Some(RowLimit {
        rows: MAX_ROWS,
        why: "dense kernel too large",
    });

    /// Gamma by gamma (all C of one gamma together), the order in which cross-validation
    /// reuses one kernel per gamma.
    fn grid(
        own: &RbfSvmGrid,
        shared: SharedGrid,
        data: &GridData,
    ) -> anyhow::Result<Vec<RbfSvmSpec>> {
        let gammas = match &own.gamma {
            Some(g) => g.clone(),
            None => {
                let scale = gamma_scale(data.transformed()?);
                DEFAULT_GAMMA_MULTIPLES.iter().map(|m| m * scale).collect()
            }
        };
        Ok(gammas
            .iter()
            .flat_map(|&gamma| {
                shared.c.iter().map(move |&c| RbfSvmSpec {
                    c,
                    gamma,
                    engine: shared.engine,
                })
            })
            .collect())
    }

    fn hyper_params(s: &RbfSvmSpec) -> Vec<HyperParam> {
        vec![
            HyperParam::plain("C", s.c),
            HyperParam::scientific("gamma", s.gamma),
        ]
    }

    fn with_hyper_param(s: &RbfSvmSpec, name: &str, value: f64) -> RbfSvmSpec {
        match name {
            "C" => RbfSvmSpec { c: value, ..*s },
            "gamma" => RbfSvmSpec { gamma: value, ..*s },
            _ => *s,
        }
    }

    fn fit(
        s: &RbfSvmSpec,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        _seed: u64,
    ) -> Result<RbfOvr, HeadError> {
        match s.engine {
            Engine::Linfa => linfa_svm::fit(z, y, n_classes, s.c, s.gamma),
            Engine::Tlearn => {
                let ds = DatasetBase::new(z, ArrayView1::from(y));
                RbfSvmParams::new()
                    .c(s.c)
                    .gamma(s.gamma)
                    .n_classes(n_classes)
                    .check()?
                    .fit(&ds)
            }
        }
    }

    fn fit_fold(
        s: &RbfSvmSpec,
        fold: &Fold,
        st: &mut RbfFoldState,
        n_classes: usize,
        seed: u64,
    ) -> Result<(Array2<f64>, Convergence), HeadError> {
        if s.engine == Engine::Linfa {
            let m = Self::fit(s, fold.z_train.view(), fold.y_train, n_classes, seed)?;
            return Ok((m.decision(fold.z_valid.view()), m.convergence));
        }
        if st.sq.is_none() {
            let zt = fold.z_train.mapv(|v| v as f64);
            let zv = fold.z_valid.mapv(|v| v as f64);
            st.sq = Some((
                sq_distances(zt.view(), zt.view()),
                sq_distances(zv.view(), zt.view()),
            ));
        }
        let (d_train, d_valid) = st.sq.as_ref().expect("just set");
        if st.kernel.as_ref().map(|k| k.0) != Some(s.gamma) {
            st.kernel = None; // free the old kernel before making the next one
            st.kernel = Some((s.gamma, kernel_from_sq(d_train, s.gamma)));
        }
        let k = &st.kernel.as_ref().expect("just set").1;
        let warm = st.warm.as_ref().filter(|w| w.0 == s.gamma).map(|w| &w.1);
        let (m, sv, solution) = fit_on_kernel(
            k,
            fold.z_train.view(),
            fold.y_train,
            n_classes,
            s.c,
            s.gamma,
            warm,
        )?;
        st.warm = Some((s.gamma, solution));
        Ok((m.decision_from_sq(d_valid, &sv), m.convergence))
    }

    fn decision(m: &RbfOvr, z: ArrayView2<f32>) -> Array2<f64> {
        m.decision(z)
    }
    fn convergence(m: &RbfOvr) -> Convergence {
        m.convergence
    }
    fn n_classes(m: &RbfOvr) -> usize {
        m.n_classes()
    }
    fn input_dim(m: &RbfOvr) -> usize {
        m.support_vectors.ncols()
    }

    fn validate(m: &RbfOvr, n_classes: usize, dim: usize) -> Result<(), HeadError> {
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
        Ok(())
    }

    fn layers(m: &RbfOvr) -> Vec<Layer<'_>> {
        vec![Layer::RbfExpansion {
            gamma: m.gamma,
            support_vectors: m.support_vectors.view(),
            coef: m.coef.view(),
            rho: m.rho.view(),
        }]
    }
}

/// scikit-learn's `gamma="scale"` for rows `z`: 1 / (dimension × variance of all entries).
fn gamma_scale(z: &Array2<f32>) -> f64 {
    let n = z.len().max(1) as f64;
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let d = z.ncols().max(1) as f64;
    if var > 0.0 {
        1.0 / (d * var)
    } else {
        1.0 / d
    }
}
