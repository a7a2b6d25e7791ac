//! From what a user names to an [`Encoder`]: a registry model, the raw-pixels baseline, or the
//! user's own ONNX file; and the encoder a saved fingerprint describes (`predict --head`).
//!
//! One rule says whether `--model X` is a path ([`is_model_path`]); `layers`, `extract` and
//! `predict` all use it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tlearn_cache::Fingerprint;

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

/// `--layer` spelling for every named cut of a registry model.
pub const ALL_CUTS: &str = "all";

/// The cuts `layer` asks for: one name, several separated by `tlearn_cache::set::CUT_SEPARATOR`
/// (`features,stage6,stage5`), or [`ALL_CUTS`] for every named cut of `entry` in registry
/// order. `None` when not given (the entry's default cut).
pub fn requested_cuts(layer: Option<&str>, entry: &ModelEntry) -> Result<Option<Vec<String>>> {
    let Some(layer) = layer else {
        return Ok(None);
    };
    if layer.trim() == ALL_CUTS {
        if entry.cuts.is_empty() {
            bail!(
                "--layer {ALL_CUTS}: {} has no named cuts (name the layers, see `tlearn layers`)",
                entry.name
            );
        }
        return Ok(Some(entry.cuts.iter().map(|c| c.name.clone()).collect()));
    }
    let cuts: Vec<String> = layer
        .split(tlearn_cache::set::CUT_SEPARATOR)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if cuts.is_empty() {
        bail!("--layer '{layer}' names no cut");
    }
    Ok(Some(cuts))
}

/// Build the encoder named by `model` (registry name, `pixels*`, or an ONNX path, which needs
/// `layer`); `layer` may name several cuts ([`requested_cuts`]: one forward pass gives them
/// all); `decode` is how a backbone decodes JPEGs (the raw-pixel baseline always decodes
/// fully); `options` how a backbone is loaded.
pub fn open_encoder(
    model: &str,
    models_dir: Option<&Path>,
    layer: Option<&str>,
    pool: Pooling,
    own: &OwnModel,
    decode: DecodeMode,
    options: &BackboneOptions,
) -> Result<Box<dyn Encoder>> {
    if let Some(p) = Pixels::parse(model) {
        if let Some(l) =
            layer.filter(|l| l.contains(tlearn_cache::set::CUT_SEPARATOR) || l.trim() == ALL_CUTS)
        {
            bail!("{model}: the raw-pixels baseline has one cut; --layer '{l}' asks for several");
        }
        return Ok(Box::new(p?));
    }
    if is_model_path(model) && layer.is_none() {
        bail!("{model}: an own ONNX model needs --layer NODE (see `tlearn layers {model}`)");
    }
    let dir = registry::models_dir(models_dir);
    let mut entry = entry_for(model, &dir, layer, own)?;
    entry.preprocess.decode = decode;
    let cuts = requested_cuts(layer, &entry)?.unwrap_or_else(|| vec![entry.default_cut.clone()]);
    Ok(Box::new(Backbone::load_cuts(
        &entry, &dir, &cuts, pool, options,
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

/// The encoder `fp` describes (a saved head's extractor), found by its backbone name or at
/// `model` (a path, for a head trained on an own ONNX file), checked to give exactly `fp`:
/// a different file or setting is refused naming the field. `what` names `fp`'s owner; a
/// backbone is loaded with `options`.
pub fn encoder_for_fingerprint(
    fp: &Fingerprint,
    model: Option<&str>,
    models_dir: Option<&Path>,
    what: &str,
    options: &BackboneOptions,
) -> Result<Box<dyn Encoder>> {
    let encoder: Box<dyn Encoder> = if let Some(p) = Pixels::parse(&fp.backbone) {
        Box::new(p?)
    } else {
        let dir = registry::models_dir(models_dir);
        let model = model.unwrap_or(&fp.backbone);
        let mut entry = entry_for(model, &dir, Some(&fp.layer), &OwnModel::default())
            .with_context(|| {
                format!(
                    "finding the backbone '{}' that {what} was trained on",
                    fp.backbone
                )
            })?;
        entry.preprocess = fp.preprocess.clone();
        let cuts = requested_cuts(Some(&fp.layer), &entry)?.unwrap_or_default();
        Box::new(Backbone::load_cuts(&entry, &dir, &cuts, fp.pool, options)?)
    };
    let actual = fingerprint(encoder.as_ref(), fp.augment);
    if let Some(diff) = fp.compare(&actual, "head", "loaded backbone") {
        bail!("the backbone loaded for {what} is not the feature extractor it expects: {diff}");
    }
    Ok(encoder)
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
            None,
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
