//! tlearn-model: a saved head (`head.json`) with the feature extractor(s) it reads, so that
//! images go in and class probabilities come out. Used by `tlearn predict` and the Python
//! package's `tlearn.Head`.
//!
//! A head reads one cut of one backbone, a concatenation of cuts of one backbone, or cuts of
//! two backbones. [`Model`] opens one [`Extractor`] per part, from the part's fingerprint (by its
//! backbone name, or an own ONNX file at a path given), checked to give exactly the codes the
//! head was trained on; an image's codes are its parts' codes side by side in the head's column
//! order, and an image any part cannot encode is an error for that image. The extractors are
//! opened on first use: a model used on codes alone never loads a backbone.

pub mod fit;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use ndarray::{Array2, ArrayView2, Axis};
use tlearn_extract::backbone::BackboneOptions;
use tlearn_extract::{Codes, Extractor, ItemError};
use tlearn_heads::SavedHead;

/// How a [`Model`] finds and runs its backbone(s).
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Models directory (default: `tlearn_extract::registry::find_models_dir`).
    pub models_dir: Option<PathBuf>,
    /// Where the head's backbone is, when it is an own ONNX file (a path).
    pub model: Option<String>,
    /// Worker threads of each extractor (default: all cores).
    pub threads: Option<usize>,
    /// Bytes of decoded pixels in flight per extractor (see `tlearn_extract::budget`).
    pub decode_memory: Option<u64>,
    /// How each backbone is loaded (which of tlearn's operators replace tract's).
    pub backbone: BackboneOptions,
}

/// Class probabilities of a batch of images: row `i` is image `i`'s (rows sum to one); the rows
/// of images that could not be encoded (listed in `errors`, in input order) are NaN.
#[derive(Debug, Clone)]
pub struct Probabilities {
    pub probabilities: Array2<f32>,
    pub errors: Vec<ItemError>,
}

/// A saved head and, opened on first use, the extractors of its parts.
pub struct Model {
    path: PathBuf,
    head: SavedHead,
    options: ModelOptions,
    extractors: OnceLock<Vec<Extractor>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("classes", &self.head.classes)
            .field("dim", &self.head.dim)
            .finish()
    }
}

impl Model {
    /// Read and check `head.json` (a malformed file is refused naming the field).
    pub fn open(path: &Path, options: ModelOptions) -> Result<Model> {
        Ok(Model::from_head(path, SavedHead::load(path)?, options))
    }

    /// A head already loaded (`path` names it in messages).
    pub fn from_head(path: &Path, head: SavedHead, options: ModelOptions) -> Model {
        Model {
            path: path.to_path_buf(),
            head,
            options,
            extractors: OnceLock::new(),
        }
    }

    pub fn head(&self) -> &SavedHead {
        &self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Class names, in the order of the probability columns.
    pub fn classes(&self) -> &[String] {
        self.head.classes()
    }

    /// Length of the codes the head reads (its parts' dims summed).
    pub fn dim(&self) -> usize {
        self.head.dim
    }

    /// Class probabilities `[n, classes]` for codes `[n, dim]` (the parts' codes side by side).
    pub fn predict_proba(&self, codes: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.head.predict_proba(codes)
    }

    /// One extractor per part of the head, in column order, opened (and checked against the
    /// parts' fingerprints) on first call.
    pub fn extractors(&self) -> Result<&[Extractor]> {
        if let Some(e) = self.extractors.get() {
            return Ok(e);
        }
        let what = self.path.display().to_string();
        let mut opened = Vec::new();
        for part in self.head.parts() {
            let ex = Extractor::for_fingerprint(
                &part.extractor,
                self.options.model.as_deref(),
                self.options.models_dir.as_deref(),
                self.options.threads,
                self.options.decode_memory,
                &what,
                &self.options.backbone,
            )?;
            if ex.dim() != part.dim {
                bail!(
                    "{what}: part '{}' reads {} values per image; its backbone gives {}",
                    part.name,
                    part.dim,
                    ex.dim()
                );
            }
            opened.push(ex);
        }
        // Two threads may race to open them; either's extractors are the same.
        let _ = self.extractors.set(opened);
        Ok(self.extractors.get().expect("set above"))
    }

    /// The codes the head reads for the image files at `paths`: every part's codes side by
    /// side, one row per path; an image any part cannot encode is an error (the first part's
    /// reason) and its row is NaN.
    pub fn encode_paths<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Codes> {
        let parts: Vec<Codes> = self
            .extractors()?
            .iter()
            .map(|e| e.encode_paths(paths))
            .collect();
        Ok(join_parts(paths.len(), parts))
    }

    /// Class probabilities for the image files at `paths`, one row per path.
    pub fn predict_paths<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Probabilities> {
        let codes = self.encode_paths(paths)?;
        let ok = codes.ok_rows();
        let mut probabilities =
            Array2::<f32>::from_elem((paths.len(), self.classes().len()), f32::NAN);
        if !ok.is_empty() {
            let p = self.predict_proba(codes.codes.select(Axis(0), &ok).view())?;
            for (r, &i) in ok.iter().enumerate() {
                probabilities.row_mut(i).assign(&p.row(r));
            }
        }
        Ok(Probabilities {
            probabilities,
            errors: codes.errors,
        })
    }
}

/// The parts' codes of `n` inputs side by side; an input failed in any part is an error (its
/// first part's reason).
fn join_parts(n: usize, parts: Vec<Codes>) -> Codes {
    let mut errors: Vec<ItemError> = Vec::new();
    for p in &parts {
        for e in &p.errors {
            if !errors.iter().any(|f| f.index == e.index) {
                errors.push(e.clone());
            }
        }
    }
    errors.sort_by_key(|e| e.index);
    let views: Vec<ArrayView2<f32>> = parts.iter().map(|p| p.codes.view()).collect();
    let mut codes = ndarray::concatenate(Axis(1), &views)
        .unwrap_or_else(|_| Array2::from_elem((n, 0), f32::NAN));
    for e in &errors {
        codes.row_mut(e.index).fill(f32::NAN);
    }
    Codes { codes, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_side_by_side_and_a_failure_in_any_part_fails_the_row() {
        let a = Codes {
            codes: ndarray::array![[1.0, 2.0], [f32::NAN, f32::NAN], [5.0, 6.0]],
            errors: vec![ItemError {
                index: 1,
                error: "a: bad".into(),
            }],
        };
        let b = Codes {
            codes: ndarray::array![[7.0], [8.0], [f32::NAN]],
            errors: vec![ItemError {
                index: 2,
                error: "b: bad".into(),
            }],
        };
        let j = join_parts(3, vec![a, b]);
        assert_eq!(j.codes.row(0).to_vec(), vec![1.0, 2.0, 7.0]);
        assert!(j.codes.row(2).iter().all(|v| v.is_nan()));
        let idx: Vec<usize> = j.errors.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![1, 2]);
        assert_eq!(j.ok_rows(), vec![0]);
    }
}
