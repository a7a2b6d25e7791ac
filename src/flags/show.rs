//! `tlearn show`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;

use super::custom_model::CustomModelArgs;

#[derive(Args)]
#[command(after_help = "\
The picture shows the network's input view (after resize and centre crop) on the left, then the
strongest channels of the layer (highest mean activation first), each scaled to its own range
(viridis: dark = the channel's minimum, yellow = its maximum). The layer must be a spatial map
[1,C,H,W]; `tlearn layers MODEL` lists every node's shape.")]
pub struct ShowArgs {
    /// The image.
    pub image: PathBuf,
    /// Backbone: registry name or a path to an ONNX file.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Layer: a registry cut name or any ONNX node/tensor name with a spatial output.
    #[arg(long)]
    pub layer: String,
    /// How many channels to draw.
    #[arg(long, default_value_t = 64)]
    pub channels: usize,
    /// Output PNG (default: runs/show/<image>--<model>--<layer>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    #[command(flatten)]
    pub custom: CustomModelArgs,
}
