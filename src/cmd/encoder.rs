//! The command-line options describing a user's own ONNX file, shared by `extract` and
//! `predict`; the rules (name or path, building the encoder) are `tlearn_extract::open`'s.

use anyhow::{Context, Result};
use clap::Args;
use tlearn_extract::open::OwnModel;
use tlearn_extract::spec::{ChannelOrder, Layout};

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

impl CustomModelArgs {
    /// The library's description of the file.
    pub fn own_model(&self) -> Result<OwnModel> {
        let arr = |v: &[f32], what: &str| -> Result<[f32; 3]> {
            v.try_into()
                .with_context(|| format!("--{what} needs 3 comma-separated values"))
        };
        Ok(OwnModel {
            crop: self.crop,
            value_scale: self.value_scale,
            mean: arr(&self.mean, "mean")?,
            std: arr(&self.std, "std")?,
            channels: if self.bgr {
                ChannelOrder::Bgr
            } else {
                ChannelOrder::Rgb
            },
            layout: if self.nhwc {
                Layout::Nhwc
            } else {
                Layout::Nchw
            },
        })
    }
}
