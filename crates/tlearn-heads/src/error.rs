//! The heads library's typed errors.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HeadError {
    /// A hyper-parameter outside its domain (linfa's `ParamGuard::check`).
    #[error("invalid hyper-parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    /// Training data a head cannot be fitted on.
    #[error("cannot fit {head}: {reason}")]
    BadTrainingData { head: &'static str, reason: String },
    /// The solver failed (diverged, non-finite values).
    #[error("{head}: {reason}")]
    Solver { head: &'static str, reason: String },
    /// Arrays of a saved head that disagree in shape or hold non-finite values.
    #[error("field `{field}`: {problem}")]
    Malformed { field: String, problem: String },
    /// `--train-views on` asked of a cache that keeps no per-view codes.
    #[error(
        "feature cache {cache} keeps no per-view codes to train on (no views.npy): extract it \
         with `tlearn extract --augment flip|crops5|crops10 --keep-views`, or train with \
         `--train-views off` (or `auto`)"
    )]
    NoViews { cache: String },
    /// linfa reported an error (required by linfa's `Fit`).
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

impl HeadError {
    pub fn malformed(field: impl Into<String>, problem: impl Into<String>) -> HeadError {
        HeadError::Malformed {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The hyper-parameter rules the heads' `ParamGuard`s share: every named value is a positive
/// finite number.
pub fn check_positive(params: &[(&'static str, f64)]) -> Result<(), HeadError> {
    match params.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some(&(name, value)) => Err(HeadError::InvalidParam {
            name,
            value,
            reason: "must be a positive number",
        }),
        None => Ok(()),
    }
}

/// An iteration cap is at least 1.
pub fn check_max_iter(max_iter: usize) -> Result<(), HeadError> {
    if max_iter == 0 {
        return Err(HeadError::InvalidParam {
            name: "max_iter",
            value: 0.0,
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Check that every value (f32 or f64) is finite; name the field otherwise.
pub fn check_finite<'a, T>(
    field: &str,
    values: impl IntoIterator<Item = &'a T>,
) -> Result<(), HeadError>
where
    T: Copy + Into<f64> + std::fmt::Display + 'a,
{
    if let Some((i, v)) = values
        .into_iter()
        .enumerate()
        .find(|(_, v)| !(**v).into().is_finite())
    {
        return Err(HeadError::malformed(
            field,
            format!("entry {i} is {v} (not a finite number)"),
        ));
    }
    Ok(())
}
