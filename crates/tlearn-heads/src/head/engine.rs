//! Which solvers fit the families that have two: tlearn's own or linfa's algorithm crates.

use serde::{Deserialize, Serialize};

/// Which solvers fit logistic regression and the RBF SVM: tlearn's own (L-BFGS, SMO on a
/// shared kernel) or linfa's algorithm crates (`linfa-logistic`, `linfa-svm`). The linear SVM
/// has one engine (tlearn's dual coordinate descent).
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
    /// What a grid point's description ends with: nothing for tlearn's solvers, " (linfa)".
    pub fn suffix(&self) -> &'static str {
        match self {
            Engine::Tlearn => "",
            Engine::Linfa => " (linfa)",
        }
    }
}
