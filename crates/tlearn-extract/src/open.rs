//! From what a user names to a backbone or an [`Encoder`]: a registry model, the raw-pixels
//! baseline, or the user's own ONNX file ([`open_backbone`], [`open_encoder`]); and the one way
//! to open the backbone a saved fingerprint describes ([`backbone_for_fingerprint`]: `predict`,
//! `export`, the library's `Model`).
//!
//! One rule says whether `--model X` is a path ([`is_model_path`]); `layers`, `extract` and
//! `predict` all use it. The cuts are a typed [`LayerSpec`] (parsed once, in `tlearn-cache`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tlearn_cache::{Fingerprint, LayerSpec};

use crate::backbone::{Backbone, BackboneOptions};
use crate::encoder::{fingerprint, Encoder};
use crate::pixels::Pixels;
use crate::registry::{self, ModelEntry, Registry};
use crate::spec::{ChannelOrder, DecodeMode, Layout, Pooling};

/// `model` names a file (rather than a registry entry) when it ends in `.onnx` or contains a
/// path separator: `./net`, `models/x`, `net.onnx` are files; `efficientnet-lite0` is a name.
pub fn is_model_path(model: &str) -> bool {
    model.ends_with(".onnx") || model.contains('/') || model.contains(std::path::MAIN_SEPARATOR)
}

/// How to read a user's own ONNX file (ignored for registry models).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnModel {
    pub crop: u32,
    pub value_scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channels: ChannelOrder,
    pub layout: Layout,
}

impl Default for OwnModel {
    /// A 224 ImageNet-normalised RGB NCHW network.
    fn default() -> Self {
        OwnModel {
            crop: 224,
            value_scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            channels: ChannelOrder::Rgb,
            layout: Layout::Nchw,
        }
    }
}

/// The registry entry for `model`, or an entry built from a user's ONNX file (cut at `layer`,
/// empty when not given).
pub fn entry_for(
    model: &str,
    models_dir: &Path,
    layer: Option<&str>,
    own: &OwnModel,
) -> Result<ModelEntry> {
    if is_model_path(model) {
        let path = PathBuf::from(model);
        if !path.is_file() {
            bail!("model file {} does not exist", path.display());
        }
        return Ok(ModelEntry::custom(
            &path,
            own.crop,
            own.value_scale,
            own.mean,
            own.std,
            own.channels,
            own.layout,
            layer.unwrap_or(""),
        ));
    }
    Ok(Registry::load(models_dir)?.get(model)?.clone())
}

pub use tlearn_cache::cut_spec::ALL_CUTS;

/// The cut names `spec` asks of `entry`: its default cut, every named cut in registry order
/// (`all`), or the cuts listed.
pub fn resolve_cuts(spec: &LayerSpec, entry: &ModelEntry) -> Result<Vec<String>> {
    Ok(match spec {
        LayerSpec::Default => vec![entry.default_cut.clone()],
        LayerSpec::All => {
            if entry.cuts.is_empty() {
                bail!(
                    "--layer {ALL_CUTS}: {} has no named cuts (name the layers, see `tlearn layers`)",
                    entry.name
                );
            }
            entry.cuts.iter().map(|c| c.name.clone()).collect()
        }
        LayerSpec::Cuts(c) => c.iter().map(|c| c.as_str().to_owned()).collect(),
    })
}

/// Open the backbone `model` names (registry name or an own ONNX path, which needs cuts named
/// in `layer`), cut as `layer` says (several cuts come from one forward pass), reduced by
/// `pool`; `decode` replaces the entry's JPEG decoding when given.
pub fn open_backbone(
    model: &str,
    models_dir: &Path,
    layer: &LayerSpec,
    pool: Pooling,
    own: &OwnModel,
    decode: Option<DecodeMode>,
    options: &BackboneOptions,
) -> Result<Backbone> {
    if is_model_path(model) && layer.cuts().is_empty() {
        bail!("{model}: an own ONNX model needs --layer NODE (see `tlearn layers {model}`)");
    }
    let layer_text = layer.to_string();
    let mut entry = entry_for(
        model,
        models_dir,
        Some(layer_text.as_str()).filter(|l| !l.is_empty()),
        own,
    )?;
    if let Some(d) = decode {
        entry.preprocess.decode = d;
    }
    let cuts = resolve_cuts(layer, &entry)?;
    Backbone::load_cuts(&entry, models_dir, &cuts, pool, options)
}

/// Build the encoder named by `model` (registry name, `pixels*`, or an ONNX path, which needs
/// `layer`); `layer` may name several cuts (one forward pass gives them all); `decode` is how a
/// backbone decodes JPEGs (the raw-pixel baseline always decodes fully); `options` how a
/// backbone is loaded.
pub fn open_encoder(
    model: &str,
    models_dir: Option<&Path>,
    layer: &LayerSpec,
    pool: Pooling,
    own: &OwnModel,
    decode: DecodeMode,
    options: &BackboneOptions,
) -> Result<Box<dyn Encoder>> {
    if let Some(p) = Pixels::parse(model) {
        if layer.is_several() {
            bail!(
                "{model}: the raw-pixels baseline has one cut; --layer '{layer}' asks for several"
            );
        }
        return Ok(Box::new(p?));
    }
    let dir = registry::models_dir(models_dir);
    Ok(Box::new(open_backbone(
        model,
        &dir,
        layer,
        pool,
        own,
        Some(decode),
        options,
    )?))
}

/// The decode mode of an extraction into `out`: `asked` when given, else the mode of what `out`
/// already holds (a cache, or an unfinished first run's journal), so that updating or resuming
/// it needs no flag, else [`DecodeMode::Reduced`].
pub fn decode_mode_for(out: &Path, asked: Option<DecodeMode>) -> DecodeMode {
    asked.unwrap_or_else(|| {
        tlearn_cache::existing_fingerprint(out)
            .map_or(DecodeMode::Reduced, |fp| fp.preprocess.decode)
    })
}

/// Why the backbone a fingerprint describes could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintOpenError {
    /// Neither the registry nor the path given knows the backbone.
    #[error("finding the backbone '{backbone}' {what} was trained on: {source:#}")]
    Entry {
        backbone: String,
        what: String,
        source: anyhow::Error,
    },
    /// The file is there but does not load (or the cut does not resolve).
    #[error("loading the backbone of {what}: {source:#}")]
    Load { what: String, source: anyhow::Error },
    /// The loaded backbone gives another fingerprint (another file, cut or setting).
    #[error(
        "the backbone loaded for {what} ({path}) is not the feature extractor it expects: {diff}"
    )]
    Mismatch {
        what: String,
        path: String,
        diff: tlearn_cache::FingerprintDiff,
    },
}

/// The one way to open the backbone a fingerprint `fp` describes (a saved head's extractor,
/// a cache's): found by its backbone name in `models_dir`, or at `model` (a path, for a head
/// trained on an own ONNX file); cut at `fp.layer` (one or several cuts), pooled and
/// preprocessed as `fp` records; checked to give exactly `fp` (file sha256, cut, pooling,
/// preprocessing): a different file or setting is refused naming the field. `what` names
/// `fp`'s owner in messages; the backbone is loaded with `options`. Returns the entry it was opened from too (export copies its graph).
pub fn backbone_for_fingerprint(
    fp: &Fingerprint,
    model: Option<&str>,
    models_dir: &Path,
    what: &str,
    options: &BackboneOptions,
) -> Result<(ModelEntry, Backbone), FingerprintOpenError> {
    let mut entry = entry_for(
        model.unwrap_or(&fp.backbone),
        models_dir,
        Some(&fp.layer),
        &OwnModel::default(),
    )
    .map_err(|source| FingerprintOpenError::Entry {
        backbone: fp.backbone.clone(),
        what: what.to_owned(),
        source,
    })?;
    entry.preprocess = fp.preprocess.clone();
    let load = || -> Result<Backbone> {
        let spec = LayerSpec::parse(Some(&fp.layer))?;
        let cuts = resolve_cuts(&spec, &entry)?;
        Backbone::load_cuts(&entry, models_dir, &cuts, fp.pool, options)
    };
    let bb = load().map_err(|source| FingerprintOpenError::Load {
        what: what.to_owned(),
        source,
    })?;
    let actual = fingerprint(&bb, fp.augment);
    if let Some(diff) = fp.compare(&actual, what, "the backbone on disk") {
        return Err(FingerprintOpenError::Mismatch {
            what: what.to_owned(),
            path: entry.path(models_dir).display().to_string(),
            diff,
        });
    }
    Ok((entry, bb))
}

/// The encoder `fp` describes: the raw-pixel baseline it names, or
/// [`backbone_for_fingerprint`]'s backbone.
pub fn encoder_for_fingerprint(
    fp: &Fingerprint,
    model: Option<&str>,
    models_dir: Option<&Path>,
    what: &str,
    options: &BackboneOptions,
) -> Result<Box<dyn Encoder>> {
    if let Some(p) = Pixels::parse(&fp.backbone) {
        let p = p?;
        let actual = fingerprint(&p, fp.augment);
        if let Some(diff) = fp.compare(&actual, what, "this build's baseline") {
            bail!("the raw-pixel baseline is not the feature extractor {what} expects: {diff}");
        }
        return Ok(Box::new(p));
    }
    let dir = registry::models_dir(models_dir);
    Ok(Box::new(
        backbone_for_fingerprint(fp, model, &dir, what, options)?.1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_model_paths() {
        for p in [
            "./net",
            "net.onnx",
            "models/x",
            "/abs/net",
            "../up/net.onnx",
        ] {
            assert!(is_model_path(p), "{p}");
        }
        for n in ["efficientnet-lite0", "pixels28", "pixels-rgb8", "net"] {
            assert!(!is_model_path(n), "{n}");
        }
    }

    #[test]
    fn a_missing_own_file_is_named_and_not_looked_up_in_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry_for("./net", dir.path(), None, &OwnModel::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("model file ./net does not exist"), "{e}");
        let e = open_encoder(
            "./net",
            Some(dir.path()),
            &LayerSpec::Default,
            Pooling::Avg,
            &OwnModel::default(),
            DecodeMode::Reduced,
            &BackboneOptions::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("needs --layer"), "{e}");
    }
}
