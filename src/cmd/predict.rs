//! `tlearn predict`: classify images with a saved head (extracting their CNN codes with the
//! backbone the head records), or with the full ImageNet model (`--imagenet`). The work is
//! `tlearn_extract::{open, classify}`'s and the head's; this module parses and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use ndarray::Array2;
use tlearn_extract::budget::MemoryBudget;
use tlearn_extract::classify::{self, Failure, Prediction};
use tlearn_extract::open::encoder_for_fingerprint;
use tlearn_heads::SavedHead;

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
    /// Models directory (default: $TLEARN_MODELS, else <repo>/models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (preds, failures) = if let Some(head) = &args.head {
        predict_head(&args, head)?
    } else {
        classify::imagenet_top_k(
            args.model.as_deref().unwrap_or("efficientnet-lite0"),
            args.models_dir.as_deref(),
            &args.images,
            args.top,
        )?
    };
    if args.json {
        let v = serde_json::json!({ "predictions": preds, "errors": failures });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for p in &preds {
            println!("{}", p.path);
            for r in &p.top {
                println!(
                    "  {:>6.2}%  {:>4}  {}",
                    100.0 * r.probability,
                    r.index,
                    r.class
                );
            }
        }
        for f in &failures {
            eprintln!("skipped {}: {}", f.path, f.error);
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} images could not be classified",
            failures.len(),
            args.images.len()
        );
    }
    Ok(())
}

fn predict_head(args: &PredictArgs, head_path: &Path) -> Result<(Vec<Prediction>, Vec<Failure>)> {
    if tlearn_finetune::saved::is_finetune(head_path) {
        let (model, dir) = (args.model.as_deref(), args.models_dir.as_deref());
        return super::finetune::predict(head_path, &args.images, model, dir, args.top);
    }
    let head = SavedHead::load(head_path)?;
    // One encoder per part (a head on a concatenation of cuts reads several); the codes of an
    // image are its parts' codes side by side, in the head's column order.
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let budget = MemoryBudget::from_setting(None)?;
    for (k, part) in head.parts().iter().enumerate() {
        let fp = &part.extractor;
        let encoder = encoder_for_fingerprint(
            fp,
            args.model.as_deref(),
            args.models_dir.as_deref(),
            &head_path.display().to_string(),
        )?;
        let (ok, failed) =
            classify::encode_images(encoder.as_ref(), &args.images, fp.augment, &budget);
        if k == 0 {
            rows = ok;
            failures = failed;
        } else {
            let mut by_path: std::collections::HashMap<String, Vec<f32>> = ok.into_iter().collect();
            for f in failed {
                if !failures.iter().any(|g| g.path == f.path) {
                    failures.push(f);
                }
            }
            rows.retain_mut(|(p, v)| match by_path.remove(p) {
                Some(more) => {
                    v.extend(more);
                    true
                }
                None => false,
            });
        }
    }
    if rows.is_empty() {
        return Ok((vec![], failures));
    }
    let mut x = Array2::<f32>::zeros((rows.len(), head.dim));
    for (i, (_, v)) in rows.iter().enumerate() {
        if v.len() != head.dim {
            bail!(
                "{}: the backbone(s) gave {} dimensions, the head expects {}",
                head_path.display(),
                v.len(),
                head.dim
            );
        }
        x.row_mut(i)
            .assign(&ndarray::ArrayView1::from(v.as_slice()));
    }
    let probs = head.predict_proba(x.view())?;
    let names = |i: usize| head.classes()[i].clone();
    let preds = rows
        .into_iter()
        .enumerate()
        .map(|(i, (path, _))| classify::prediction(path, &probs.row(i).to_vec(), &names, args.top))
        .collect();
    Ok((preds, failures))
}
