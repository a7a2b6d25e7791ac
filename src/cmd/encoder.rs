//! Turning a model name (registry entry, raw-pixel baseline, or the user's own ONNX file) into
//! an [`Encoder`], shared by `extract` and `predict`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use tlearn_extract::backbone::Backbone;
use tlearn_extract::extract::Encoder;
use tlearn_extract::pixels::Pixels;
use tlearn_extract::registry::{self, ModelEntry, Registry};
use tlearn_extract::spec::{ChannelOrder, DecodeMode, Layout, Pooling};

/// How to read a user-supplied ONNX file (`--model path/to/net.onnx`).
#[derive(Args, Clone, Debug)]
pub struct CustomModelArgs {
    /// Own ONNX only: square input side the network takes.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Own ONNX only: multiplier of 0-255 pixel values before mean/std (1/255 = 0.003921569).
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub value_scale: f32,
    /// Own ONNX only: per-channel mean (RGB order, in units of pixel*value_scale).
    #[arg(long, value_delimiter = ',', default_values_t = [0.485, 0.456, 0.406])]
    pub mean: Vec<f32>,
    /// Own ONNX only: per-channel standard deviation (RGB order).
    #[arg(long, value_delimiter = ',', default_values_t = [0.229, 0.224, 0.225])]
    pub std: Vec<f32>,
    /// Own ONNX only: the network wants BGR instead of RGB.
    #[arg(long)]
    pub bgr: bool,
    /// Own ONNX only: the network wants NHWC instead of NCHW.
    #[arg(long)]
    pub nhwc: bool,
}

fn looks_like_path(model: &str) -> bool {
    model.ends_with(".onnx") || model.contains('/') || model.contains(std::path::MAIN_SEPARATOR)
}

/// The registry entry for `model`, or an entry built from a user's ONNX file.
pub fn entry_for(
    model: &str,
    models_dir: &Path,
    layer: Option<&str>,
    custom: &CustomModelArgs,
) -> Result<ModelEntry> {
    if looks_like_path(model) {
        let path = PathBuf::from(model);
        if !path.is_file() {
            bail!("model file {} does not exist", path.display());
        }
        let Some(layer) = layer else {
            bail!(
                "{}: an own ONNX model needs --layer NODE (see `tlearn layers {}`)",
                path.display(),
                path.display()
            );
        };
        let arr = |v: &[f32], what: &str| -> Result<[f32; 3]> {
            v.try_into()
                .with_context(|| format!("--{what} needs 3 comma-separated values"))
        };
        return Ok(ModelEntry::custom(
            &path,
            custom.crop,
            custom.value_scale,
            arr(&custom.mean, "mean")?,
            arr(&custom.std, "std")?,
            if custom.bgr {
                ChannelOrder::Bgr
            } else {
                ChannelOrder::Rgb
            },
            if custom.nhwc {
                Layout::Nhwc
            } else {
                Layout::Nchw
            },
            layer,
        ));
    }
    let reg = Registry::load(models_dir)?;
    Ok(reg.get(model)?.clone())
}

/// Build the encoder named by `model` (registry name, `pixels*`, or an ONNX path); `decode` is
/// how a backbone decodes JPEGs (the raw-pixel baseline always decodes fully).
pub fn open(
    model: &str,
    models_dir: Option<&Path>,
    layer: Option<&str>,
    pool: Pooling,
    custom: &CustomModelArgs,
    decode: DecodeMode,
) -> Result<Box<dyn Encoder>> {
    if let Some(p) = Pixels::parse(model) {
        return Ok(Box::new(p?));
    }
    let dir = registry::models_dir(models_dir);
    let mut entry = entry_for(model, &dir, layer, custom)?;
    entry.preprocess.decode = decode;
    Ok(Box::new(Backbone::load(&entry, &dir, layer, pool)?))
}

impl CustomModelArgs {
    /// The defaults clap would give (ImageNet mean/std, 224, RGB, NCHW).
    pub fn defaults() -> CustomModelArgs {
        CustomModelArgs {
            crop: 224,
            value_scale: 1.0 / 255.0,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            bgr: false,
            nhwc: false,
        }
    }
}
