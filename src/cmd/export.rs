//! `tlearn export`: a saved head and its backbone as one ONNX file (see `tlearn_export`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tlearn_extract::registry;
use tlearn_heads::SavedHead;

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
    /// Models directory (default: $TLEARN_MODELS, else <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let dir = registry::models_dir(args.models_dir.as_deref());
    let exported = if tlearn_finetune::saved::is_finetune(&args.head) {
        let head = tlearn_finetune::FinetuneHead::load(&args.head)?;
        tlearn_export::export_finetune(&head, args.model.as_deref(), &dir)
    } else {
        let head = SavedHead::load(&args.head)?;
        tlearn_export::export(&head, args.model.as_deref(), &dir)
    }
    .with_context(|| format!("exporting {}", args.head.display()))?;
    exported.write(&args.out)?;
    let shape: Vec<String> = exported
        .input_shape
        .iter()
        .map(|d| d.map(|d| d.to_string()).unwrap_or_else(|| "N".into()))
        .collect();
    println!(
        "wrote {} ({:.1} MB): input '{}' float32 [{}] (preprocessed), output '{}' [N, {}]; \
         tract reproduces tlearn's probabilities to {:.1e}",
        args.out.display(),
        exported.bytes.len() as f64 / 1e6,
        tlearn_export::INPUT,
        shape.join(","),
        tlearn_export::OUTPUT,
        exported.classes.len(),
        exported.check_max_abs_diff
    );
    Ok(())
}
