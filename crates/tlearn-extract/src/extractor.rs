//! [`Extractor`]: the library's face for turning images into CNN codes, used by the command
//! line and the Python package alike.
//!
//! Open one from a registry name, the raw-pixel baseline or an own ONNX path plus a typed cut
//! specification ([`LayerSpec`]), or from a fingerprint (a cache's, a saved head's); then
//! [`Extractor::encode_paths`] or [`Extractor::encode_bytes`] give the codes of many images at
//! once, one row per input, with a per-item error for the ones that could not be encoded.
//!
//! The work is `extract`'s: the same decode → preprocess → views → encode path
//! ([`crate::views::encode_bytes_catching`]) and the same work loop ([`crate::workers`]): each
//! worker thread pulls the next image as soon as it is free, the decoded pixels in flight are
//! held within one [`MemoryBudget`], and a panic inside a decoder or the backbone is an error
//! for that item. So codes equal the `features.npy` rows `tlearn extract` writes for the same
//! files, bit for bit, and throughput is the command's. The worker threads and the budget are
//! made once, when the extractor is opened, and serve every call.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ndarray::Array2;
use tlearn_cache::{Fingerprint, LayerSpec};

use crate::augment::Augment;
use crate::backbone::BackboneOptions;
use crate::budget::MemoryBudget;
use crate::encoder::{fingerprint, Cut, Encoder};
use crate::extract::{self, Options};
use crate::open::{self, OwnModel};
use crate::spec::{DecodeMode, Pooling};
use crate::summary::Summary;
use crate::views::encode_bytes_catching;

/// How an [`Extractor`] is opened; [`Default`] is `tlearn extract`'s defaults.
#[derive(Debug, Clone)]
pub struct ExtractorOptions {
    /// Models directory (default: [`crate::registry::find_models_dir`]).
    pub models_dir: Option<PathBuf>,
    /// How a spatial cut becomes a vector.
    pub pool: Pooling,
    /// Test-time augmentation (the views' codes are averaged).
    pub augment: Augment,
    /// JPEG decoding: reduced (DCT-domain scaling) or full.
    pub decode: DecodeMode,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Bytes of decoded pixels in flight across all threads (default: a quarter of the
    /// machine's memory; see [`crate::budget`]).
    pub decode_memory: Option<u64>,
    /// Largest image file read, in bytes: larger files are errors (skipped rows) from their
    /// size, without being read (default [`crate::listing::MAX_FILE_BYTES`]).
    pub max_file_size: u64,
    /// How to read an own ONNX file (ignored for registry models).
    pub own: OwnModel,
    /// How the backbone is loaded (which of tlearn's operators replace tract's).
    pub backbone: BackboneOptions,
}

impl Default for ExtractorOptions {
    fn default() -> Self {
        ExtractorOptions {
            models_dir: None,
            pool: Pooling::Avg,
            augment: Augment::None,
            decode: DecodeMode::Reduced,
            threads: None,
            decode_memory: None,
            max_file_size: crate::listing::MAX_FILE_BYTES,
            own: OwnModel::default(),
            backbone: BackboneOptions::default(),
        }
    }
}

/// How [`Extractor::extract_dir`] writes its cache.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Replace a cache made with another extractor instead of refusing.
    pub overwrite: bool,
    /// Show a progress bar (still hidden when stderr is not a terminal or `CI` is set).
    pub progress: bool,
    /// Also keep every augmentation view's codes (`views.npy`); needs an augmentation.
    pub keep_views: bool,
}

/// One input that could not be encoded, and why (the message names the file for a path).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemError {
    /// Its position in the input.
    pub index: usize,
    pub error: String,
}

/// The codes of a batch of inputs: row `i` is input `i`'s code; the rows of inputs that failed
/// (listed in `errors`, in input order) are NaN.
#[derive(Debug, Clone)]
pub struct Codes {
    pub codes: Array2<f32>,
    pub errors: Vec<ItemError>,
}

impl Codes {
    /// The rows that were encoded, in input order.
    pub fn ok_rows(&self) -> Vec<usize> {
        let mut bad = self.errors.iter().map(|e| e.index).peekable();
        (0..self.codes.nrows())
            .filter(|&i| {
                if bad.peek() == Some(&i) {
                    bad.next();
                    false
                } else {
                    true
                }
            })
            .collect()
    }
}

/// A backbone (or the raw-pixel baseline) opened with its cut, pooling, augmentation, worker
/// threads and memory budget: images in, CNN codes out.
pub struct Extractor {
    encoder: Box<dyn Encoder>,
    augment: Augment,
    fingerprint: Fingerprint,
    pool: rayon::ThreadPool,
    budget: MemoryBudget,
    max_file_size: u64,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("fingerprint", &self.fingerprint)
            .field("dim", &self.dim())
            .field("threads", &self.threads())
            .finish()
    }
}

impl Extractor {
    /// Open `model` (a registry name, `pixels`/`pixelsN`/`pixels-rgbN`, or the path of an own
    /// ONNX file, which needs cuts named in `layer`) cut as `layer` says.
    pub fn open(model: &str, layer: &LayerSpec, opts: &ExtractorOptions) -> Result<Extractor> {
        let encoder = open::open_encoder(
            model,
            opts.models_dir.as_deref(),
            layer,
            opts.pool,
            &opts.own,
            opts.decode,
            &opts.backbone,
        )?;
        Ok(
            Extractor::from_encoder(encoder, opts.augment, opts.threads, opts.decode_memory)?
                .with_max_file_size(opts.max_file_size),
        )
    }

    /// Open the extractor a fingerprint describes (a cache's `meta.json`, a saved head's
    /// `extractor`), found by its backbone name or at `model` (a path, for an own ONNX file),
    /// refused naming the field when what loads gives another fingerprint. `what` names the
    /// fingerprint's owner in messages.
    pub fn for_fingerprint(
        fp: &Fingerprint,
        model: Option<&str>,
        models_dir: Option<&Path>,
        threads: Option<usize>,
        decode_memory: Option<u64>,
        what: &str,
        options: &BackboneOptions,
    ) -> Result<Extractor> {
        let encoder = open::encoder_for_fingerprint(fp, model, models_dir, what, options)?;
        Extractor::from_encoder(encoder, fp.augment, threads, decode_memory)
    }

    /// Wrap an encoder already built.
    pub fn from_encoder(
        encoder: Box<dyn Encoder>,
        augment: Augment,
        threads: Option<usize>,
        decode_memory: Option<u64>,
    ) -> Result<Extractor> {
        if threads == Some(0) {
            anyhow::bail!("threads must be at least 1");
        }
        let fingerprint = fingerprint(encoder.as_ref(), augment);
        Ok(Extractor {
            encoder,
            augment,
            fingerprint,
            pool: crate::workers::pool(threads)?,
            budget: MemoryBudget::from_setting(decode_memory),
            max_file_size: crate::listing::MAX_FILE_BYTES,
        })
    }

    /// Image files over `bytes` are refused from their size, without being read.
    pub fn with_max_file_size(mut self, bytes: u64) -> Extractor {
        self.max_file_size = bytes;
        self
    }

    /// What a cache of these codes records (`meta.json`'s `extractor`): backbone, sha256,
    /// cut, pooling, preprocessing, augmentation.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Length of each code.
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// The cuts whose codes lie side by side in each row (one unless opened on several).
    pub fn cuts(&self) -> Vec<Cut> {
        self.encoder.cuts()
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The memory budget for decoded pixels in flight, in bytes.
    pub fn decode_memory(&self) -> u64 {
        self.budget.limit()
    }

    /// The encoder (backbone or raw pixels) inside.
    pub fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }

    /// The codes of the image files at `paths`, one row per path in order; a file that cannot
    /// be read, decoded or encoded is an [`ItemError`] naming it (its row NaN), never a panic.
    pub fn encode_paths<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Codes {
        self.encode_each(paths.len(), &|i| {
            let p = paths[i].as_ref();
            let bytes = crate::listing::read_image_file(p, self.max_file_size)
                .with_context(|| format!("cannot read {}", p.display()))?;
            self.encode_one(&bytes)
                .with_context(|| p.display().to_string())
        })
    }

    /// The codes of encoded images in memory (the bytes of PNG, JPEG, ... files), one row per
    /// item in order; an item that cannot be decoded or encoded is an [`ItemError`].
    pub fn encode_bytes<B: AsRef<[u8]> + Sync>(&self, items: &[B]) -> Codes {
        self.encode_each(items.len(), &|i| {
            self.encode_one(items[i].as_ref())
                .with_context(|| format!("item {i}"))
        })
    }

    /// Extract the folder `dataset` (`DIR/<class>/<image>`) into the feature cache `out`, as
    /// `tlearn extract` does (an existing cache of the same extractor is updated
    /// incrementally, a killed run resumes), with this extractor's threads and memory budget.
    pub fn extract_dir(&self, dataset: &Path, out: &Path, cache: &CacheOptions) -> Result<Summary> {
        let mut summaries = Extractor::extract_dir_together(&[(self, out)], dataset, cache)?;
        Ok(summaries.remove(0))
    }

    /// Extract the folder `dataset` into one cache per extractor in one pass
    /// ([`extract::extract_together`]): every image is read, hashed and decoded once for all of
    /// them, and each cache ends as [`Extractor::extract_dir`] would write it alone. The pass
    /// runs on the first extractor's worker threads, memory budget and file size limit; the
    /// extractors must agree on the augmentation. One summary per extractor, in order.
    pub fn extract_dir_together(
        parts: &[(&Extractor, &Path)],
        dataset: &Path,
        cache: &CacheOptions,
    ) -> Result<Vec<Summary>> {
        let Some((first, _)) = parts.first() else {
            anyhow::bail!("no extractor to extract with");
        };
        if let Some((other, _)) = parts.iter().find(|(e, _)| e.augment != first.augment) {
            anyhow::bail!(
                "extractors in one pass must share the augmentation: {} has {}, {} has {}",
                first.fingerprint.backbone,
                first.augment,
                other.fingerprint.backbone,
                other.augment
            );
        }
        if cache.keep_views && first.augment == Augment::None {
            anyhow::bail!(
                "keeping views needs an augmentation (flip, crops5 or crops10); none was asked"
            );
        }
        let mut opts = Options::new(dataset, parts[0].1);
        opts.augment = first.augment;
        opts.threads = Some(first.threads());
        opts.decode_memory = Some(first.budget.limit());
        opts.max_file_size = first.max_file_size;
        opts.overwrite = cache.overwrite;
        opts.progress = cache.progress;
        opts.keep_views = cache.keep_views;
        let parts: Vec<extract::Part> = parts
            .iter()
            .map(|(e, out)| extract::Part {
                encoder: e.encoder.as_ref(),
                out,
            })
            .collect();
        extract::extract_together(&parts, &opts)
    }

    fn encode_one(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        encode_bytes_catching(self.encoder.as_ref(), bytes, self.augment, &self.budget)
            .map(|e| e.vector)
    }

    fn encode_each(&self, n: usize, work: &(dyn Fn(usize) -> Result<Vec<f32>> + Sync)) -> Codes {
        let dim = self.dim();
        let mut codes = Array2::<f32>::from_elem((n, dim), f32::NAN);
        let mut errors = Vec::new();
        let consumed = crate::workers::pull_each(&self.pool, n, work, &mut |i, r| {
            match r {
                Ok(v) => codes.row_mut(i).assign(&ndarray::ArrayView1::from(&v[..])),
                Err(e) => errors.push(ItemError {
                    index: i,
                    error: format!("{e:#}"),
                }),
            }
            Ok(())
        });
        // The consumer above never fails; a panic outside the caught section resumes here.
        debug_assert!(consumed.is_ok());
        errors.sort_by_key(|e| e.index);
        Codes { codes, errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn bytes_and_paths_give_one_row_each_and_errors_in_place() {
        let ex = Extractor::open(
            "pixels8",
            &LayerSpec::Default,
            &ExtractorOptions {
                threads: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let a = png(&RgbImage::from_pixel(30, 20, Rgb([200, 10, 10])));
        let b = png(&RgbImage::from_pixel(20, 30, Rgb([10, 10, 200])));
        let items: Vec<&[u8]> = vec![a.as_slice(), b"not an image".as_slice(), b.as_slice()];
        let c = ex.encode_bytes(&items);
        assert_eq!(c.codes.dim(), (3, ex.dim()));
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.errors[0].index, 1);
        assert!(c.errors[0].error.starts_with("item 1"), "{:?}", c.errors);
        assert!(c.codes.row(1).iter().all(|v| v.is_nan()));
        assert!(c.codes.row(0).iter().all(|v| v.is_finite()));
        assert_eq!(c.ok_rows(), vec![0, 2]);

        let dir = tempfile::tempdir().unwrap();
        let pa = dir.path().join("a.png");
        std::fs::write(&pa, &a).unwrap();
        let missing = dir.path().join("missing.png");
        let p = ex.encode_paths(&[missing.clone(), pa]);
        assert_eq!(p.codes.row(1), c.codes.row(0));
        assert_eq!(p.errors[0].index, 0);
        assert!(p.errors[0].error.contains("missing.png"), "{:?}", p.errors);
        assert_eq!(ex.encode_paths::<PathBuf>(&[]).codes.dim(), (0, ex.dim()));
    }
}
