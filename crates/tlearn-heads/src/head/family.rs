//! The plug-in interface of a head family: [`HeadFamily`]. One family (linear SVM, logistic
//! regression, RBF SVM, ...) is one module under `families/` implementing it, and one line in
//! `head/registry.rs` lists it; everything else (the CV grid search, `head.json`, the reports,
//! the ONNX export) reaches the family only through this trait, by way of the enums that line
//! generates (`HeadKind`, `HeadSpec`, `Head`, `HeadGrids`).
//!
//! The trait follows linfa's idiom: a family's hyper-parameters are checked by a `ParamGuard`
//! before any fit; [`HeadFamily::fit`] is linfa's `Fit`, [`HeadFamily::fit_fold`] its `FitWith`
//! (a fit that starts from what the previous grid point left behind on the same fold), and
//! [`HeadFamily::decision`] its `PredictInplace` of decision values `[n, classes]`.

use crate::error::HeadError;
use crate::fit_info::Convergence;
use crate::head::layers::Layer;
use crate::head::Engine;
use crate::transform::Transform;
use ndarray::{Array2, ArrayView2};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::OnceCell;
use std::fmt::{Debug, Display};
use std::path::Path;

/// One named hyper-parameter of a grid point, as the grid search walks and reports it.
#[derive(Debug, Clone, Copy)]
pub struct HyperParam {
    /// `C`, `gamma`, ...: the name in edge notes ("C at top of grid (1000)").
    pub name: &'static str,
    pub value: f64,
    /// How the value is written in notes and tables.
    pub show: fn(f64) -> String,
}

impl HyperParam {
    /// A value written as Rust's shortest form (`1000`, `0.001`).
    pub fn plain(name: &'static str, value: f64) -> HyperParam {
        HyperParam {
            name,
            value,
            show: |v| v.to_string(),
        }
    }
    /// A value written in scientific notation with four digits (`1.000e-3`).
    pub fn scientific(name: &'static str, value: f64) -> HyperParam {
        HyperParam {
            name,
            value,
            show: |v| format!("{v:.3e}"),
        }
    }
    pub fn shown(&self) -> String {
        (self.show)(self.value)
    }
}

/// A family's limit on training rows (a dense kernel matrix, a memory bound): `--head auto`
/// leaves the family out above it, and view rows are not tried above it.
#[derive(Debug, Clone, Copy)]
pub struct RowLimit {
    pub rows: usize,
    /// Why, in a few words ("dense kernel too large").
    pub why: &'static str,
}

/// The grid settings every family may read: the C grid (ascending, without repeats) and the
/// solver engine asked for.
#[derive(Debug, Clone, Copy)]
pub struct SharedGrid<'a> {
    pub c: &'a [f64],
    pub engine: Engine,
}

/// The training part as one transform sees it, for grids scaled to the data (the RBF SVM's
/// default gamma is a multiple of 1 / (dimension × variance) of the transformed rows).
pub struct GridData<'a> {
    x_train: ArrayView2<'a, f32>,
    transform: &'a Transform,
    z: OnceCell<Array2<f32>>,
}

impl<'a> GridData<'a> {
    pub fn new(x_train: ArrayView2<'a, f32>, transform: &'a Transform) -> GridData<'a> {
        GridData {
            x_train,
            transform,
            z: OnceCell::new(),
        }
    }
    /// The training rows after the transform (computed once, on first use).
    pub fn transformed(&self) -> anyhow::Result<&Array2<f32>> {
        if self.z.get().is_none() {
            let z = self.transform.apply(self.x_train)?;
            let _ = self.z.set(z);
        }
        Ok(self.z.get().expect("just set"))
    }
}

/// One CV fold under one transform: transformed training rows with their classes, and the
/// transformed validation rows to score.
pub struct Fold<'a> {
    pub z_train: &'a Array2<f32>,
    pub y_train: &'a [usize],
    pub z_valid: &'a Array2<f32>,
}

/// A head family. Implemented by a unit struct in the family's module (`families::logistic::
/// Logistic`); listed once in `head/registry.rs`.
pub trait HeadFamily: 'static {
    /// One grid point: the family's hyper-parameters, what `head.json` records as `params`
    /// (beside `kind`). Its `Display` is what follows the family name in tables and logs
    /// (`C=0.1 gamma=1.000e-3`).
    type Spec: Clone + PartialEq + Debug + Display + Serialize + DeserializeOwned + Send + Sync;
    /// The fitted head, what `head.json` records as `head` (beside `kind`). Weights too large
    /// for JSON may live in a file beside it ([`HeadFamily::write_files`]).
    type Model: Clone + Debug + Serialize + DeserializeOwned + Send + Sync;
    /// The family's own grid settings (`TrainConfig::grids`): its hyper-parameter values
    /// beyond the shared C grid, or anything its fit needs (epochs, a tolerance).
    type Grid: Clone + Debug + Default + Send + Sync;
    /// What one CV fold keeps from one grid point to the next, for the warm start of the next
    /// fit (a dual solution, the previous model, a kernel matrix shared by every C).
    type FoldState: Default + Send;

    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Whether the softmax of its decision values already gives its probabilities (logistic
    /// regression, a softmax network); `false`: a shared slope is fitted on out-of-fold CV
    /// decision values (`calibrate::Temperature`).
    const CALIBRATED: bool;
    /// Above this many training rows the family cannot be fitted.
    const ROW_LIMIT: Option<RowLimit> = None;
    /// Whether a fold's fit at one grid point starts from what the previous point left in
    /// [`HeadFamily::FoldState`]. A family whose points are independent (`false`) has the
    /// points that early stopping cannot skip fitted side by side, every (point, fold) pair in
    /// parallel, instead of one point's folds at a time.
    const WARM_STARTS: bool = true;

    /// The grid points, in the order the grid search walks them: along each path of the first
    /// hyper-parameter ([`HeadFamily::hyper_params`]) in ascending order.
    fn grid(
        own: &Self::Grid,
        shared: SharedGrid,
        data: &GridData,
    ) -> anyhow::Result<Vec<Self::Spec>>;

    /// The numeric hyper-parameters of a grid point; the first is the path the search walks
    /// (early stopping, warm starts), every one may be extended one step beyond a grid edge.
    fn hyper_params(spec: &Self::Spec) -> Vec<HyperParam>;
    /// `spec` with hyper-parameter `name` set to `value`.
    fn with_hyper_param(spec: &Self::Spec, name: &str, value: f64) -> Self::Spec;

    /// Fit on transformed rows `z` with classes `y` in `0..n_classes` (its `ParamGuard`
    /// checks the hyper-parameters first); `seed` drives any randomness.
    fn fit(
        spec: &Self::Spec,
        z: ArrayView2<f32>,
        y: &[usize],
        n_classes: usize,
        seed: u64,
    ) -> Result<Self::Model, HeadError>;

    /// Fit one CV fold and return the decision values of its validation rows: by default a
    /// cold [`HeadFamily::fit`]; a family with a warm start overrides it and keeps what the
    /// next grid point needs in `state`.
    fn fit_fold(
        spec: &Self::Spec,
        fold: &Fold,
        state: &mut Self::FoldState,
        n_classes: usize,
        seed: u64,
    ) -> Result<(Array2<f64>, Convergence), HeadError> {
        let _ = state;
        let m = Self::fit(spec, fold.z_train.view(), fold.y_train, n_classes, seed)?;
        Ok((
            Self::decision(&m, fold.z_valid.view()),
            Self::convergence(&m),
        ))
    }

    /// Decision values `[n, classes]` of transformed rows; the predicted class is their argmax.
    fn decision(model: &Self::Model, z: ArrayView2<f32>) -> Array2<f64>;
    /// How the solver stopped on the fit that made `model`.
    fn convergence(model: &Self::Model) -> Convergence;
    fn n_classes(model: &Self::Model) -> usize;
    /// The input dimension the model expects.
    fn input_dim(model: &Self::Model) -> usize;
    /// A loaded model: shapes agree with each other, with `n_classes` and the input `dim`;
    /// every number is finite. Errors name the field (`head.bias`, ...).
    fn validate(model: &Self::Model, n_classes: usize, dim: usize) -> Result<(), HeadError>;
    /// The model as layers from transformed rows to decision values, for the ONNX export.
    fn layers(model: &Self::Model) -> Vec<Layer<'_>>;

    /// Write what `head.json` does not hold (large weights) into `dir`, beside it.
    fn write_files(model: &Self::Model, dir: &Path) -> anyhow::Result<()> {
        let _ = (model, dir);
        Ok(())
    }
    /// Read back what [`HeadFamily::write_files`] wrote, before the model is validated.
    fn read_files(model: &mut Self::Model, dir: &Path) -> anyhow::Result<()> {
        let _ = (model, dir);
        Ok(())
    }
}
