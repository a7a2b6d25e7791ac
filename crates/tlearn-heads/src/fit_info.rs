//! What every head's `Fit` shares: the convergence record and reading a linfa data set of
//! codes with class indices.

use crate::error::HeadError;
use linfa::dataset::AsSingleTargets;
use linfa::DatasetBase;
use ndarray::{ArrayBase, ArrayView2, Data, Ix2};
use serde::{Deserialize, Serialize};

/// How a solver stopped: iterations used (the largest over the binary problems of a
/// one-vs-rest head) and whether every problem met its stopping tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convergence {
    pub iterations: usize,
    pub converged: bool,
}

impl Convergence {
    /// Combine the records of several fits (binary problems, CV folds).
    pub fn all(items: impl IntoIterator<Item = Convergence>) -> Convergence {
        items.into_iter().fold(
            Convergence {
                iterations: 0,
                converged: true,
            },
            |a, b| Convergence {
                iterations: a.iterations.max(b.iterations),
                converged: a.converged && b.converged,
            },
        )
    }
}

impl std::fmt::Display for Convergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.iterations == 0 {
            // linfa-logistic does not report its iterations; convergence is judged by the
            // gradient at the returned weights.
            let c = if self.converged {
                "converged"
            } else {
                "NOT converged"
            };
            write!(f, "{c} (gradient test; iterations not reported)")
        } else if self.converged {
            write!(f, "converged in {} iterations", self.iterations)
        } else {
            write!(
                f,
                "NOT converged (stopped after {} iterations)",
                self.iterations
            )
        }
    }
}

/// The records, the class of each row and the number of classes (`n_classes`, or the largest
/// label + 1) of a data set of codes; refuses empty sets, mismatched lengths, out-of-range
/// labels and non-finite values.
pub fn classes_of<'a, D, T>(
    head: &'static str,
    ds: &'a DatasetBase<ArrayBase<D, Ix2>, T>,
    n_classes: Option<usize>,
) -> Result<(ArrayView2<'a, f32>, Vec<usize>, usize), HeadError>
where
    D: Data<Elem = f32>,
    T: AsSingleTargets<Elem = usize>,
{
    let bad = |reason: String| HeadError::BadTrainingData { head, reason };
    let x = ds.records.view();
    let y: Vec<usize> = ds.targets.as_single_targets().to_vec();
    if x.nrows() == 0 {
        return Err(bad("no training rows".into()));
    }
    if x.nrows() != y.len() {
        return Err(bad(format!("{} rows but {} targets", x.nrows(), y.len())));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(bad("the codes contain NaN or infinite values".into()));
    }
    let k = n_classes.unwrap_or_else(|| y.iter().max().map_or(0, |m| m + 1));
    if k < 2 {
        return Err(bad(format!("{k} classes; need at least 2")));
    }
    if let Some(&m) = y.iter().find(|&&v| v >= k) {
        return Err(bad(format!("label {m} is out of range for {k} classes")));
    }
    Ok((x, y, k))
}
