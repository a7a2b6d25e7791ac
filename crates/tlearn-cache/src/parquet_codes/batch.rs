//! The Arrow schema of the codes and one batch of rows in it.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, ListArray, RecordBatch, StringArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{ERROR, FEATURES, FINGERPRINT, LABEL, PATH, SHA256};
use crate::error::CacheError;

/// How `features` is typed: a fixed-size list (what tlearn writes) or a plain list (what
/// Spark's `array<float>` is, for `mapInArrow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Fixed,
    Variable,
}

/// One image's row.
#[derive(Debug, Clone, Copy)]
pub struct CodeRow<'a> {
    pub path: &'a str,
    pub label: Option<&'a str>,
    pub sha256: Option<&'a str>,
    /// `None` exactly when `error` is given.
    pub features: Option<&'a [f32]>,
    pub error: Option<&'a str>,
}

fn item_field(kind: ListKind) -> Arc<Field> {
    match kind {
        ListKind::Fixed => Arc::new(Field::new("item", DataType::Float32, false)),
        ListKind::Variable => Arc::new(Field::new("element", DataType::Float32, true)),
    }
}

/// The schema of codes of length `dim`.
pub fn schema(dim: usize, kind: ListKind) -> SchemaRef {
    let features = match kind {
        ListKind::Fixed => DataType::FixedSizeList(item_field(kind), dim as i32),
        ListKind::Variable => DataType::List(item_field(kind)),
    };
    Arc::new(Schema::new(vec![
        Field::new(PATH, DataType::Utf8, false),
        Field::new(LABEL, DataType::Utf8, true),
        Field::new(SHA256, DataType::Utf8, true),
        Field::new(FEATURES, features, true),
        Field::new(ERROR, DataType::Utf8, true),
        Field::new(FINGERPRINT, DataType::Utf8, false),
    ]))
}

/// `rows` as one batch of [`schema`]; a row with codes of another length than `dim`, or with
/// both or neither of codes and error, is refused naming its path.
pub fn record_batch(
    rows: &[CodeRow<'_>],
    dim: usize,
    fingerprint_hash: &str,
    kind: ListKind,
) -> Result<RecordBatch, CacheError> {
    let mut values = Vec::with_capacity(rows.len() * dim);
    let mut valid = Vec::with_capacity(rows.len());
    let mut lengths = Vec::with_capacity(rows.len());
    for r in rows {
        match (r.features, r.error) {
            (Some(f), None) if f.len() == dim => {
                values.extend_from_slice(f);
                valid.push(true);
                lengths.push(dim);
            }
            (Some(f), None) => {
                return Err(CacheError::invalid(
                    r.path,
                    format!("{} values, but the codes are {dim} long", f.len()),
                ))
            }
            (None, Some(_)) => {
                if kind == ListKind::Fixed {
                    values.extend(std::iter::repeat_n(0.0, dim));
                }
                valid.push(false);
                lengths.push(0);
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(CacheError::invalid(
                    r.path,
                    "a row holds either codes or an error, not both or neither",
                ))
            }
        }
    }
    let values: ArrayRef = Arc::new(Float32Array::from(values));
    let nulls = Some(NullBuffer::from(valid));
    let features: ArrayRef = match kind {
        ListKind::Fixed => Arc::new(
            FixedSizeListArray::try_new(item_field(kind), dim as i32, values, nulls)
                .map_err(arrow_err)?,
        ),
        ListKind::Variable => Arc::new(
            ListArray::try_new(
                item_field(kind),
                OffsetBuffer::from_lengths(lengths),
                values,
                nulls,
            )
            .map_err(arrow_err)?,
        ),
    };
    let strings = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let columns = vec![
        strings(rows.iter().map(|r| Some(r.path)).collect()),
        strings(rows.iter().map(|r| r.label).collect()),
        strings(rows.iter().map(|r| r.sha256).collect()),
        features,
        strings(rows.iter().map(|r| r.error).collect()),
        strings(vec![Some(fingerprint_hash); rows.len()]),
    ];
    RecordBatch::try_new(schema(dim, kind), columns).map_err(arrow_err)
}

fn arrow_err(e: arrow_schema::ArrowError) -> CacheError {
    CacheError::invalid("<codes batch>", e.to_string())
}
