//! `tlearn export`'s flags, as typed.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
#[command(after_help = "\
The ONNX graph takes the PREPROCESSED image tensor, input 'image', float32 [N,3,S,S] (NCHW
backbones; [N,S,S,3] for NHWC): decoding, resizing, centre cropping, normalisation and channel
order happen outside the graph, exactly as the backbone's registry entry says (the model's
metadata 'preprocess' repeats it). Output 'probabilities', float32 [N, classes]; metadata
'classes' holds the class names as a JSON array. Heads trained with --augment cannot be exported.
Every export is checked: tract runs the written file on a test image and must reproduce
`tlearn predict`'s probabilities within 1e-4.")]
pub struct ExportArgs {
    /// Saved head (head.json written by `tlearn train`).
    #[arg(long)]
    pub head: PathBuf,
    /// Where to write the ONNX file.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to find the head's backbone if it is an own ONNX file (a path); default: the
    /// registry entry the head records.
    #[arg(long)]
    pub model: Option<String>,
    /// Models directory (default: as `tlearn models --help` says).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
}
