//! The caches a training run chooses among, as inputs: loaded from the paths a user gives
//! (each a feature cache or a cut set; a second path is another backbone's codes of the same
//! images) and named the way reports name them; checked to hold the same images in the same
//! rows; joined side by side for a concatenation.

use crate::cache::FeatureCache;
use crate::model_file::FeaturePart;
use crate::transform::{BlockNorm, BlockRule};
use anyhow::Result;
use ndarray::{concatenate, Axis};
use std::path::PathBuf;
use thiserror::Error;

/// Problems with the caches given for a selection or an evaluation.
#[derive(Debug, Error)]
pub enum CutsError {
    #[error("no feature caches given")]
    Empty,
    #[error(
        "{a} and {b} do not hold the same images ({na} vs {nb} rows; {detail}); codes to \
         compare or concatenate must come from the same images (extract both from the same \
         folder)"
    )]
    DifferentImages {
        a: String,
        b: String,
        na: usize,
        nb: usize,
        detail: String,
    },
    #[error("the head's part '{part}' ({what}) is in none of the caches given: {searched}")]
    PartMissing {
        part: String,
        what: String,
        searched: String,
    },
    #[error("--cut {asked}: no cut named '{missing}' among the caches given ({available})")]
    UnknownCut {
        asked: String,
        missing: String,
        available: String,
    },
    #[error("--pair-top {0}: must be 0 (no concatenations) or at least 2")]
    PairTop(usize),
}

/// One cache taking part in the selection.
#[derive(Debug, Clone)]
pub struct CutInput {
    /// The name reports use: the cut name (`stage6`), prefixed by the backbone for a second
    /// backbone's cuts (`mobilenetv2/features`).
    pub name: String,
    /// 0 for the first path given, 1 for the second backbone's.
    pub backbone: usize,
    /// The backbone's bottleneck (its registry default cut): what "similar to ImageNet" means.
    pub bottleneck: bool,
    pub cache: FeatureCache,
}

/// Load the caches `paths` name (each a feature cache, or a cut set whose every cut becomes an
/// input), named as reports name them: the cut name (a single cache or Parquet codes directory: its layer), prefixed by
/// the backbone for the second path's (`mobilenetv2/features`). `bottleneck(backbone)` is the
/// backbone's bottleneck cut (its registry default) when known: an input cut there is marked.
pub fn load_inputs(
    paths: &[PathBuf],
    bottleneck: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<CutInput>> {
    let mut inputs = Vec::new();
    for (b, path) in paths.iter().enumerate() {
        let is_set = path.join(tlearn_cache::set::SET_FILE).is_file();
        for named in tlearn_cache::resolve(path)? {
            let cache = FeatureCache::load(&named.dir)?;
            let fp = &cache.meta.extractor;
            let cut = if is_set {
                named.name.clone()
            } else {
                fp.layer.clone()
            };
            let is_bottleneck = bottleneck(&fp.backbone).is_some_and(|c| c == fp.layer);
            inputs.push(CutInput {
                name: if b == 0 {
                    cut
                } else {
                    format!("{}/{cut}", fp.backbone)
                },
                backbone: b,
                bottleneck: is_bottleneck,
                cache,
            });
        }
    }
    if inputs.is_empty() {
        return Err(CutsError::Empty.into());
    }
    Ok(inputs)
}

/// Refuse caches that do not hold the same images in the same rows (paths, labels and content
/// hashes; caches list their rows sorted by path, so the same images give the same order).
pub fn check_same_images(inputs: &[CutInput]) -> Result<(), CutsError> {
    let Some(first) = inputs.first() else {
        return Err(CutsError::Empty);
    };
    let a = &first.cache;
    for other in &inputs[1..] {
        let b = &other.cache;
        let name = |c: &FeatureCache| c.dir.display().to_string();
        if a.paths != b.paths {
            let only = |x: &[String], y: &[String]| -> Vec<String> {
                let y: std::collections::HashSet<&String> = y.iter().collect();
                let mut v: Vec<String> = x.iter().filter(|p| !y.contains(p)).cloned().collect();
                v.sort();
                v.truncate(3);
                v
            };
            let (oa, ob) = (only(&a.paths, &b.paths), only(&b.paths, &a.paths));
            let detail = if oa.is_empty() && ob.is_empty() {
                "same paths in another order".to_string()
            } else {
                format!("only in the first: {oa:?}; only in the second: {ob:?}")
            };
            return Err(CutsError::DifferentImages {
                a: name(a),
                b: name(b),
                na: a.rows(),
                nb: b.rows(),
                detail,
            });
        }
        if let Some(i) = (0..a.rows()).find(|&i| a.sha256[i] != b.sha256[i] || a.y[i] != b.y[i]) {
            return Err(CutsError::DifferentImages {
                a: name(a),
                b: name(b),
                na: a.rows(),
                nb: b.rows(),
                detail: format!(
                    "'{}' has other content (sha256) or class in the second; re-run `tlearn \
                     extract` on both",
                    a.paths[i]
                ),
            });
        }
    }
    Ok(())
}

/// The caches side by side as one cache: columns of the first, then of the second, ...; the
/// rows, classes and dataset are the first's (all are checked equal), the fingerprint is the
/// first's (a head records every part's in [`FeaturePart`]).
pub(crate) fn concat(caches: &[&FeatureCache]) -> FeatureCache {
    let mut out = caches[0].clone();
    if caches.len() > 1 {
        let views: Vec<_> = caches.iter().map(|c| c.x.view()).collect();
        out.x = concatenate(Axis(1), &views).expect("same rows checked");
        out.meta.dim = out.x.ncols();
    }
    out
}

/// The per-block normalisation of a concatenation of `caches` (none for a single cache).
pub fn block_norm_of(rule: Option<BlockRule>, caches: &[&FeatureCache]) -> Option<BlockNorm> {
    let rule = rule?;
    (caches.len() > 1).then(|| BlockNorm::new(rule, caches.iter().map(|c| c.meta.dim).collect()))
}

/// The caches' kept views side by side (within each view, columns of the first cache, then of
/// the second, as [`concat`]); `None` unless every cache keeps the same views.
pub(crate) fn concat_views(caches: &[&FeatureCache]) -> Result<Option<ndarray::Array3<f32>>> {
    let names = &caches[0].meta.views;
    if caches.iter().any(|c| c.meta.views != *names) {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(caches.len());
    for c in caches {
        match c.read_views()? {
            Some(v) => parts.push(v),
            None => return Ok(None),
        }
    }
    if parts.len() == 1 {
        return Ok(parts.pop());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(Some(
        concatenate(Axis(2), &views)?
            .as_standard_layout()
            .into_owned(),
    ))
}

/// The parts a head trained on `members` of `inputs` records.
pub(crate) fn parts_of(inputs: &[CutInput], members: &[usize]) -> Vec<FeaturePart> {
    let mut offset = 0;
    members
        .iter()
        .map(|&m| {
            let c = &inputs[m].cache;
            let p = FeaturePart {
                name: inputs[m].name.clone(),
                cache: c.dir.display().to_string(),
                extractor: c.meta.extractor.clone(),
                dim: c.meta.dim,
                offset,
            };
            offset += c.meta.dim;
            p
        })
        .collect()
}

/// Equal codes (within float rounding): `head_conv` average-pooled is `features`.
pub(crate) fn same_codes(a: &FeatureCache, b: &FeatureCache) -> bool {
    if a.x.dim() != b.x.dim() {
        return false;
    }
    let scale = a.x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.x.iter()
        .zip(b.x.iter())
        .all(|(u, v)| (u - v).abs() <= 1e-5 * scale)
}
