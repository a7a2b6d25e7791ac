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

/// Check that every value is finite; name the field otherwise.
pub fn check_finite<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a f64>,
) -> Result<(), HeadError> {
    if let Some((i, v)) = values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(HeadError::malformed(
            field,
            format!("entry {i} is {v} (not a finite number)"),
        ));
    }
    Ok(())
}

/// `check_finite` for f32 arrays.
pub fn check_finite32<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a f32>,
) -> Result<(), HeadError> {
    if let Some((i, v)) = values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(HeadError::malformed(
            field,
            format!("entry {i} is {v} (not a finite number)"),
        ));
    }
    Ok(())
}
