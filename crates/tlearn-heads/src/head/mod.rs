//! Heads as plug-ins. A head family (linear SVM, logistic regression, RBF SVM, ...) is one
//! module under `families/` implementing [`HeadFamily`]: its hyper-parameters (checked by a
//! linfa `ParamGuard`), its grid, its fit and its warm-started fit of a CV fold (linfa's
//! `FitWith`), its decision values, whether its softmax is already calibrated, the checks of a
//! loaded model, and its layers for the ONNX export. `families/mod.rs` lists the families, one
//! line each, and `registry.rs` generates from that list what the rest of the crate uses: [`HeadKind`] (a family by name),
//! [`HeadSpec`] (a family with its hyper-parameters: a grid point, `head.json`'s `params`),
//! [`Head`] (a fitted model: `head.json`'s `head`) and [`HeadGrids`] (each family's own grid
//! settings).
//!
//! The one prediction rule: every head predicts the class with the largest decision value (what
//! CV scores); [`probabilities`] turns the decision values into probabilities with the same
//! ranking.

mod engine;
mod family;
pub mod layers;
pub(crate) mod registry;

pub use crate::families::{FoldStates, Head, HeadGrids, HeadKind, HeadSpec};
pub use engine::Engine;
pub use family::{Fold, GridData, HeadFamily, HyperParam, RowLimit, SharedGrid};
pub use layers::Layer;

use crate::calibrate::{softmax_rows, Temperature};
use ndarray::Array2;

/// Turn decision values into probabilities whose ranking is the ranking of the decision values
/// (see `calibrate`): the softmax for a calibrated family (logistic regression), softmax(t ·
/// score) with the fitted shared slope for the others (slope 1 when no calibration was fitted).
pub fn probabilities(
    head: &Head,
    calibration: Option<&Temperature>,
    scores: &Array2<f64>,
) -> Array2<f64> {
    match calibration {
        Some(t) if !head.kind().calibrated() => t.apply(scores),
        _ => softmax_rows(scores, 1.0),
    }
}

/// The one prediction rule, as words for reports: CV, `eval` and `predict` all take the class
/// with the largest decision value (for a calibrated family, the largest softmax probability,
/// the same thing).
pub fn prediction_rule(kind: HeadKind) -> &'static str {
    if kind.calibrated() {
        "argmax of the decision values (= argmax of the softmax probabilities)"
    } else {
        "argmax of the decision values (= argmax of the calibrated probabilities)"
    }
}

/// The heads `--head auto` cross-validates for `n_train` training rows, and a note for each
/// family left out because it cannot be fitted on that many rows.
pub fn auto_heads(n_train: usize) -> (Vec<HeadKind>, Vec<String>) {
    let mut kinds = Vec::new();
    let mut notes = Vec::new();
    for &k in HeadKind::ALL {
        match k.row_limit() {
            Some(l) if n_train > l.rows => notes.push(format!(
                "{n_train} training rows: skipping {k} in auto ({})",
                l.why
            )),
            _ => kinds.push(k),
        }
    }
    (kinds, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_skips_rbf_on_large_sets_only() {
        assert_eq!(auto_heads(1000).0, HeadKind::ALL.to_vec());
        let (k, notes) = auto_heads(50_000);
        assert!(!k.contains(&HeadKind::RbfSvm));
        assert_eq!(
            notes,
            ["50000 training rows: skipping rbf-svm in auto (dense kernel too large)"]
        );
    }

    /// `head.json`'s `params` keep the form heads were saved in: `kind` beside the family's
    /// fields, the engine only when it is linfa, the linear SVM's tolerance defaulted.
    #[test]
    fn params_keep_their_saved_form() {
        let text = [
            r#"{"kind":"linear-svm","c":0.1,"tol":0.01}"#,
            r#"{"kind":"logistic","c":1.0}"#,
            r#"{"kind":"logistic","c":1.0,"engine":"linfa"}"#,
            r#"{"kind":"rbf-svm","c":10.0,"gamma":0.001}"#,
        ];
        for t in text {
            let p: HeadSpec = serde_json::from_str(t).unwrap();
            assert_eq!(serde_json::to_string(&p).unwrap(), t);
        }
        let old: HeadSpec = serde_json::from_str(r#"{"kind":"linear-svm","c":1}"#).unwrap();
        assert_eq!(old.to_string(), "linear-svm C=1");
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"kind":"linear-svm","c":1.0,"tol":0.01}"#
        );
        let rbf: HeadSpec =
            serde_json::from_str(r#"{"kind":"rbf-svm","c":10,"gamma":0.001,"engine":"linfa"}"#)
                .unwrap();
        assert_eq!(rbf.to_string(), "rbf-svm C=10 gamma=1.000e-3 (linfa)");
        assert!(serde_json::from_str::<HeadSpec>(r#"{"kind":"mlp","c":1}"#).is_err());
    }
}
