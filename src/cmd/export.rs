//! `tlearn export`: a saved head and its backbone as one ONNX file (see `tlearn_export`).

use anyhow::{Context, Result};
use tlearn_heads::SavedHead;

use crate::flags::hiargs::Export;

pub fn run(args: Export) -> Result<()> {
    let exported = if tlearn_finetune::saved::is_finetune(&args.head) {
        let head = tlearn_finetune::FinetuneHead::load(&args.head)?;
        tlearn_export::export_finetune(&head, args.model.as_deref(), &args.models_dir)
    } else {
        let head = SavedHead::load(&args.head)?;
        tlearn_export::export(&head, args.model.as_deref(), &args.models_dir)
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
