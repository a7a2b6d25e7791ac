//! Classifying image files with an encoder: encode them in parallel (one unreadable, undecodable
//! or decoder-panicking file is a reported failure, not a crash) and rank classes by
//! probability. Used by `tlearn predict` with a saved head's probabilities or with the full
//! ImageNet model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::augment::Augment;
use crate::backbone::{Backbone, BackboneOptions};
use crate::budget::MemoryBudget;
use crate::encoder::Encoder;
use crate::imagenet::{self, ImagenetLabels};
use crate::registry::{self, Registry};
use crate::views::encode_bytes_catching;

/// One class of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub class: String,
    pub index: usize,
    pub probability: f32,
}

/// One image's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub path: String,
    /// Best class (name), its index and probability.
    pub class: String,
    pub index: usize,
    pub probability: f32,
    /// Top classes, best first.
    pub top: Vec<Ranked>,
}

/// A file that could not be classified, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub path: String,
    pub error: String,
}

/// The `k` (at least 1) most probable classes, best first; ties keep the lower index.
pub fn rank(probs: &[f32], names: &dyn Fn(usize) -> String, k: usize) -> Vec<Ranked> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k.max(1))
        .map(|i| Ranked {
            class: names(i),
            index: i,
            probability: probs[i],
        })
        .collect()
}

/// `path`'s prediction from its class probabilities.
pub fn prediction(
    path: String,
    probs: &[f32],
    names: &dyn Fn(usize) -> String,
    k: usize,
) -> Prediction {
    let top = rank(probs, names, k);
    Prediction {
        path,
        class: top[0].class.clone(),
        index: top[0].index,
        probability: top[0].probability,
        top,
    }
}

/// Encode every image in parallel, with the decoded pixels in flight held within `budget`,
/// keeping the input order: the vectors of the images that could be encoded (path, vector) and
/// the failures (a truncated JPEG is one: "truncated: ...").
pub fn encode_images(
    enc: &dyn Encoder,
    images: &[PathBuf],
    augment: Augment,
    budget: &MemoryBudget,
) -> (Vec<(String, Vec<f32>)>, Vec<Failure>) {
    let results: Vec<Result<Vec<f32>>> = images
        .par_iter()
        .map(|p| {
            let bytes = crate::listing::read_image_file(p, crate::listing::MAX_FILE_BYTES)
                .with_context(|| format!("cannot read {}", p.display()))?;
            encode_bytes_catching(enc, &bytes, augment, budget)
                .map(|e| e.vector)
                .with_context(|| format!("{}", p.display()))
        })
        .collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (p, r) in images.iter().zip(results) {
        match r {
            Ok(v) => ok.push((p.display().to_string(), v)),
            Err(e) => failed.push(Failure {
                path: p.display().to_string(),
                error: format!("{e:#}"),
            }),
        }
    }
    (ok, failed)
}

/// The full (uncut) `model`'s ImageNet top-`k` classes for each image, the model loaded with
/// `options` and the images decoded within `budget`.
pub fn imagenet_top_k(
    model: &str,
    models_dir: Option<&Path>,
    images: &[PathBuf],
    k: usize,
    options: &BackboneOptions,
    budget: &MemoryBudget,
) -> Result<(Vec<Prediction>, Vec<Failure>)> {
    let dir = registry::models_dir(models_dir);
    let reg = Registry::load(&dir)?;
    let entry = reg.get(model)?;
    let labels = ImagenetLabels::load(&dir)?;
    let backbone = Backbone::load_logits(entry, &dir, options)?;
    if backbone.dim() != labels.len() {
        bail!(
            "{model}: the full model gives {} scores, not the {} ImageNet classes",
            backbone.dim(),
            labels.len()
        );
    }
    let (ok, failures) = encode_images(&backbone, images, Augment::None, budget);
    let names = |i: usize| labels.name(i).to_string();
    let preds = ok
        .into_iter()
        .map(|(path, logits)| prediction(path, &imagenet::probabilities(&logits), &names, k))
        .collect();
    Ok((preds, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_orders_best_first_and_keeps_the_lower_index_on_ties() {
        let names = |i: usize| format!("c{i}");
        let r = rank(&[0.1, 0.4, 0.1, 0.4], &names, 3);
        let idx: Vec<usize> = r.iter().map(|x| x.index).collect();
        assert_eq!(idx, vec![1, 3, 0]);
        assert_eq!(r[0].class, "c1");
        assert_eq!(rank(&[0.3, 0.7], &names, 0).len(), 1);
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use crate::spec::{Pooling, Preprocess};
    use image::{Rgb, RgbImage};

    /// The raw-pixels encoder, except that it panics on an all-red image: stands in for a
    /// decoder or backbone bug triggered by one file.
    struct PanicsOnRed(crate::pixels::Pixels);

    impl Encoder for PanicsOnRed {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn sha256(&self) -> &str {
            self.0.sha256()
        }
        fn layer(&self) -> &str {
            self.0.layer()
        }
        fn pool(&self) -> Pooling {
            self.0.pool()
        }
        fn preprocess(&self) -> &Preprocess {
            self.0.preprocess()
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
            if views.iter().any(|v| *v.get_pixel(0, 0) == Rgb([255, 0, 0])) {
                panic!("simulated decoder bug");
            }
            views.iter().map(|v| self.0.encode(v)).collect()
        }
    }

    #[test]
    fn a_panic_on_one_image_is_a_failure_and_the_others_are_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        let b = dir.path().join("b.png");
        RgbImage::new(20, 20).save(&a).unwrap();
        RgbImage::from_pixel(20, 20, Rgb([255, 0, 0]))
            .save(&b)
            .unwrap();
        let enc = PanicsOnRed(crate::pixels::Pixels::new(8, true));
        let (ok, failed) = encode_images(
            &enc,
            &[a.clone(), b.clone()],
            Augment::None,
            &MemoryBudget::unlimited(),
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].0, a.display().to_string());
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].path, b.display().to_string());
        assert!(failed[0].error.contains("panicked"), "{:?}", failed[0]);
    }
}
