//! `tlearn predict`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["head", "imagenet"])))]
pub struct PredictArgs {
    /// Images to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// A saved head (head.json from `tlearn train`).
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Use the full (uncut) backbone and print its ImageNet top-k classes.
    #[arg(long)]
    pub imagenet: bool,
    /// Backbone for --imagenet (registry name; default efficientnet-lite0). With --head: where to
    /// find the head's backbone if it is an own ONNX file (a path).
    #[arg(long)]
    pub model: Option<String>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
