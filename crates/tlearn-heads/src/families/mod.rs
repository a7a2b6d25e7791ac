//! The head families, one module each implementing `head::HeadFamily`, and their list: one
//! line per family below (module, implementing type, name; see `head/registry.rs`), in the order
//! `--head auto` tries them and CV ties go by, simplest first. Also what the linear families
//! share.

crate::head::registry::register_heads! {
    LinearSvm(linear_svm) = "linear-svm": LinearSvm,
    Logistic(logistic) = "logistic": Logistic,
    RbfSvm(rbf_svm) = "rbf-svm": RbfSvm,
    Mlp(mlp) = "mlp": Mlp,
}

use crate::error::check_finite;
use ndarray::Array1;

/// Check a loaded linear head (`scores = x · weightsᵀ + bias`): `weights` `[n_classes, dim]`,
/// `bias` `[n_classes]`, every number finite.
pub(crate) fn check_linear(
    weights: &Array2<f32>,
    bias: &Array1<f32>,
    n_classes: usize,
    dim: usize,
) -> Result<(), HeadError> {
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
    Ok(())
}

/// A linear head as one affine layer.
pub(crate) fn linear_layers<'a>(weights: &'a Array2<f32>, bias: &'a Array1<f32>) -> Vec<Layer<'a>> {
    vec![Layer::Affine {
        weights: weights.view(),
        bias: bias.view(),
    }]
}
