//! The [`Encoder`] trait (anything that turns preprocessed `crop×crop` RGB views into feature
//! vectors: a tract backbone or the raw-pixels baseline) and the extractor [`fingerprint`] an
//! encoder gives a cache.

use anyhow::Result;
use image::RgbImage;
use tlearn_cache::Fingerprint;

use crate::augment::Augment;
use crate::preprocess;
use crate::spec::{Pooling, Preprocess};

/// Anything that turns preprocessed `crop×crop` RGB views into feature vectors.
pub trait Encoder: Send + Sync {
    fn name(&self) -> &str;
    fn sha256(&self) -> &str;
    fn layer(&self) -> &str;
    fn pool(&self) -> Pooling;
    fn preprocess(&self) -> &Preprocess;
    /// Length of each vector `encode_views` returns.
    fn dim(&self) -> usize;
    /// The cuts whose vectors lie side by side in each vector, in order (their dims sum to
    /// `dim`): one, `layer`, unless the encoder was opened on several.
    fn cuts(&self) -> Vec<Cut> {
        vec![Cut {
            name: self.layer().to_owned(),
            dim: self.dim(),
        }]
    }
    /// One vector per view, in order.
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>>;
}

impl Encoder for crate::pixels::Pixels {
    fn name(&self) -> &str {
        self.name()
    }
    fn sha256(&self) -> &str {
        self.sha256()
    }
    fn layer(&self) -> &str {
        self.layer()
    }
    fn pool(&self) -> Pooling {
        self.pool()
    }
    fn preprocess(&self) -> &Preprocess {
        self.preprocess()
    }
    fn dim(&self) -> usize {
        self.dim()
    }
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        views.iter().map(|v| self.encode(v)).collect()
    }
}

/// One cut in an encoder's vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub name: String,
    pub dim: usize,
}

/// The extractor fingerprint stored in `meta.json`.
pub fn fingerprint(enc: &dyn Encoder, augment: Augment) -> Fingerprint {
    Fingerprint {
        backbone: enc.name().to_owned(),
        sha256: enc.sha256().to_owned(),
        layer: enc.layer().to_owned(),
        pool: enc.pool(),
        preprocess: enc.preprocess().clone(),
        augment,
    }
}

impl Encoder for crate::backbone::Backbone {
    fn name(&self) -> &str {
        self.name()
    }
    fn sha256(&self) -> &str {
        self.sha256()
    }
    fn layer(&self) -> &str {
        self.layer()
    }
    fn pool(&self) -> Pooling {
        self.pool()
    }
    fn preprocess(&self) -> &Preprocess {
        self.preprocess()
    }
    fn dim(&self) -> usize {
        self.dim()
    }
    fn cuts(&self) -> Vec<Cut> {
        self.cuts()
            .iter()
            .map(|c| Cut {
                name: c.layer.clone(),
                dim: c.dim,
            })
            .collect()
    }
    fn encode_views(&self, views: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        // One batch-1 run per view: tract is slower per image at larger batches.
        views
            .iter()
            .map(|v| {
                self.encode(preprocess::to_tensor(
                    std::slice::from_ref(v),
                    self.preprocess(),
                )?)
            })
            .collect()
    }
}
