//! `tlearn layers`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct LayersArgs {
    /// Registry model name, or a path to any .onnx file (bring your own; see --crop/--nhwc).
    pub model: String,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Input side for a bring-your-own .onnx file.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// The bring-your-own .onnx file takes NHWC input.
    #[arg(long)]
    pub nhwc: bool,
    /// Only the registry cut points.
    #[arg(long)]
    pub cuts: bool,
}
